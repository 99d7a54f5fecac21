"""Per-packet L2-L4 decode in plain Python. The columnar tier (columns.py) decodes whole chunks
at once for speed; this module is the reference for one frame, used to build the Packet objects
of the deep tier and as the oracle the columnar decode is tested against."""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from plantguard.capture import formats as F

ETH_IPV4, ETH_IPV6, ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD = 0x0800, 0x86DD, 0x8100, 0x88A8, 0x9100
VLAN_TYPES = (ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD)
IPV6_EXT = (0, 43, 60)  # hop-by-hop, routing, destination options (fragment 44 handled apart)
MAX_VLAN_TAGS = 4       # deeper tag stacks are garbage; the columnar decode stops at the same depth
MAX_IPV6_EXT = 4        # extension headers followed before giving up on the L4 header
SNAP_ETHERTYPE = b"\xaa\xaa\x03\x00\x00\x00"   # 802.2 LLC/SNAP, OUI 0: an EtherType follows (RFC 1042)
SNAP_TYPES = (ETH_IPV4, ETH_IPV6, 0x0806)            # decoded as if Ethernet II carried them

# ICMP flows are keyed by the request type. Types that answer (or report on) another host's
# packet: answer type -> the type its flow is keyed by. The sender of an answer is the flow's
# server; any other type's sender is the client. The client's "port" is 0, the server's the
# key type, so an echo request and its reply are one flow and both hosts are seen.
ICMP_ANSWERS = {
    4: {0: 8, 14: 13, 16: 15, 18: 17, 9: 10,          # echo, timestamp, info, mask, router adv.
        3: 3, 11: 11, 12: 12, 5: 5},                   # unreachable, time exceeded, param., redirect
    6: {129: 128, 134: 133, 136: 135, 131: 130,        # echo, router adv., neighbour adv., MLD
        1: 1, 2: 2, 3: 3, 4: 4, 137: 137},             # errors and redirect
}
L4_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 2: "igmp"}
# IGMP is kept as ICMP is: a flow per message type, the sender the client on "port" 0, the
# destination (the group, or all hosts for a query) the server on "port" the type
IGMP = 2


def icmp_ports(version: int, itype: int) -> tuple[int, int]:
    """(sport, dport) of an ICMP message for the flow key (see ICMP_ANSWERS)."""
    req = ICMP_ANSWERS[version].get(itype)
    return (req, 0) if req is not None else (0, itype)


@dataclass(slots=True)
class Layers:
    src_mac: str | None = None
    dst_mac: str | None = None
    ethertype: int = 0
    vlan: int | None = None        # outer VLAN id
    inner_vlan: int | None = None  # QinQ inner id
    l3: bytes | memoryview = b""   # payload after L2 (for layer-2 protocols)
    llc: bool = False              # 802.3 length field instead of an Ethernet type
    ip_version: int = 0
    src: str | None = None
    dst: str | None = None
    ip_proto: int = 0
    fragment: bool = False         # an IPv4/IPv6 fragment other than a whole datagram
    l4: str = ""
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    seq: int = 0
    payload: bytes = b""
    tunnel: int = 0                # outermost tunnel unwrapped to get here (TUNNEL_NAMES), 0 none
    l3_off: int = 0                # where l3 starts in the frame
    l4_off: int = -1               # the IP payload's start and end, relative to l3 (-1: no IP)
    l4_end: int = -1


_MAC_TEXT: dict[bytes, str] = {}   # one text per address, shared by every observation naming it
_MAC_TEXT_MAX = 1 << 16


def mac_text(b: bytes) -> str:
    text = _MAC_TEXT.get(b)
    if text is None:
        if len(_MAC_TEXT) >= _MAC_TEXT_MAX:
            _MAC_TEXT.clear()
        text = _MAC_TEXT[bytes(b)] = b.hex(":")
    return text


MAX_TUNNEL_DEPTH = 3     # tunnels unwrapped inside one another at most
TUN_GRE, TUN_IPV4, TUN_IPV6, TUN_VXLAN, TUN_GENEVE, TUN_TEREDO, TUN_PPPOE, TUN_MPLS, TUN_ERSPAN = range(1, 10)
TUNNEL_NAMES = {TUN_GRE: "GRE", TUN_IPV4: "IPv4-in-IP", TUN_IPV6: "IPv6-in-IP (6in4/4in6)",
                TUN_VXLAN: "VXLAN", TUN_GENEVE: "Geneve", TUN_TEREDO: "Teredo",
                TUN_PPPOE: "PPPoE session", TUN_MPLS: "MPLS", TUN_ERSPAN: "ERSPAN"}
