"""Raw Ethernet exchanges (PROFINET DCP): one AF_PACKET socket on the interface the kernel routes
the target's address through, frames sent unicast to the target's MAC, and only the target's
answers of the same EtherType and transaction read back. The link facts come from the kernel's
own tables (/proc/net/route, /proc/net/arp): reading them sends nothing, and a target that is
not on a directly attached network is not asked (layer-2 frames do not cross a router)."""
from __future__ import annotations

import ipaddress
import socket
import struct
import time
from pathlib import Path

from plantguard.probe.evidence import Evidence
from plantguard.probe.limits import Breaker, RateCap
from plantguard.probe.session import QueryRun
from plantguard.probe.transports import frames
from plantguard.probe.validator import ConnectionValidator

ETH_HEADER = 14
MIN_FRAME = 60               # Ethernet minimum without the FCS: short frames are padded with zeros
RTF_UP, RTF_GATEWAY = 0x1, 0x2
ATF_COM, ATF_PERM = 0x2, 0x4
PACKET_OUTGOING = 4
PROC = Path("/proc/net")


class LinkError(Exception):
    """Why a layer-2 target cannot be reached from here (one line)."""


def _hex_ip(field: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(struct.pack("<I", int(field, 16)))


def route_interface(ip: str, route_table: Path = PROC / "route") -> str:
    """The interface of the longest-prefix route to `ip`; LinkError when that route goes through
    a gateway (the target is not on the link) or there is none."""
    addr = ipaddress.IPv4Address(ip)
    best: tuple[int, str, bool] | None = None
    try:
        lines = route_table.read_text(encoding="ascii").splitlines()[1:]
    except OSError as exc:
        raise LinkError(f"cannot read the routing table: {exc.strerror or exc}") from None
    for line in lines:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            iface, dest, flags, mask = cols[0], _hex_ip(cols[1]), int(cols[3], 16), _hex_ip(cols[7])
        except ValueError:
            continue
        if not flags & RTF_UP:
            continue
        net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        if addr in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, iface, bool(flags & RTF_GATEWAY))
    if best is None:
        raise LinkError(f"no route to {ip}")
    if best[2]:
        raise LinkError(f"{ip} is behind a router (via {best[1]}): DCP frames do not cross it")
    return best[1]


def neighbour_macs(arp_table: Path = PROC / "arp") -> dict[str, str]:
    """{ip: mac} of the kernel's complete or permanent IPv4 neighbours."""
    out: dict[str, str] = {}
    try:
        lines = arp_table.read_text(encoding="ascii").splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        cols = line.split()
        if len(cols) < 6:
            continue
        try:
            flags = int(cols[2], 16)
        except ValueError:
            continue
        mac = cols[3].lower()
        if flags & (ATF_COM | ATF_PERM) and mac != "00:00:00:00:00:00":
            out[cols[0]] = mac
    return out


def interface_mac(iface: str) -> bytes:
    try:
        text = (Path("/sys/class/net") / iface / "address").read_text(encoding="ascii").strip()
        return bytes.fromhex(text.replace(":", ""))
    except (OSError, ValueError) as exc:
        raise LinkError(f"cannot read the MAC address of {iface}: {exc}") from None


def ethernet_frame(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    frame = dst + src + struct.pack(">H", ethertype) + payload
    return frame + b"\x00" * max(0, MIN_FRAME - len(frame))


def l2_exchange(r: QueryRun, v: ConnectionValidator, cap: RateCap, timeout: float, ev: Evidence,
                breaker: Breaker) -> None:
    t, q = r.target, r.query
    gen = frames(r, v)
    step = next(gen, None)                    # validated before the socket is even opened
    if step is None:
        r.status = "answered"
        return
    try:
        iface = route_interface(t.ip)
        ours, theirs = interface_mac(iface), bytes.fromhex(v.dst_mac.replace(":", ""))
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(q.ethertype))
        sock.bind((iface, q.ethertype))
    except (LinkError, OSError) as exc:
        r.status, r.reason = "error", str(exc) if isinstance(exc, LinkError) else f"raw socket: {exc.strerror or exc}"
        return
    with sock:
        while step is not None:
            frame = ethernet_frame(theirs, ours, q.ethertype, step.frame)
            cap.take()
            sent_at = time.monotonic()
            sock.send(frame)
            ev.l2(frame)
            step.seconds = 0.0
            answer = _answer(sock, theirs, ours, q.ethertype, step.frame[4:8], sent_at + timeout)
            if answer is None:
                if r.status != "answered":
                    r.status, r.reason = "no answer", f"no response from {v.dst_mac} in {timeout:g} s"
                breaker.error(t.ip, f"no DCP response in {timeout:g} s")
                step = _next(gen, None)
                if breaker.stops(t.ip):
                    break
                continue
            ev.l2(answer)
            step.response, step.seconds = answer[ETH_HEADER:], time.monotonic() - sent_at
            breaker.latency(t.ip, step.seconds)
            r.status = "answered"
            if breaker.stops(t.ip):
                break
            step = _next(gen, step.response)


def _next(gen, value):
    try:
        return gen.send(value)
    except StopIteration:
        return None


def _answer(sock, theirs: bytes, ours: bytes, ethertype: int, xid: bytes, deadline: float) -> bytes | None:
    """The first frame from `theirs` to us of `ethertype` carrying transaction `xid` (DCP: bytes
    4-7 of the PDU) before `deadline`; everything else on the link is ignored."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data, addr = sock.recvfrom(65536)
        except socket.timeout:
            return None
        if len(addr) > 2 and addr[2] == PACKET_OUTGOING:
            continue
        if (len(data) >= ETH_HEADER + 8 and data[6:12] == theirs and data[0:6] == ours
                and struct.unpack_from(">H", data, 12)[0] == ethertype and data[ETH_HEADER + 4:ETH_HEADER + 8] == xid):
            return bytes(data)
