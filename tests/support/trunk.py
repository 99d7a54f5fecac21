"""Test captures of a mirrored router trunk, built from real traffic.

The frames come from a shared capture (Modbus/TCP polling between a Dell host and a Moxa
ioLogik I/O module, `modbus_test.pcap`). Their IP packets are kept byte for byte except the
addresses, moved into a plant's control and sensing subnets (checksums recomputed), and each is
replayed the way a SPAN of the router's trunk sees a routed packet: once on the sender's VLAN,
from the sender's MAC to the router's, and once on the receiver's VLAN, from the router's MAC
to the receiver's, with the TTL one lower. The hosts keep the MAC addresses of the original
capture. ARP exchanges with the router (the hosts asking for their gateway) are added with the
demo plant's frame builders.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from support.packets import pcap_bytes, read_pcap

from plantguard.demo.frames import BROADCAST_MAC, ETH_ARP, ETH_IPV4, arp, ethernet, inet_checksum, ip_bytes

SOURCE = "pcaps/ICS-Security-Tools/ModbusTCP/Modbus/modbus_test.pcap"
SOURCE_CLIENT, SOURCE_SERVER = "192.168.0.21", "192.168.0.20"


@dataclass(frozen=True)
class Host:
    ip: str
    mac: str
    vlan: int
    gateway: str


# the polling host (Dell) in the control zone, the Moxa I/O module in the sensing zone
CONTROL = Host("10.10.1.21", "20:47:47:87:d4:96", 110, "10.10.1.1")
SENSING = Host("10.10.2.20", "00:90:e8:4c:83:db", 120, "10.10.2.1")
ROUTER_MAC = "00:1b:54:3a:10:01"                                   # one MAC on every VLAN
ROUTER_MACS = {110: "00:1b:54:3a:10:6e", 120: "00:1b:54:3a:10:78"}  # one MAC per VLAN interface

SITE = """\
site: routed trunk
zones:
  - {name: control, kind: ot-control, networks: [10.10.1.0/24], vlans: [110]}
  - {name: sensing, kind: ot-sensing, networks: [10.10.2.0/24], vlans: [120]}