TUNNEL_KEYS = {TUN_GRE: "gre", TUN_IPV4: "ipv4-in-ip", TUN_IPV6: "ipv6-in-ip", TUN_VXLAN: "vxlan",
               TUN_GENEVE: "geneve", TUN_TEREDO: "teredo", TUN_PPPOE: "pppoe", TUN_MPLS: "mpls",
               TUN_ERSPAN: "erspan"}             # the flow's tunnel mark (model.Flow.tunnel)
MAX_MPLS_LABELS = 8


def decode_frame(linktype: int, frame: bytes, _depth: int = 0) -> Layers | None:
    """Decode one frame; None when the link type is not handled or the frame is too short.
    Tunnels (TUNNEL_NAMES) are unwrapped, at most MAX_TUNNEL_DEPTH deep: the layers returned
    are the innermost packet's, with the outer VLAN (and, for an inner IP packet, the outer
    MACs) kept and `tunnel` naming the outermost tunnel."""
    lay = _decode(linktype, frame)
    if lay is None or _depth >= MAX_TUNNEL_DEPTH:
        return lay
    found = tunnel_of(lay, frame)
    if found is None:
        return lay
    kind, start, inner_eth = found
    inner = decode_frame(F.LINKTYPE_ETHERNET if inner_eth else F.LINKTYPE_RAW, frame[start:], _depth + 1)
    if inner is None or not (inner_eth or inner.ip_version):
        return lay
    inner.vlan, inner.inner_vlan = lay.vlan, lay.inner_vlan
    if not inner_eth:
        inner.src_mac, inner.dst_mac = lay.src_mac, lay.dst_mac
    inner.tunnel = kind
    inner.l3_off += start
    return inner


def tunnel_of(lay: Layers, frame: bytes) -> tuple[int, int, bool] | None:
    """(tunnel kind, where the inner packet starts in the frame, inner is Ethernet) for a
    frame that carries a tunnel this decoder unwraps, else None. columns.py has the twin."""
    if not lay.ip_version:
        return _l2_tunnel(lay, frame)
    if lay.fragment or lay.l4_off < 0:
        return None
    a = lay.l3_off + lay.l4_off                           # IP payload start in the frame
    proto = lay.ip_proto
    if proto == 4 or proto == 41:
        return (TUN_IPV4 if proto == 4 else TUN_IPV6), a, False
    if proto == 47:
        return _gre(frame, a, min(lay.l4_end, len(frame) - lay.l3_off) - lay.l4_off)
    if lay.l4 == "udp":
        return _udp_tunnel(lay, frame, a + 8)
    return None


def _l2_tunnel(lay: Layers, frame: bytes) -> tuple[int, int, bool] | None:
    """MPLS (IP below the bottom label) and PPPoE sessions carrying IP."""
    n, l3 = len(frame), lay.l3_off
    if lay.ethertype in (0x8847, 0x8848):
        for i in range(MAX_MPLS_LABELS):
            if l3 + 4 * i + 4 > n:
                return None
            if frame[l3 + 4 * i + 2] & 1:           # bottom of stack
                start = l3 + 4 * i + 4
                return (TUN_MPLS, start, False) if start < n and frame[start] >> 4 in (4, 6) else None
        return None
    if lay.ethertype == 0x8864 and l3 + 8 <= n and _U16.unpack_from(frame, l3 + 6)[0] in (0x0021, 0x0057):
        return TUN_PPPOE, l3 + 8, False
    return None


def _gre(frame: bytes, a: int, size: int) -> tuple[int, int, bool] | None:
    """GRE version 0 carrying IP or Ethernet, and ERSPAN I/II/III (GRE payload at a)."""
    if size < 4:
        return None
    flags, ptype = struct.unpack_from("!HH", frame, a)
    if flags & 0x4007:                                # routing present, or not version 0
        return None
    hl = 4 + 4 * ((flags >> 15) & 1) + 4 * ((flags >> 13) & 1) + 4 * ((flags >> 12) & 1)
    if ptype in (ETH_IPV4, ETH_IPV6):
        return TUN_GRE, a + hl, False
    if ptype == 0x6558:
        return TUN_GRE, a + hl, True
    if ptype == 0x88BE:                               # ERSPAN II has a sequence number; I not
        return TUN_ERSPAN, a + hl + (8 if flags & 0x1000 else 0), True
    if ptype == 0x22EB and size >= hl + 12:           # ERSPAN III (+ 8 with the O bit)
        return TUN_ERSPAN, a + hl + 12 + (8 if frame[a + hl + 11] & 1 else 0), True
    return None


