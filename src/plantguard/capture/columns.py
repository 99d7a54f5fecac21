"""The columnar tier's L2-L4 decode: Ethernet (802.1Q/QinQ), Linux SLL/SLL2, raw IP and BSD
loopback, then IPv4/IPv6 and TCP/UDP header fields, for every record of a chunk at once.

Each step gathers a few header bytes of all records into a small matrix (fancy indexing on
the capture buffer) and computes fields with array operations; variable VLAN depth, IPv4
header lengths and IPv6 extension headers are handled with masks. The result must equal
layers.decode_frame() for every frame (a hypothesis test holds the two together)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plantguard.capture import formats as F
from plantguard.capture.layers import (ICMP_ANSWERS, MAX_IPV6_EXT, MAX_VLAN_TAGS, TUNNEL, TUNNEL_ETHERTYPES,
                                       TUNNEL_IP_PROTOS, TUNNEL_UDP_PORTS, UNDECODED_IP, UNDECODED_LINK)
from plantguard.capture.walk import gather_compiled

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TYPES = np.array([0x8100, 0x88A8, 0x9100], dtype=np.int32)
RAW_LINKS = (F.LINKTYPE_RAW, F.LINKTYPE_RAW_ALT, F.LINKTYPE_RAW_ALT2, F.LINKTYPE_IPV4, F.LINKTYPE_IPV6)
NULL_LINKS = (F.LINKTYPE_NULL, F.LINKTYPE_LOOP)
IPV6_EXT = np.array([0, 43, 60], dtype=np.int32)
L2_WIDTH = 14 + 4 * MAX_VLAN_TAGS + 2


def _reply_table(answers: dict[int, int]) -> np.ndarray:
    """ICMP type -> the request type it answers (-1: not an answer), for all 256 types."""
    t = np.full(256, -1, np.int32)
    for ans, req in answers.items():
        t[ans] = req
    return t


ICMP_REPLY_OF = {v: _reply_table(a) for v, a in ICMP_ANSWERS.items()}


@dataclass
class Columns:
    """Decoded header fields of every record in a chunk (one array element per record)."""
    ok: np.ndarray         # bool: link layer decoded (layers.decode_frame would not return None)
    ethertype: np.ndarray  # int32
    vlan: np.ndarray       # int32, -1 = untagged
    inner_vlan: np.ndarray  # int32, -1 = none
    llc: np.ndarray        # bool
    dst_mac: np.ndarray    # int64 (48 bits), -1 = none
    src_mac: np.ndarray
    l3: np.ndarray         # int64: offset of the L3 header inside the record
    ip_version: np.ndarray  # int8: 0, 4 or 6
    ip_proto: np.ndarray   # int32
    fragment: np.ndarray   # bool
    l4: np.ndarray         # int8: 6 (tcp), 17 (udp), 1 (icmp), 58 (icmpv6) or 0
    src_hi: np.ndarray     # uint64: IPv6 high half (0 for IPv4)
    src_lo: np.ndarray     # uint64: IPv6 low half or the IPv4 address
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    sport: np.ndarray      # int32 (ICMP: see layers.icmp_ports)
    dport: np.ndarray
    tcp_flags: np.ndarray  # int32
    seq: np.ndarray        # int64
    pay_off: np.ndarray    # int64: absolute offset of the L4 payload in the buffer
    pay_len: np.ndarray    # int64

    def __len__(self) -> int:
        return len(self.ok)

    def take(self, rows: np.ndarray) -> "Columns":
        return Columns(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))


def gather(arr: np.ndarray, base: np.ndarray, width: int) -> np.ndarray:
    """width bytes from each base offset as an (N, width) uint8 matrix. Reads past the end of
    the buffer are clamped; callers mask fields by the record's captured length."""
    if gather_compiled is not None and len(arr):
        return gather_compiled(arr, np.ascontiguousarray(base, dtype=np.int64), width)
    idx = base[:, None] + np.arange(width, dtype=np.int64)
    np.minimum(idx, len(arr) - 1, out=idx)
    np.maximum(idx, 0, out=idx)
    return arr[idx]


