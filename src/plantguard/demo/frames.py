"""Frame builders for the demo plant: Ethernet II with 802.1Q tags, ARP, IPv4, ICMP, UDP and TCP
(three-way handshakes, consistent sequence/acknowledgement numbers, segmentation at the MSS,
orderly close), with correct IPv4/ICMP/UDP/TCP checksums.

Capture model: the demo capture is an ingress mirror of the plant's core switch. Each
conversation is recorded once, on the VLAN of the host that opened it. A peer in another VLAN is
reached through the router, so its frames carry the router's MAC address (and a TTL one lower
than the peer sent); every host is also seen with its own MAC on its own VLAN (ARP).
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from plantguard.demo.detrand import DetRandom

ETH_IPV4, ETH_ARP, ETH_VLAN, ETH_LLDP = 0x0800, 0x0806, 0x8100, 0x88CC
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
MIN_FRAME = 60            # shortest Ethernet frame without the FCS; shorter ones are padded
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def ip_bytes(ip: str) -> bytes:
    return ipaddress.IPv4Address(ip).packed


def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(dst: str, src: str, ethertype: int, payload: bytes, vlan: int | None,
             pcp: int = 0) -> bytes:
    hdr = mac_bytes(dst) + mac_bytes(src)
    if vlan is not None:
        hdr += struct.pack("!HH", ETH_VLAN, (pcp << 13) | (vlan & 0x0FFF))
    frame = hdr + struct.pack("!H", ethertype) + payload
    return frame + b"\x00" * (MIN_FRAME - len(frame)) if len(frame) < MIN_FRAME else frame


def arp(op: int, sha: str, spa: str, tha: str, tpa: str) -> bytes:
    return (struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, op) + mac_bytes(sha) + ip_bytes(spa)
            + mac_bytes(tha) + ip_bytes(tpa))


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int, ttl: int,
         dont_fragment: bool = True, tos: int = 0) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident & 0xFFFF,
                      0x4000 if dont_fragment else 0, ttl, proto, 0, ip_bytes(src), ip_bytes(dst))
    csum = inet_checksum(hdr)
    return hdr[:10] + struct.pack("!H", csum) + hdr[12:] + payload


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    return ip_bytes(src) + ip_bytes(dst) + struct.pack("!BBH", 0, proto, length)


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    csum = inet_checksum(_pseudo(src, dst, 17, len(seg)) + seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", csum) + seg[8:]


def tcp(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
        payload: bytes = b"", options: bytes = b"") -> bytes:
    if len(options) % 4:
        options += b"\x01" * (4 - len(options) % 4)   # NOP padding to a 32-bit boundary
    doff = (20 + len(options)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      doff << 4, flags, window, 0, 0) + options
    csum = inet_checksum(_pseudo(src, dst, 6, len(hdr) + len(payload)) + hdr + payload)
    return hdr[:16] + struct.pack("!H", csum) + hdr[18:] + payload


def icmp_echo(request: bool, ident: int, seq: int, data: bytes) -> bytes:
    msg = struct.pack("!BBHHH", 8 if request else 0, 0, 0, ident, seq) + data
    return msg[:2] + struct.pack("!H", inet_checksum(msg)) + msg[4:]


@dataclass(frozen=True)
class Host:
    name: str
    ip: str
    mac: str
    vlan: int
    ttl: int = 64          # initial IP TTL of the host's stack (Windows 128, most devices 64)
    window: int = 8192     # TCP receive window it advertises
    mss: int = 1460


@dataclass(frozen=True)
class Router:
    mac: str
    ips: dict = field(default_factory=dict)   # vlan -> interface address

    def host(self, vlan: int) -> Host:
        return Host(f"router-vlan{vlan}", self.ips[vlan], self.mac, vlan, 255)


class Timeline:
    """Frames with their times (integer µs); sorted once at the end. Labels ("marks") name the
    frames a test or the report table must point at."""

    def __init__(self):
        self._items: list[tuple[int, int, bytes, str | None]] = []

    def add(self, t_us: int, frame: bytes, mark: str | None = None) -> None:
        self._items.append((t_us, len(self._items), frame, mark))

    def build(self) -> tuple[list[tuple[int, bytes]], dict[str, list[int]]]:
        frames, marks = [], {}
        for number, (t, _order, frame, mark) in enumerate(sorted(self._items), start=1):
            frames.append((t, frame))
            if mark:
                marks.setdefault(mark, []).append(number)
        return frames, marks


class Network:
    """Hosts, the router between VLANs, per-host IP identification counters and the timeline."""

    def __init__(self, router: Router, rnd: DetRandom):
        self.router = router
        self.timeline = Timeline()
        self.rnd = rnd
        self._ip_ids: dict[str, int] = {}
        self._ports: dict[str, int] = {}

    def ip_id(self, host: Host) -> int:
        if host.ip not in self._ip_ids:
            self._ip_ids[host.ip] = self.rnd.child("ipid/" + host.ip).between(1, 0xFFFF)
        self._ip_ids[host.ip] = (self._ip_ids[host.ip] + 1) & 0xFFFF
        return self._ip_ids[host.ip]

    def ephemeral_port(self, host: Host, base: int = 49152) -> int:
        """The next client port of a host (sequential, as most stacks allocate them)."""
        if host.ip not in self._ports:
            self._ports[host.ip] = base + self.rnd.child("port/" + host.ip).below(4000)
        self._ports[host.ip] += 1
        return self._ports[host.ip]

    def path(self, client: Host, server: Host) -> "Path":
        return Path(self, client, server)

    def arp_request(self, t: int, sender: Host, target_ip: str, vlan: int | None = None,
                    mark: str | None = None) -> None:
        body = arp(1, sender.mac, sender.ip, "00:00:00:00:00:00", target_ip)
        self.timeline.add(t, ethernet(BROADCAST_MAC, sender.mac, ETH_ARP, body,
                                      sender.vlan if vlan is None else vlan), mark)

    def arp_reply(self, t: int, sender: Host, to: Host, mark: str | None = None) -> None:
        body = arp(2, sender.mac, sender.ip, to.mac, to.ip)
        self.timeline.add(t, ethernet(to.mac, sender.mac, ETH_ARP, body, sender.vlan), mark)

    def arp_exchange(self, t: int, asker: Host, answerer: Host, mark: str | None = None) -> None:
        self.arp_request(t, asker, answerer.ip, mark=mark)
        self.arp_reply(t + 310, answerer, asker, mark=mark)

    def l2(self, t: int, dst_mac: str, src_mac: str, ethertype: int, payload: bytes,
           vlan: int | None, mark: str | None = None) -> None:
        self.timeline.add(t, ethernet(dst_mac, src_mac, ethertype, payload, vlan), mark)


class Path:
    """Layer-2/3 addressing of one client-server pair, as seen at the capture point."""

    def __init__(self, net: Network, client: Host, server: Host):
        self.net = net
        self.client = client
        self.server = server
        same_subnet = (ipaddress.ip_network(f"{client.ip}/24", strict=False)
                       == ipaddress.ip_network(f"{server.ip}/24", strict=False))
        self.routed = not (same_subnet and client.vlan == server.vlan)
        self.vlan = client.vlan

    def ip_frame(self, from_client: bool, proto: int, l4: bytes, dont_fragment: bool = True) -> bytes:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        ttl = src.ttl
        if self.routed:
            rmac = self.net.router.mac
            smac, dmac = (src.mac, rmac) if from_client else (rmac, dst.mac)
            if not from_client:
                ttl -= 1   # the server's packet crossed the router before reaching this VLAN
        else:
            smac, dmac = src.mac, dst.mac
        pkt = ipv4(src.ip, dst.ip, proto, l4, self.net.ip_id(src), ttl, dont_fragment)
        return ethernet(dmac, smac, ETH_IPV4, pkt, self.vlan)

    def udp(self, t: int, from_client: bool, sport: int, dport: int, payload: bytes,
            mark: str | None = None) -> None:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        seg = udp(src.ip, dst.ip, sport, dport, payload)
        self.net.timeline.add(t, self.ip_frame(from_client, 17, seg, dont_fragment=False), mark)

    def icmp_echo(self, t: int, ident: int, seq: int, data: bytes, rtt: int = 400,
                  mark: str | None = None) -> None:
        for when, request in ((t, True), (t + rtt, False)):
            msg = icmp_echo(request, ident, seq, data)
            self.net.timeline.add(when, self.ip_frame(request, 1, msg, dont_fragment=False), mark)


class TcpConn:
    """One TCP connection. Every call takes the time (µs) at which the segment is seen; the
    caller keeps times increasing. ACK fields always acknowledge everything the peer has sent."""

    def __init__(self, net: Network, client: Host, server: Host, dport: int,
                 sport: int | None = None):
        self.path = net.path(client, server)
        self.net = net
        self.sport = sport if sport is not None else net.ephemeral_port(client)
        self.dport = dport
        r = net.rnd.child(f"isn/{client.ip}:{self.sport}->{server.ip}:{dport}")
        self.next_seq = {True: r.bits(32), False: r.bits(32)}   # keyed by "from client"
        self.open_ = False

    def _emit(self, t: int, from_client: bool, flags: int, payload: bytes = b"",
              options: bytes = b"", mark: str | None = None) -> None:
        src, dst = ((self.path.client, self.path.server) if from_client
                    else (self.path.server, self.path.client))
        sport, dport = (self.sport, self.dport) if from_client else (self.dport, self.sport)
        ack = self.next_seq[not from_client] if flags & TCP_ACK else 0
        seg = tcp(src.ip, dst.ip, sport, dport, self.next_seq[from_client], ack, flags,
                  src.window, payload, options)
        self.net.timeline.add(t, self.path.ip_frame(from_client, 6, seg), mark)
        self.next_seq[from_client] = (self.next_seq[from_client] + len(payload)
                                      + (1 if flags & (TCP_SYN | TCP_FIN) else 0)) & 0xFFFFFFFF

    @staticmethod
    def _syn_options(host: Host) -> bytes:
        return struct.pack("!BBH", 2, 4, host.mss) + b"\x01\x01\x04\x02"   # MSS, NOP, NOP, SACK_PERM

    def open(self, t: int, rtt: int = 600, mark: str | None = None) -> int:
        """Three-way handshake starting at t; returns the time of the final ACK."""
        self._emit(t, True, TCP_SYN, options=self._syn_options(self.path.client), mark=mark)
        self._emit(t + rtt // 2, False, TCP_SYN | TCP_ACK,
                   options=self._syn_options(self.path.server), mark=mark)
        self._emit(t + rtt, True, TCP_ACK, mark=mark)
        self.open_ = True
        return t + rtt

    def send(self, t: int, from_client: bool, data: bytes, mark: str | None = None,
             gap: int = 40) -> int:
        """Sends data, split at the receiver's MSS (PSH on the last segment). Returns the time
        of the last segment."""
        peer = self.path.server if from_client else self.path.client
        chunks = [data[i:i + peer.mss] for i in range(0, len(data), peer.mss)] or [b""]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            self._emit(t, from_client, TCP_ACK | (TCP_PSH if last else 0), chunk, mark=mark)
            if not last:
                t += gap
        return t

    def ack(self, t: int, from_client: bool, mark: str | None = None) -> None:
        self._emit(t, from_client, TCP_ACK, mark=mark)

    def exchange(self, t: int, request: bytes, response: bytes, server_delay: int = 900,
                 mark: str | None = None, response_mark: str | None = None,
                 client_ack: bool = False) -> int:
        """Client request, server response (which acknowledges the request); optionally a
        delayed pure ACK from the client. Returns the time the exchange ended."""
        t = self.send(t, True, request, mark=mark)
        t = self.send(t + server_delay, False, response,
                      mark=response_mark if response_mark is not None else mark)
        if client_ack:
            t += 40_000
            self.ack(t, True)
        return t

    def close(self, t: int, from_client: bool = True, rtt: int = 600) -> int:
        self._emit(t, from_client, TCP_FIN | TCP_ACK)
        self._emit(t + rtt // 2, not from_client, TCP_FIN | TCP_ACK)
        self._emit(t + rtt, from_client, TCP_ACK)
        self.open_ = False
        return t + rtt