def _udp_tunnel(lay: Layers, frame: bytes, p: int) -> tuple[int, int, bool] | None:
    """VXLAN, Geneve and Teredo, by port (p: the UDP payload start in the frame)."""
    plen = len(lay.payload)
    if lay.dport == 4789 and plen >= 8:
        return TUN_VXLAN, p + 8, True
    if lay.dport == 6081 and plen >= 8 and not frame[p] >> 6:
        ptype = _U16.unpack_from(frame, p + 2)[0]
        start = p + 8 + (frame[p] & 0x3F) * 4
        if ptype == 0x6558:
            return TUN_GENEVE, start, True
        return (TUN_GENEVE, start, False) if ptype in (ETH_IPV4, ETH_IPV6) else None
    if (lay.dport == 3544 or lay.sport == 3544) and plen >= 1:
        start = p + 8 if plen >= 8 and frame[p] == 0 and frame[p + 1] == 0 else p
        if start < len(frame) and frame[start] >> 4 == 6:
            return TUN_TEREDO, start, False
    return None


def _decode(linktype: int, frame: bytes) -> Layers | None:
    lay = Layers()
    if linktype == F.LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        lay.dst_mac, lay.src_mac = mac_text(frame[0:6]), mac_text(frame[6:12])
        et = struct.unpack_from("!H", frame, 12)[0]
        off = 14
        while et in VLAN_TYPES and off + 4 <= len(frame) and off < 14 + 4 * MAX_VLAN_TAGS:
            vid = struct.unpack_from("!H", frame, off)[0] & 0x0FFF
            if lay.vlan is None:
                lay.vlan = vid
            else:
                lay.inner_vlan = vid
            et = struct.unpack_from("!H", frame, off + 2)[0]
            off += 4
        if et < 0x0600:  # 802.3 length: LLC follows (CDP, STP, ...)
            if frame[off:off + 6] == SNAP_ETHERTYPE and off + 8 <= len(frame) \
                    and _U16.unpack_from(frame, off + 6)[0] in SNAP_TYPES:
                et = _U16.unpack_from(frame, off + 6)[0]   # SNAP with OUI 0: an EtherType
                off += 8
            else:
                lay.llc = True
        lay.ethertype = et
        lay.l3 = l3 = frame[off:]
        lay.l3_off = off
        if et == ETH_IPV4 or et == ETH_IPV6:
            _ip(lay, l3)
        return lay
    if linktype == F.LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        alen = struct.unpack_from("!H", frame, 4)[0]
        if alen == 6:
            lay.src_mac = mac_text(frame[6:12])
        et = struct.unpack_from("!H", frame, 14)[0]
        lay.l3_off = 16
        return _after_l2(lay, et, frame[16:])
    if linktype == F.LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        et = struct.unpack_from("!H", frame, 0)[0]
        if frame[11] == 6:
            lay.src_mac = mac_text(frame[12:18])
        lay.l3_off = 20
        return _after_l2(lay, et, frame[20:])
    if linktype in (F.LINKTYPE_RAW, F.LINKTYPE_RAW_ALT, F.LINKTYPE_RAW_ALT2, F.LINKTYPE_IPV4, F.LINKTYPE_IPV6):
        if not frame:
            return None
        v = frame[0] >> 4
        return _after_l2(lay, ETH_IPV4 if v == 4 else ETH_IPV6 if v == 6 else 0, frame)
    if linktype in (F.LINKTYPE_NULL, F.LINKTYPE_LOOP):
        if len(frame) < 4:
            return None
        fam = struct.unpack_from("<I", frame, 0)[0]
        if fam > 0xFFFF:
            fam = struct.unpack_from(">I", frame, 0)[0]
        et = ETH_IPV4 if fam == 2 else ETH_IPV6 if fam in (10, 24, 28, 30) else 0
        lay.l3_off = 4
        return _after_l2(lay, et, frame[4:])
    found = link_header(linktype, frame)
    if found is None:
        return None
    l3, et, smac, dmac = found
    if smac is not None:
        lay.src_mac, lay.dst_mac = mac_text(smac), mac_text(dmac)
    lay.l3_off = l3
    return _after_l2(lay, et, frame[l3:])


PPP_TYPES = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}
NFLOG_PAYLOAD, MAX_NFLOG_TLVS = 9, 16


