"""A simulated week of plant traffic as the pieces of a capture ring, built from real shared
captures, for the monitor's week test and benchmark. One ring piece per simulated hour: a burst
of the corpus' polling conversations (the shared tools/poll_scale.py, renewed sequence numbers
and transaction ids) placed at that hour of packet time, so 7 days of packet time take 168
bursts, not 7 days of packets. Every hour each client reconnects a few times from new ephemeral
ports (port churn); from day 2, twice a day, a real conversation appears with a new client
address (new hosts); on day 5 an S7 program download from a real capture
(s7comm_downloading_block_db1.pcap, its station given a new address of the PLC's /24 and a MAC
of its own) lies in one piece after its burst. Checksums are updated for every rewrite."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from support.packets import pcap_bytes, read_pcap
from support.ring import piece_name

HOURS = 7 * 24
T0 = 1767571200.0                       # Monday 2026-01-05 00:00 UTC
BURST_AT = 60.0                         # each hour's burst starts a minute after the hour
DOWNLOAD = "pcaps/ICS-Security-Tools/s7/s7comm_downloading_block_db1.pcap"
DOWNLOAD_FRAME = 43                     # its first program-download frame, as `assess` reports it
DOWNLOAD_HOUR = 4 * 24 + 10             # day 5, 10:00
NEW_HOST_HOURS = {d * 24 + h: i for d in range(1, 7) for i, h in enumerate((5, 15))}   # two a day from day 2
SERVER_PORTS = {502, 102, 44818, 2404, 20000, 47808}


@dataclass
class Week:
    ring: Path
    pieces: list[Path] = field(default_factory=list)
    packets: int = 0
    new_hosts: dict[str, tuple[int, str]] = field(default_factory=dict)   # new IP -> (hour, server it polls)
    download: tuple[int, int] | None = None      # (piece index, frame in it) of the download's frame
    learnt_clients: set[str] = field(default_factory=set)
    intruder: str = ""                           # the download's unauthorised station, and its PLC
    plc: str = ""


def _l3l4(fr: bytes):
    """(ip offset, l4 offset, proto) of an untagged Ethernet/IPv4 TCP or UDP frame, else None."""
    if len(fr) < 34 or fr[12:14] != b"\x08\x00" or fr[14] >> 4 != 4:
        return None
    l4 = 14 + (fr[14] & 15) * 4
    proto = fr[23]
    if proto not in (6, 17) or len(fr) < l4 + (20 if proto == 6 else 8):
        return None
    return 14, l4, proto


def _fix(b: bytearray, at: int, old: bytes, new: bytes) -> None:
    """RFC 1624 incremental update of the checksum at `at` for 16-bit words old -> new."""
    c = struct.unpack_from("!H", b, at)[0]
    if c == 0 and b[23] == 17 and at > 24:      # UDP without a checksum stays without
        return
    s = ~c & 0xFFFF
    for i in range(0, len(old), 2):
        s += (~struct.unpack_from("!H", old, i)[0] & 0xFFFF) + struct.unpack_from("!H", new, i)[0]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("!H", b, at, ~s & 0xFFFF)


def _client(fr: bytes):
    """(client is the source, client ip bytes, client port) of a polling frame, else None."""
    h = _l3l4(fr)
    if h is None:
        return None
    ip, l4, _ = h
    sp, dp = struct.unpack_from("!HH", fr, l4)
    if dp in SERVER_PORTS and sp not in SERVER_PORTS:
        return True, fr[ip + 12:ip + 16], sp
    if sp in SERVER_PORTS and dp not in SERVER_PORTS:
        return False, fr[ip + 16:ip + 20], dp
    return None


def rewrite(fr: bytes, *, port: int | None = None, ips: dict | None = None, macs: dict | None = None) -> bytes:
    """The frame with its client's port replaced, and addresses and MACs mapped old -> new
    wherever they stand (checksums updated)."""
    h = _l3l4(fr)
    if h is None:
        return fr
    ipo, l4, proto = h
    b = bytearray(fr)
    csum = l4 + (16 if proto == 6 else 6)
    c = _client(fr)
    if port is not None and c is not None:
        at = l4 if c[0] else l4 + 2
        old = bytes(b[at:at + 2])
        struct.pack_into("!H", b, at, port)
        _fix(b, csum, old, bytes(b[at:at + 2]))
    for at in (ipo + 12, ipo + 16):
        new = (ips or {}).get(bytes(b[at:at + 4]))
        if new is not None:
            old = bytes(b[at:at + 4])
            b[at:at + 4] = new
            _fix(b, ipo + 10, old, new)
            _fix(b, csum, old, new)
    for at in (0, 6):
        new = (macs or {}).get(bytes(b[at:at + 6]))
        if new is not None:
            b[at:at + 6] = new
    return bytes(b)


def _conv(fr: bytes):
    h = _l3l4(fr)
    if h is None:
        return None
    ip, l4, proto = h
    a, b = (fr[ip + 12:ip + 16], fr[l4:l4 + 2]), (fr[ip + 16:ip + 20], fr[l4 + 2:l4 + 4])
    return (proto,) + ((a, b) if a <= b else (b, a))


def polling_burst(workdir: Path, shared: Path, seconds: float) -> list[tuple[float, bytes]]:
    """The first `seconds` of each of the corpus' polling conversations (tools/poll_scale.py,
    which starts them 0.37 s apart), all starting within 0.6 s; time from 0."""
    out = workdir / "burst.pcap"
    tool = shared.parent / "tools" / "poll_scale.py"
    subprocess.run([sys.executable, str(tool), "--seconds", str(seconds + 25.0), "--cells", "1", str(out)],
                   check=True, capture_output=True)
    recs = read_pcap(out)
    out.unlink()
    start: dict = {}                   # conversation -> (its first time, its index)
    kept = []
    for ts, fr in recs:
        t, i = start.setdefault(_conv(fr), (ts, len(start)))
        if ts - t < seconds:
            kept.append((ts - t + 0.01 * (i % 60), fr))
    kept.sort(key=lambda x: x[0])
    return kept


def _write(path: Path, frames) -> None:
    tmp = path.parent / f".{path.name}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(pcap_bytes(frames))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _ip(b: bytes) -> str:
    return ".".join(map(str, b))


def build(ring: Path, shared: Path, *, burst_s: float = 2.0, reconnects: int = 4, hours: int = HOURS,
          workdir: Path | None = None) -> Week:
    """Write the week's ring pieces into `ring` (shared: the shared data directory). Every hour
    each polling client reconnects `reconnects` times from new ports."""
    ring.mkdir(parents=True, exist_ok=True)
    burst = polling_burst(workdir or ring.parent, shared, burst_s)
    clients = {}                       # (client ip, original port) -> its index, for the hourly ports
    for _, fr in burst:
        c = _client(fr)
        if c is not None:
            clients.setdefault((c[1], c[2]), len(clients))
    # the new hosts copy a real Modbus conversation: the first client of port 502 in the burst,
    # with an address of its server's /24 (a public range in that capture); their frames keep the
    # client's MAC, a router's in that capture (a routed client, as the copied one is)
    modbus = next((c[1], c[2]) for _, fr in burst
                  if (c := _client(fr)) and 502 in struct.unpack_from("!HH", fr, _l3l4(fr)[1]))
    conv = [(ts, fr) for ts, fr in burst if (c := _client(fr)) and (c[1], c[2]) == modbus]
    server = next(fr[30:34] if _client(fr)[0] else fr[26:30] for _, fr in conv)
    # the download comes from an address of the PLC's /24 that nothing else uses
    download = read_pcap(shared / DOWNLOAD)
    station, plc = download[1][1][26:30], download[1][1][30:34]
    intruder = plc[:3] + bytes((66,))
    dl_map = {station: intruder}, {download[1][1][6:12]: b"\x02\x66\x00\x00\x00\x05"}
    week = Week(ring, learnt_clients={_ip(k[0]) for k in clients})
    slot = burst_s / reconnects
    for h in range(hours):
        base = T0 + h * 3600 + BURST_AT
        frames = []
        for ts, fr in burst:
            c = _client(fr)
            if c is not None:
                epoch = h * reconnects + min(int(ts / slot), reconnects - 1)
                fr = rewrite(fr, port=10000 + (epoch * len(clients) + clients[(c[1], c[2])]) % 55000)
            frames.append((base + ts, fr, "burst"))
        if h in NEW_HOST_HOURS:
            n = NEW_HOST_HOURS[h]
            ip = server[:3] + bytes((200 + h // 24 * 2 + n,))
            for ts, fr in conv:
                frames.append((base + ts + 0.0005, rewrite(fr, port=65000 + n, ips={modbus[0]: ip}), "host"))
            week.new_hosts[_ip(ip)] = (h, _ip(server))
        if h == DOWNLOAD_HOUR:
            d0 = download[0][0]
            for j, (ts, fr) in enumerate(download):
                frames.append((base + burst_s + 1.0 + ts - d0, rewrite(fr, ips=dl_map[0], macs=dl_map[1]), j + 1))
            week.intruder, week.plc = _ip(intruder), _ip(plc)
        frames.sort(key=lambda x: x[0])
        if h == DOWNLOAD_HOUR:
            week.download = (h, 1 + next(i for i, f in enumerate(frames) if f[2] == DOWNLOAD_FRAME))
        path = ring / piece_name(h)
        _write(path, [(ts, fr) for ts, fr, _ in frames])
        week.pieces.append(path)
        week.packets += len(frames)
    return week