"""


def ip_packets(path, a: str, b: str, limit: int) -> list[tuple[float, bytes]]:
    """The first `limit` IPv4 packets between a and b (either way), without their Ethernet header."""
    out = []
    for ts, frame in read_pcap(path):
        off = 14
        ethertype = struct.unpack("!H", frame[12:14])[0]
        while ethertype == 0x8100:
            ethertype = struct.unpack("!H", frame[off + 2:off + 4])[0]
            off += 4
        if ethertype != ETH_IPV4:
            continue
        pkt = frame[off:]
        total = struct.unpack("!H", pkt[2:4])[0]
        pkt = pkt[:total]                                  # drop Ethernet padding
        ends = {_ip(pkt[12:16]), _ip(pkt[16:20])}
        if ends == {a, b}:
            out.append((ts, pkt))
            if len(out) == limit:
                break
    return out


def _ip(b: bytes) -> str:
    return ".".join(str(x) for x in b)


def readdress(pkt: bytes, mapping: dict[str, str], ttl_drop: int = 0) -> bytes:
    """The IPv4 packet with its addresses mapped and its TTL lowered; the IP header checksum
    and the TCP/UDP checksum are recomputed."""
    ihl = (pkt[0] & 0x0F) * 4
    src, dst = mapping[_ip(pkt[12:16])], mapping[_ip(pkt[16:20])]
    hdr = bytearray(pkt[:ihl])
    hdr[8] = max(1, hdr[8] - ttl_drop)
    hdr[12:16], hdr[16:20] = ip_bytes(src), ip_bytes(dst)
    hdr[10:12] = b"\x00\x00"
    hdr[10:12] = struct.pack("!H", inet_checksum(bytes(hdr)))
    seg = bytearray(pkt[ihl:])
    proto = hdr[9]
    where = {6: 16, 17: 6}.get(proto)
    if where is not None and len(seg) >= where + 2:
        seg[where:where + 2] = b"\x00\x00"
        pseudo = ip_bytes(src) + ip_bytes(dst) + struct.pack("!BBH", 0, proto, len(seg))
        csum = inet_checksum(pseudo + bytes(seg))
        seg[where:where + 2] = struct.pack("!H", csum or (0xFFFF if proto == 17 else 0))
    return bytes(hdr) + bytes(seg)


def readdressed_frames(path, ip_map: dict[str, str], mac_map: dict[str, str] | None = None,
           start: float | None = None) -> list[tuple[float, bytes]]:
    """Every Ethernet/IPv4 frame of a real capture between the addresses of `ip_map`, readdressed
    (IP addresses, and MACs per `mac_map`), shifted to begin at `start`; other frames are left out."""
    mac_map = mac_map or {}
    out = []
    frames = read_pcap(path)
    shift = 0.0 if start is None or not frames else start - frames[0][0]
    for ts, frame in frames:
        if struct.unpack("!H", frame[12:14])[0] != ETH_IPV4:
            continue
        pkt = frame[14:14 + struct.unpack("!H", frame[16:18])[0]]
        if _ip(pkt[12:16]) not in ip_map or _ip(pkt[16:20]) not in ip_map:
            continue
        dst, src = (mac_map.get(m, m) for m in (frame[0:6].hex(":"), frame[6:12].hex(":")))
        out.append((ts + shift, ethernet(dst, src, ETH_IPV4, readdress(pkt, ip_map), None)))
    return out


def _arp_for_gateway(ts: float, host: Host, router_mac: str, vlan: int) -> list[tuple[float, bytes]]:
    ask = ethernet(BROADCAST_MAC, host.mac, ETH_ARP, arp(1, host.mac, host.ip, "00:00:00:00:00:00", host.gateway),
                   vlan)
    tell = ethernet(host.mac, router_mac, ETH_ARP, arp(2, router_mac, host.gateway, host.mac, host.ip), vlan)
    return [(ts, ask), (ts + 0.0002, tell)]


def routed_trunk(path, router_macs: dict[int, str] | None = None, with_arp: bool = True,
                 control: Host = CONTROL, sensing: Host = SENSING, limit: int = 200) -> bytes:
    """A pcap of the real conversation routed between control.vlan and sensing.vlan, seen on the
    router's trunk. router_macs: the router's MAC per VLAN (default: ROUTER_MAC on both)."""
    macs = router_macs or {control.vlan: ROUTER_MAC, sensing.vlan: ROUTER_MAC}
    by_ip = {control.ip: control, sensing.ip: sensing}
    mapping = {SOURCE_CLIENT: control.ip, SOURCE_SERVER: sensing.ip}
    pkts = ip_packets(path, SOURCE_CLIENT, SOURCE_SERVER, limit)
    t0 = pkts[0][0]
    frames: list[tuple[float, bytes]] = []
    if with_arp:
        for h in (control, sensing):
            frames += _arp_for_gateway(t0 - 1.0, h, macs[h.vlan], h.vlan)
    for ts, pkt in pkts:
        first = readdress(pkt, mapping)
        src, dst = by_ip[_ip(first[12:16])], by_ip[_ip(first[16:20])]
        frames.append((ts, ethernet(macs[src.vlan], src.mac, ETH_IPV4, first, src.vlan)))
        frames.append((ts + 0.00005, ethernet(dst.mac, macs[dst.vlan], ETH_IPV4, readdress(pkt, mapping, 1),
                                              dst.vlan)))
    frames.sort(key=lambda tf: tf[0])
    return pcap_bytes(frames)


def misplaced_sensor(path, limit: int = 200) -> bytes:
    """The true positive: the sensing module's port was left on the control VLAN 110 (it keeps
    its sensing address; the router still answers for the sensing gateway on VLAN 110), so both
    legs of every routed packet are on VLAN 110."""
    stray = Host(SENSING.ip, SENSING.mac, CONTROL.vlan, SENSING.gateway)
    return routed_trunk(path, control=CONTROL, sensing=stray, limit=limit)