def link_header(linktype: int, frame: bytes) -> tuple[int, int, bytes | None, bytes | None] | None:
    """(L3 offset, ethertype, source MAC, destination MAC) for the link types beyond Ethernet,
    SLL, raw IP and loopback: PPP, PPP in HDLC framing, Cisco HDLC, Frame Relay, NFLOG and
    802.11 data frames (plain, radiotap, PPI) with LLC/SNAP. None: not decoded (802.11
    management, control, protected and null frames among them). columns.py has the twin."""
    n = len(frame)
    if linktype in (F.LINKTYPE_PPP, F.LINKTYPE_PPP_HDLC):
        o = 2 if n >= 2 and frame[0] == 0xFF and frame[1] == 0x03 else 0
        if n < o + 2:
            return None
        et = PPP_TYPES.get(_U16.unpack_from(frame, o)[0])
        return None if et is None else (o + 2, et, None, None)
    if linktype == F.LINKTYPE_C_HDLC:
        return None if n < 4 else (4, _U16.unpack_from(frame, 2)[0], None, None)
    if linktype == F.LINKTYPE_FRELAY:
        if n < 4 or frame[2] != 0x03:
            return None
        if frame[3] == 0xCC:
            return 4, ETH_IPV4, None, None
        if frame[3] == 0x8E:
            return 4, ETH_IPV6, None, None
        s = 4 if frame[3] == 0x80 else 5 if frame[3] == 0 and n >= 5 and frame[4] == 0x80 else 0
        if not s or n < s + 5:                            # SNAP: OUI, then the ethertype
            return None
        return s + 5, _U16.unpack_from(frame, s + 3)[0], None, None
    if linktype == F.LINKTYPE_NFLOG:
        if n < 4 or frame[0] not in (2, 10):
            return None
        o = 4
        for _ in range(MAX_NFLOG_TLVS):
            if o + 4 > n:
                return None
            tlen, ttype = struct.unpack_from("<HH", frame, o)
            if tlen < 4:
                return None
            if ttype == NFLOG_PAYLOAD:
                return o + 4, ETH_IPV4 if frame[0] == 2 else ETH_IPV6, None, None
            o += (tlen + 3) & ~3
        return None
    if linktype == F.LINKTYPE_IEEE802_11_RADIOTAP or linktype == F.LINKTYPE_PPI:
        if n < 4:
            return None
        o = struct.unpack_from("<H", frame, 2)[0]
        if linktype == F.LINKTYPE_PPI and (n < 8 or struct.unpack_from("<I", frame, 4)[0] != F.LINKTYPE_IEEE802_11):
            return None
        return _wlan(frame, o)
    if linktype == F.LINKTYPE_IEEE802_11:
        return _wlan(frame, 0)
    return None


def _wlan(frame: bytes, o: int):
    """An 802.11 data frame at frame[o:] with LLC/SNAP: (L3 offset, ethertype, SA, DA)."""
    if len(frame) < o + 24:
        return None
    fc0, fc1 = frame[o], frame[o + 1]
    if (fc0 >> 2) & 3 != 2 or fc0 & 0x40 or fc1 & 0x40:   # not data, a null frame, or protected
        return None
    hl = 24 + (6 if fc1 & 3 == 3 else 0)
    if fc0 & 0x80:                                        # QoS data: QoS control, HT control
        hl += 2 + (4 if fc1 & 0x80 else 0)
    s = o + hl
    if len(frame) < s + 8 or frame[s:s + 6] != b"\xaa\xaa\x03\x00\x00\x00":
        return None
    to_ds, from_ds = fc1 & 1, fc1 & 2
    da = frame[o + 16:o + 22] if to_ds else frame[o + 4:o + 10]
    sa = (frame[o + 24:o + 30] if to_ds else frame[o + 16:o + 22]) if from_ds else frame[o + 10:o + 16]
    return s + 8, _U16.unpack_from(frame, s + 6)[0], sa, da


def _after_l2(lay: Layers, et: int, rest: bytes) -> Layers:
    lay.ethertype = et
    lay.l3 = rest
    if et in (ETH_IPV4, ETH_IPV6):
        _ip(lay, rest)
    return lay


_U16 = struct.Struct("!H")
_IPV4 = struct.Struct("!BxHxxHxB2x4s4s")   # version/ihl, total length, flags/offset, protocol, src, dst
_TCP = struct.Struct("!HHI")
_UDP = struct.Struct("!HHH")
_V4_TEXT: dict[bytes, str] = {}            # a plant has few addresses and sees them over and over
_V4_TEXT_MAX = 1 << 16


