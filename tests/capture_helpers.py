"""Small capture writers for tests: classic pcap (µs/ns, either byte order) and pcapng
(several interfaces with their own link type and timestamp resolution, EPB/SPB/OPB,
either byte order). Written here so tests never depend on a capture library."""
from __future__ import annotations

import socket
import struct


def pcap_bytes(frames, linktype: int = 1, nano: bool = False, big: bool = False,
               snaplen: int = 262144) -> bytes:
    """frames: iterable of (ts_seconds, frame_bytes) or (ts, frame_bytes, orig_len)."""
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    unit = 1_000_000_000 if nano else 1_000_000
    for item in frames:
        ts, data = item[0], item[1]
        orig = item[2] if len(item) > 2 else len(data)
        sec = int(ts)
        frac = int(round((ts - sec) * unit))
        out.append(struct.pack(e + "IIII", sec, frac, len(data), orig))
        out.append(data)
    return b"".join(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def _block(e: str, btype: int, body: bytes) -> bytes:
    body = _pad4(body)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def pcapng_bytes(interfaces, packets, big: bool = False, simple: bool = False) -> bytes:
    """interfaces: list of (linktype, tsresol_byte or None). packets: list of
    (interface_index, ts_seconds, frame_bytes). simple=True writes interface-0 packets as SPB."""
    e = ">" if big else "<"
    shb = struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)
    out = [_block(e, 0x0A0D0D0A, shb)]
    res = []
    for lt, tsresol in interfaces:
        opts = b""
        if tsresol is not None:
            opts += struct.pack(e + "HH", 9, 1) + _pad4(bytes([tsresol]))
        opts += struct.pack(e + "HH", 0, 0)
        out.append(_block(e, 1, struct.pack(e + "HHI", lt, 0, 262144) + opts))
        if tsresol is None:
            res.append(1e-6)
        elif tsresol & 0x80:
            res.append(2.0 ** -(tsresol & 0x7F))
        else:
            res.append(10.0 ** -tsresol)
    for ifid, ts, data in packets:
        if simple and ifid == 0:
            out.append(_block(e, 3, struct.pack(e + "I", len(data)) + data))
            continue
        t = int(round(ts / res[ifid]))
        out.append(_block(e, 6, struct.pack(e + "IIIII", ifid, t >> 32, t & 0xFFFFFFFF,
                                            len(data), len(data)) + data))
    return b"".join(out)


def mac(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", ""))


def eth(src: str, dst: str, ethertype: int, payload: bytes, vlans=()) -> bytes:
    tags = b"".join(struct.pack("!HH", 0x8100, v) for v in vlans)
    return mac(dst) + mac(src) + tags + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, flags_frag: int = 0) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, flags_frag, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    return hdr + payload


def ipv6(src: str, dst: str, nxt: int, payload: bytes) -> bytes:
    return (struct.pack("!IHBB", 0x60000000, len(payload), nxt, 64)
            + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + payload)


def tcp(sport: int, dport: int, payload: bytes = b"", flags: int = 0x18, seq: int = 1) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp_frame(src, dst, sport, dport, payload=b"", flags=0x18, seq=1, vlans=(),
              smac="02:00:00:00:00:01", dmac="02:00:00:00:00:02") -> bytes:
    return eth(smac, dmac, 0x0800, ipv4(src, dst, 6, tcp(sport, dport, payload, flags, seq)), vlans)


def udp_frame(src, dst, sport, dport, payload=b"", vlans=(),
              smac="02:00:00:00:00:01", dmac="02:00:00:00:00:02") -> bytes:
    return eth(smac, dmac, 0x0800, ipv4(src, dst, 17, udp(sport, dport, payload)), vlans)


def tcp_conversation_pcap(client: str, server: str, port: int, payloads, sport: int = 40000) -> bytes:
    """A pcap of one TCP conversation: handshake, then each (from_client, payload) in turn, with
    consistent sequence numbers."""
    mc, ms = "02:00:00:00:00:01", "02:00:00:00:00:02"
    seq = {True: 1000, False: 5000}
    frames = [eth(mc, ms, 0x0800, ipv4(client, server, 6, tcp(sport, port, b"", flags=0x02, seq=seq[True] - 1))),
              eth(ms, mc, 0x0800, ipv4(server, client, 6, tcp(port, sport, b"", flags=0x12, seq=seq[False] - 1)))]
    for from_client, data in payloads:
        src, dst, ma, mb = (client, server, mc, ms) if from_client else (server, client, ms, mc)
        sp, dp = (sport, port) if from_client else (port, sport)
        frames.append(eth(ma, mb, 0x0800, ipv4(src, dst, 6, tcp(sp, dp, data, seq=seq[from_client]))))
        seq[from_client] += len(data)
    return pcap_bytes([(1.7e9 + i * 0.01, f) for i, f in enumerate(frames)])