def _u16(m: np.ndarray, i: int) -> np.ndarray:
    return (m[:, i].astype(np.int32) << 8) | m[:, i + 1]


def _u32(m: np.ndarray, i: int) -> np.ndarray:
    return ((m[:, i].astype(np.int64) << 24) | (m[:, i + 1].astype(np.int64) << 16)
            | (m[:, i + 2].astype(np.int64) << 8) | m[:, i + 3])


def _u64(m: np.ndarray, i: int) -> np.ndarray:
    return np.ascontiguousarray(m[:, i:i + 8]).view(">u8")[:, 0].astype(np.uint64)


def _mac(m: np.ndarray, i: int) -> np.ndarray:
    out = m[:, i].astype(np.int64)
    for k in range(1, 6):
        out = (out << 8) | m[:, i + k]
    return out


def decode(arr: np.ndarray, offsets: np.ndarray, caplen: np.ndarray, linktype: np.ndarray) -> Columns:
    """Decode all records of a chunk. arr is the capture buffer as uint8."""
    n = len(offsets)
    off = offsets.astype(np.int64)
    cap = caplen.astype(np.int64)
    lt = linktype
    h = gather(arr, off, L2_WIDTH)

    ok = np.zeros(n, bool)
    et = np.zeros(n, np.int32)
    l3 = np.zeros(n, np.int64)
    vlan = np.full(n, -1, np.int32)
    inner = np.full(n, -1, np.int32)
    llc = np.zeros(n, bool)
    dmac = np.full(n, -1, np.int64)
    smac = np.full(n, -1, np.int64)

    eth = (lt == F.LINKTYPE_ETHERNET) & (cap >= 14)
    if eth.any():
        ok |= eth
        dmac = np.where(eth, _mac(h, 0), dmac)
        smac = np.where(eth, _mac(h, 6), smac)
        t = _u16(h, 12)
        o = np.full(n, 14, np.int64)
        for k in range(MAX_VLAN_TAGS):
            pos = 14 + 4 * k           # tags are back to back, so tag k is at a fixed offset
            tagged = eth & np.isin(t, VLAN_TYPES) & (pos + 4 <= cap) & (o == pos)
            if not tagged.any():
                break
            vid = _u16(h, pos) & 0x0FFF
            first = tagged & (vlan < 0)
            vlan = np.where(first, vid, vlan)
            inner = np.where(tagged & ~first, vid, inner)
            t = np.where(tagged, _u16(h, pos + 2), t)
            o += 4 * tagged
        et = np.where(eth, t, et)
        l3 = np.where(eth, o, l3)
        llc = eth & (t < 0x0600)

    sll = (lt == F.LINKTYPE_LINUX_SLL) & (cap >= 16)
    if sll.any():
        ok |= sll
        smac = np.where(sll & (_u16(h, 4) == 6), _mac(h, 6), smac)
        et = np.where(sll, _u16(h, 14), et)
        l3 = np.where(sll, 16, l3)
    sll2 = (lt == F.LINKTYPE_LINUX_SLL2) & (cap >= 20)
    if sll2.any():
        ok |= sll2
        smac = np.where(sll2 & (h[:, 11] == 6), _mac(h, 12), smac)
        et = np.where(sll2, _u16(h, 0), et)
        l3 = np.where(sll2, 20, l3)
    raw = np.isin(lt, RAW_LINKS) & (cap >= 1)
    if raw.any():
        ok |= raw
        v = h[:, 0] >> 4
        et = np.where(raw, np.where(v == 4, ETH_IPV4, np.where(v == 6, ETH_IPV6, 0)), et)
        # l3 stays 0
    null = np.isin(lt, NULL_LINKS) & (cap >= 4)
    if null.any():
        ok |= null
        le = (h[:, 0].astype(np.int64) | (h[:, 1].astype(np.int64) << 8)
              | (h[:, 2].astype(np.int64) << 16) | (h[:, 3].astype(np.int64) << 24))
        fam = np.where(le > 0xFFFF, _u32(h, 0), le)
        fam_et = np.where(fam == 2, ETH_IPV4, np.where(np.isin(fam, (10, 24, 28, 30)), ETH_IPV6, 0))
        et = np.where(null, fam_et, et)
        l3 = np.where(null, 4, l3)

    # ---- IPv4 / IPv6 ----
    avail3 = cap - l3
    isip = ok & ((et == ETH_IPV4) | (et == ETH_IPV6)) & (avail3 >= 1)
    g3 = gather(arr, off + l3, 40)
    ver = g3[:, 0] >> 4
    ihl = (g3[:, 0] & 0x0F).astype(np.int64) * 4
    v4 = isip & (avail3 >= 20) & (ver == 4) & (ihl >= 20)
    v6 = isip & (avail3 >= 40) & (ver == 6)
    ip_version = np.where(v4, 4, np.where(v6, 6, 0)).astype(np.int8)

    total = _u16(g3, 2).astype(np.int64)
    frag4 = v4 & ((_u16(g3, 6) & 0x3FFF) != 0)
    end4 = np.where(total >= ihl, np.minimum(avail3, total), avail3)

    plen6 = _u16(g3, 4).astype(np.int64)
    end6 = np.where(plen6 > 0, np.minimum(avail3, 40 + plen6), avail3)
    nxt = g3[:, 6].astype(np.int32)
    o6 = np.full(n, 40, np.int64)
    for _ in range(MAX_IPV6_EXT):
        walk = v6 & np.isin(nxt, IPV6_EXT) & (o6 + 8 <= end6)
        if not walk.any():
            break
        rows = np.nonzero(walk)[0]
        g = gather(arr, off[rows] + l3[rows] + o6[rows], 2)
        nxt[rows] = g[:, 0]
        o6[rows] += (g[:, 1].astype(np.int64) + 1) * 8
    frag6 = v6 & (nxt == 44)

    ip_proto = np.where(v4, g3[:, 9].astype(np.int32), np.where(v6, nxt, 0))
    fragment = frag4 | frag6
    l4rel = np.where(v4, ihl, o6)
    l4len = np.where(v4, end4, end6) - l4rel

    src_lo = np.where(v4, _u32(g3, 12).astype(np.uint64), _u64(g3, 16))
    dst_lo = np.where(v4, _u32(g3, 16).astype(np.uint64), _u64(g3, 32))
    src_hi = np.where(v6, _u64(g3, 8), np.uint64(0))
    dst_hi = np.where(v6, _u64(g3, 24), np.uint64(0))
    zero = ip_version == 0
    for a in (src_lo, dst_lo, src_hi, dst_hi):
        a[zero] = 0

    # ---- TCP / UDP ----
    l4base = ip_version > 0
    tcp = l4base & ~fragment & (ip_proto == 6) & (l4len >= 20)
    udp = l4base & ~fragment & (ip_proto == 17) & (l4len >= 8)
    g4 = gather(arr, off + l3 + l4rel, 16)
    isl4 = tcp | udp
    sport = np.where(isl4, _u16(g4, 0), 0)
    dport = np.where(isl4, _u16(g4, 2), 0)
    # ICMP: a flow per (request) type, the requester on "port" 0 (layers.icmp_ports)
    icmp4 = (ip_version == 4) & ~fragment & (ip_proto == 1) & (l4len >= 4)
    icmp6 = (ip_version == 6) & ~fragment & (ip_proto == 58) & (l4len >= 4)
    icmp = icmp4 | icmp6
    if icmp.any():
        itype = g4[:, 0].astype(np.int32)
        reply4, reply6 = ICMP_REPLY_OF[4][itype], ICMP_REPLY_OF[6][itype]
        req = np.where(icmp4, reply4, reply6)
        is_reply = req >= 0
        key = np.where(is_reply, req, itype)
        sport = np.where(icmp, np.where(is_reply, key, 0), sport)
        dport = np.where(icmp, np.where(is_reply, 0, key), dport)
    seq = np.where(tcp, _u32(g4, 4), 0)
    flags = np.where(tcp, g4[:, 13].astype(np.int32), 0)
    doff = (g4[:, 12] >> 4).astype(np.int64) * 4
    tcp_plen = np.where(doff >= 20, np.maximum(l4len - doff, 0), 0)
    ulen = _u16(g4, 4).astype(np.int64)
    uend = np.where((ulen >= 8) & (ulen <= l4len), ulen, l4len)
    pay_rel = np.where(tcp, l4rel + doff, l4rel + 8)
    pay_len = np.where(tcp, tcp_plen, np.where(udp, uend - 8, 0))
    pay_off = off + l3 + pay_rel
    pay_len = np.where(icmp, 0, pay_len)
    l4 = np.where(tcp, 6, np.where(udp, 17, np.where(icmp4, 1, np.where(icmp6, 58, 0)))).astype(np.int8)

    return Columns(ok, et.astype(np.int32), vlan, inner, llc, dmac, smac, l3, ip_version,
                   ip_proto.astype(np.int32), fragment, l4, src_hi, src_lo, dst_hi, dst_lo,
                   sport.astype(np.int32), dport.astype(np.int32), flags, seq.astype(np.int64),
                   pay_off, pay_len.astype(np.int64))