def _v4_text(raw: bytes) -> str:
    text = _V4_TEXT.get(raw)
    if text is None:
        if len(_V4_TEXT) >= _V4_TEXT_MAX:
            _V4_TEXT.clear()
        text = _V4_TEXT[raw] = socket.inet_ntop(socket.AF_INET, raw)
    return text


def _ip(lay: Layers, b: bytes) -> None:
    n = len(b)
    if n < 1:
        return
    v = b[0] >> 4
    if v == 4 and n >= 20:
        vihl, total, flags_frag, proto, src, dst = _IPV4.unpack_from(b, 0)
        ihl = (vihl & 0x0F) * 4
        if ihl < 20:
            return
        lay.ip_version = 4
        lay.ip_proto = proto
        lay.src = _v4_text(src)
        lay.dst = _v4_text(dst)
        end = min(n, total) if total >= ihl else n
        if flags_frag & 0x3FFF:  # more-fragments flag or a non-zero offset: the Reassembler's
            lay.fragment = True
            return
        _l4(lay, b, ihl, end)
    elif v == 6 and n >= 40:
        lay.ip_version = 6
        lay.src = socket.inet_ntop(socket.AF_INET6, bytes(b[8:24]))
        lay.dst = socket.inet_ntop(socket.AF_INET6, bytes(b[24:40]))
        plen = _U16.unpack_from(b, 4)[0]
        nxt = b[6]
        off = 40
        end = min(n, 40 + plen) if plen else n
        hops = 0
        while nxt in IPV6_EXT and off + 8 <= end and hops < MAX_IPV6_EXT:
            hops += 1
            nxt, hlen = b[off], (b[off + 1] + 1) * 8
            off += hlen
        if nxt == 44:
            lay.fragment = True
            # the first fragment names the upper protocol; the datagram is the Reassembler's
            lay.ip_proto = b[off] if off + 8 <= end and not _U16.unpack_from(b, off + 2)[0] >> 3 else 44
            return
        lay.ip_proto = nxt
        _l4(lay, b, off, end)


def _l4(lay: Layers, b: bytes, start: int, end: int) -> None:
    """The TCP/UDP header at b[start:end] (offsets, so the segment is not copied first)."""
    if end > len(b):
        end = len(b)
    lay.l4_off, lay.l4_end = start, end
    size = end - start
    if lay.ip_proto == 6 and size >= 20:
        lay.l4 = "tcp"
        lay.sport, lay.dport, lay.seq = _TCP.unpack_from(b, start)
        doff = (b[start + 12] >> 4) * 4
        lay.tcp_flags = b[start + 13]
        lay.payload = bytes(b[start + doff:end]) if doff >= 20 else b""
    elif lay.ip_proto == 17 and size >= 8:
        lay.l4 = "udp"
        lay.sport, lay.dport, ulen = _UDP.unpack_from(b, start)
        stop = start + ulen if 8 <= ulen <= size else end
        lay.payload = bytes(b[start + 8:stop])
    elif size >= 4 and ((lay.ip_proto == 1 and lay.ip_version == 4) or (lay.ip_proto == 58 and lay.ip_version == 6)):
        lay.l4 = "icmp" if lay.ip_proto == 1 else "icmpv6"
        lay.sport, lay.dport = icmp_ports(lay.ip_version, b[start])
    elif lay.ip_proto == IGMP and lay.ip_version == 4 and size >= 4:
        lay.l4 = "igmp"
        lay.sport, lay.dport = 0, b[start]


# ---- what is not decoded, by kind (the columnar twin is columns.undecoded) ----
LINK_NAMES = {9: "PPP", 50: "PPP in HDLC framing", 104: "Cisco HDLC", 105: "802.11",
              107: "Frame Relay", 119: "802.11 with Prism header", 127: "802.11 with radiotap",
              163: "802.11 with AVS header", 192: "802.11 with PPI", 195: "802.15.4",
              239: "NFLOG", 204: "PPP with direction"}
TUNNEL_IP_PROTOS = {47: "GRE", 4: "IPv4-in-IP", 41: "IPv6-in-IP (6in4/4in6)", 115: "L2TPv3"}
TUNNEL_UDP_PORTS = {4789: "VXLAN", 6081: "Geneve", 3544: "Teredo", 2152: "GTP-U", 1701: "L2TP"}
TUNNEL_ETHERTYPES = {0x8864: "PPPoE session", 0x8847: "MPLS", 0x8848: "MPLS multicast"}
UNDECODED_LINK, TUNNEL, UNDECODED_IP = "undecoded_link_type:", "tunnel_not_unwrapped:", "undecoded_ip_proto:"
UNDECODED_ETHER, UNDECODED_LLC = "undecoded_ethertype:", "undecoded_llc:"   # layer-2 frames no module decodes
# readable names of EtherTypes and 802.2 ids met in plants that no module decodes (only for the text)
ETHERTYPE_NAMES = {0x88B8: "IEC 61850 GOOSE", 0x88B9: "IEC 61850 GSE management", 0x88BA: "IEC 61850 Sampled Values",
                   0x88E3: "MRP media redundancy", 0x88F7: "PTP", 0x88A4: "EtherCAT", 0x88AB: "Ethernet POWERLINK",
                   0x892F: "HSR", 0x88FB: "PRP supervision", 0x888E: "802.1X EAPOL", 0x88E5: "MACsec",
                   0x8809: "slow protocols (LACP)", 0x88CC: "LLDP", 0x8892: "PROFINET", 0x9000: "loopback (CTP)",
                   0x8035: "RARP", 0x8100: "802.1Q, more VLAN tags than decoded", 0x88A8: "802.1ad, more VLAN tags than decoded",
                   0x8137: "IPX", 0x80F3: "AppleTalk AARP", 0x86DD: "IPv6, header cut", 0x0800: "IPv4, header cut"}
LLC_NAMES = {"sap_0x42": "spanning tree (STP)", "sap_0xfe": "ISO network layer (IS-IS, CLNP, ES-IS)",
             "sap_0xf0": "NetBIOS", "sap_0xe0": "IPX", "sap_0x82": "BACnet/Ethernet", "sap_0xaa": "SNAP, header cut",
             "snap_0x00000c_0x010b": "Cisco PVST+", "snap_0x00000c_0x2004": "Cisco DTP",
             "snap_0x00000c_0x2003": "Cisco VTP", "snap_0x00000c_0x0111": "Cisco UDLD"}


def llc_id(l3: bytes) -> str:
    """The counter id of an 802.2 LLC frame no module decodes: its SNAP OUI and protocol id
    (the deep tier's test: aa aa 03 and 8 bytes), else its DSAP. columns.undecoded has the twin."""
    if len(l3) >= 8 and l3[:3] == b"\xaa\xaa\x03":
        return f"snap_0x{l3[3:6].hex()}_0x{l3[6:8].hex()}"
    return f"sap_0x{l3[0]:02x}" if l3 else "sap_none"


def ethertype_name(key: str) -> str:
    """'EtherType 0x88b8 (IEC 61850 GOOSE)' / 'LLC sap_0x42 (spanning tree (STP))' for an undecoded_* key."""
    if key.startswith(UNDECODED_ETHER):
        et = key[len(UNDECODED_ETHER):]
        return f"EtherType {et} ({ETHERTYPE_NAMES.get(int(et, 16), 'unknown')})"
    lid = key[len(UNDECODED_LLC):]
    return f"802.2 LLC {lid.replace('_', ' ')} ({LLC_NAMES.get(lid, 'unknown')})"
UNWRAPPED = "tunnelled:"    # packets unwrapped from a tunnel of that kind (not a gap: a marker)


def undecoded_kind(linktype: int, lay: Layers | None) -> str | None:
    """The counter a frame adds to because part of it is not decoded (None: fully decoded, or
    a layer-2 protocol): its link type, the tunnel it is carried in, or its IP protocol."""
    if lay is None:
        return f"{UNDECODED_LINK}{linktype}"
    if lay.tunnel:
        return f"{UNWRAPPED}{TUNNEL_NAMES[lay.tunnel]}"
    if lay.ip_version and not lay.fragment:
        if lay.ip_proto in TUNNEL_IP_PROTOS:
            return f"{TUNNEL}{TUNNEL_IP_PROTOS[lay.ip_proto]}"
        if lay.l4 == "udp":
            for port in (lay.dport, lay.sport):
                if port in TUNNEL_UDP_PORTS:
                    return f"{TUNNEL}{TUNNEL_UDP_PORTS[port]}"
        if not lay.l4:
            return f"{UNDECODED_IP}{lay.ip_proto}"
    elif not lay.ip_version and lay.ethertype in TUNNEL_ETHERTYPES:
        return f"{TUNNEL}{TUNNEL_ETHERTYPES[lay.ethertype]}"
    elif not lay.ip_version:
        # imported here: the protocol registry imports capture modules
        from plantguard.protocols.registry import layer2_ids
        ethertypes, snaps = layer2_ids()
        if lay.llc:
            l3 = lay.l3
            snap = len(l3) >= 8 and l3[:3] == b"\xaa\xaa\x03" and (bytes(l3[3:6]), int.from_bytes(l3[6:8], "big")) in snaps
            return None if snap else f"{UNDECODED_LLC}{llc_id(bytes(l3))}"
        if lay.ethertype >= 0x0600 and lay.ethertype not in ethertypes:
            return f"{UNDECODED_ETHER}0x{lay.ethertype:04x}"
    return None