def undecoded(cols: Columns, linktype: np.ndarray) -> dict[str, int]:
    """Frames of a chunk not (fully) decoded, counted by kind: the sum of
    layers.undecoded_kind over the chunk's frames (zero counts left out)."""
    out: dict[str, int] = {}

    def add(key: str, mask: np.ndarray) -> None:
        n = int(np.count_nonzero(mask))
        if n:
            out[key] = out.get(key, 0) + n

    bad = ~cols.ok
    if bad.any():
        lts, counts = np.unique(linktype[bad], return_counts=True)
        for lt, n in zip(lts.tolist(), counts.tolist()):
            out[f"{UNDECODED_LINK}{lt}"] = n
    ip = (cols.ip_version > 0) & ~cols.fragment
    tunnelled = np.isin(cols.ip_proto, list(TUNNEL_IP_PROTOS)) & ip
    for proto, name in TUNNEL_IP_PROTOS.items():
        add(f"{TUNNEL}{name}", tunnelled & (cols.ip_proto == proto))
    udp = ip & (cols.l4 == 17)
    dport_t = udp & np.isin(cols.dport, list(TUNNEL_UDP_PORTS))
    sport_t = udp & ~dport_t & np.isin(cols.sport, list(TUNNEL_UDP_PORTS))
    for port, name in TUNNEL_UDP_PORTS.items():
        add(f"{TUNNEL}{name}", (dport_t & (cols.dport == port)) | (sport_t & (cols.sport == port)))
    other = ip & ~tunnelled & (cols.l4 == 0)
    if other.any():
        ps, counts = np.unique(cols.ip_proto[other], return_counts=True)
        for p, n in zip(ps.tolist(), counts.tolist()):
            out[f"{UNDECODED_IP}{p}"] = n
    l2 = cols.ok & (cols.ip_version == 0)
    for et, name in TUNNEL_ETHERTYPES.items():
        add(f"{TUNNEL}{name}", l2 & (cols.ethertype == et))
    return out


def ip_text(version: int, hi: int, lo: int) -> str:
    """Address text exactly as layers.decode_frame writes it."""
    import socket
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, int(lo).to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, int(hi).to_bytes(8, "big") + int(lo).to_bytes(8, "big"))


def mac_text(v: int) -> str | None:
    return None if v < 0 else int(v).to_bytes(6, "big").hex(":")