def undecoded_notes(counters: dict[str, int]) -> list[str]:
    """One note per kind of frame that was not (fully) decoded."""
    notes = []
    for k in sorted(counters):
        n = counters[k]
        if not n:
            continue
        if k.startswith(UNDECODED_LINK):
            lt = int(k[len(UNDECODED_LINK):])
            name = LINK_NAMES.get(lt, "unknown")
            notes.append(f"{n:,} frames of link type {lt} ({name}) not decoded: their hosts are missing")
        elif k.startswith(TUNNEL):
            notes.append(f"{n:,} packets in {k[len(TUNNEL):]} tunnels not unwrapped: the hosts and "
                         "flows inside are missing (the outer endpoints are kept)")
        elif k.startswith(UNWRAPPED):
            notes.append(f"{n:,} packets unwrapped from {k[len(UNWRAPPED):]} tunnels: the hosts and "
                         "flows inside are kept, the tunnel endpoints are not flows")
        elif k.startswith((UNDECODED_ETHER, UNDECODED_LLC)):
            notes.append(f"{n:,} frames of {ethertype_name(k)} not decoded: no module reads them")
        elif k.startswith(UNDECODED_IP):
            notes.append(f"{n:,} packets of IP protocol {k[len(UNDECODED_IP):]} not decoded past the "
                         "IP header (the hosts are kept as addresses only)")
    if counters.get("fragments"):
        notes.append(fragment_note(counters))
    return notes


def fragment_note(c: dict[str, int]) -> str:
    """What became of the IP fragments: reassembled, or lost (and why)."""
    text = (f"{c['fragments']:,} IP fragments: {c.get(REASSEMBLED, 0):,} datagrams reassembled and "
            "decoded as one packet each (at their last fragment)")
    lost = [f"{c[k]:,} {why}" for k, why in ((INCOMPLETE, "incomplete (a fragment missing, timed out or "
                                              "cut by the capture's end)"),
                                             (OVER_BUDGET, "dropped over the reassembly budget"))
            if c.get(k)]
    if lost:
        text += "; datagrams lost: " + ", ".join(lost) + " (their fragments only counted here)"
    if c.get(OVERLAPS):
        text += f"; {c[OVERLAPS]:,} fragments overlapped bytes already held (the lower offset kept)"
    return text


# ---- IP fragment reassembly (bounded), shared by the engine and the reference ----
REASSEMBLED, INCOMPLETE, OVER_BUDGET, OVERLAPS = ("datagrams_reassembled", "datagrams_incomplete",
                                                  "datagrams_dropped", "fragment_overlaps")
FRAGMENT_COUNTERS = ("fragments", REASSEMBLED, INCOMPLETE, OVER_BUDGET, OVERLAPS)
class Reassembler:
    """Reassembles IPv4 and IPv6 fragments into whole datagrams. feed() takes one fragment's IP
    packet (from its IP header) and returns the whole datagram, as an unfragmented IP packet,
    when its last missing piece arrives, else None. Bounded: at most max_datagrams pending and
    max_bytes held (the oldest pending datagram is dropped first, counted in `dropped`), and a
    datagram whose first fragment is older than timeout seconds of capture time is dropped
    (`expired`). A piece overlapping bytes already held is counted in `overlaps`; where pieces
    overlap, the one at the lower offset wins (a repeat at the same offset keeps the longer
    piece). The engine and the reference keep one per capture and feed it in capture order."""

    def __init__(self, max_datagrams: int = 4096, max_bytes: int = 16 << 20, timeout: float = 30.0):
        from collections import OrderedDict
        self.max_datagrams, self.max_bytes, self.timeout = max_datagrams, max_bytes, timeout
        self.pending: OrderedDict = OrderedDict()   # key -> [first ts, header, {offset: bytes}, total or -1, size]
        self.held = 0
        self.reassembled = self.overlaps = self.expired = self.dropped = 0

    def counts(self) -> dict[str, int]:
        """The counters of a finished capture: datagrams still pending never completed."""
        return {REASSEMBLED: self.reassembled, INCOMPLETE: self.expired + len(self.pending),
                OVER_BUDGET: self.dropped, OVERLAPS: self.overlaps}

    def _drop(self, key, counter: str) -> None:
        entry = self.pending.pop(key)
        self.held -= entry[4]
        setattr(self, counter, getattr(self, counter) + 1)

    def feed(self, ts: float, ip: bytes) -> bytes | None:
        parsed = _fragment_parts(bytes(ip))
        if parsed is None:
            return None
        key, header, offset, more, data = parsed
        while self.pending:
            k, e = next(iter(self.pending.items()))
            if e[0] >= ts - self.timeout:
                break
            self._drop(k, "expired")
        entry = self.pending.get(key)
        if entry is None:
            while self.pending and (len(self.pending) >= self.max_datagrams
                                    or self.held + len(data) > self.max_bytes):
                self._drop(next(iter(self.pending)), "dropped")
            if len(data) > self.max_bytes:
                self.dropped += 1
                return None
            entry = self.pending[key] = [ts, None, {}, -1, 0]
        pieces = entry[2]
        end = offset + len(data)
        for o, d in pieces.items():
            if o < end and offset < o + len(d):
                self.overlaps += 1
                break
        if offset not in pieces or len(pieces[offset]) < len(data):
            entry[4] += len(data) - len(pieces.get(offset, b""))
            self.held += len(data) - len(pieces.get(offset, b""))
            pieces[offset] = data
        if offset == 0:
            entry[1] = header
        if not more:
            entry[3] = end
        if entry[1] is None or entry[3] < 0:
            return None
        out = bytearray(entry[3])
        covered = 0
        for o in sorted(pieces, reverse=True):       # lower offsets written last, so they win
            d = pieces[o][:max(0, entry[3] - o)]
            out[o:o + len(d)] = d
        spans = sorted((o, o + len(d)) for o, d in pieces.items())
        for o, e in spans:
            if o > covered:
                return None
            covered = max(covered, e)
        if covered < entry[3]:
            return None
        self.pending.pop(key)
        self.held -= entry[4]
        self.reassembled += 1
        return _whole_datagram(entry[1], bytes(out))


def _fragment_parts(b: bytes):
    """(key, unfragmentable header, offset, more fragments, data) of an IP fragment, else None."""
    n = len(b)
    if n >= 20 and b[0] >> 4 == 4:
        ihl = (b[0] & 0x0F) * 4
        total = _U16.unpack_from(b, 2)[0]
        ff = _U16.unpack_from(b, 6)[0]
        if ihl < 20 or not ff & 0x3FFF or total < ihl:
            return None
        key = (4, b[12:16], b[16:20], b[9], b[4:6])
        return key, b[:ihl], (ff & 0x1FFF) * 8, bool(ff & 0x2000), b[ihl:min(n, total)]
    if n >= 40 and b[0] >> 4 == 6:
        plen = _U16.unpack_from(b, 4)[0]
        end = min(n, 40 + plen) if plen else n
        nxt, off, at, hops = b[6], 40, 6, 0
        while nxt in IPV6_EXT and off + 8 <= end and hops < MAX_IPV6_EXT:
            hops += 1
            at = off
            nxt, off = b[off], off + (b[off + 1] + 1) * 8
        if nxt != 44 or off + 8 > end:
            return None
        fo = _U16.unpack_from(b, off + 2)[0]
        hdr = bytearray(b[:off])
        hdr[at] = b[off]                              # the next header after the fragment header
        key = (6, b[8:24], b[24:40], b[off + 4:off + 8])
        return key, bytes(hdr), (fo >> 3) * 8, bool(fo & 1), b[off + 8:end]
    return None


def adopt_link(lay: Layers, frag: Layers) -> Layers:
    """A reassembled datagram (decoded as raw IP) takes its last fragment's link-layer fields:
    the VLANs, the MACs when its own decode has none, and the tunnel it came out of.
    columns.adopt_link is the twin."""
    lay.vlan, lay.inner_vlan = frag.vlan, frag.inner_vlan
    if lay.src_mac is None:
        lay.src_mac, lay.dst_mac = frag.src_mac, frag.dst_mac
    if frag.tunnel:
        lay.tunnel = frag.tunnel
    return lay


def _whole_datagram(header: bytes, payload: bytes) -> bytes:
    h = bytearray(header)
    if h[0] >> 4 == 4:
        struct.pack_into("!H", h, 2, min(0xFFFF, len(h) + len(payload)))
        struct.pack_into("!H", h, 6, 0)
    else:
        struct.pack_into("!H", h, 4, min(0xFFFF, len(h) - 40 + len(payload)))
    return bytes(h) + payload
