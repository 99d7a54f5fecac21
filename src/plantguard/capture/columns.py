"""The columnar tier's L2-L4 decode: Ethernet (802.1Q/QinQ), Linux SLL/SLL2, raw IP and BSD
loopback, then IPv4/IPv6 and TCP/UDP header fields, for every record of a chunk at once.

Each step gathers a few header bytes of all records into a small matrix (fancy indexing on
the capture buffer) and computes fields with array operations; variable VLAN depth, IPv4
header lengths and IPv6 extension headers are handled with masks. The result must equal
layers.decode_frame() for every frame (a hypothesis test holds the two together)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plantguard.capture import fastcols
from plantguard.capture import formats as F
from plantguard.capture.layers import (
    ICMP_ANSWERS,
    IGMP,
    MAX_IPV6_EXT,
    MAX_MPLS_LABELS,
    MAX_NFLOG_TLVS,
    MAX_TUNNEL_DEPTH,
    MAX_VLAN_TAGS,
    NFLOG_PAYLOAD,
    SNAP_ETHERTYPE,
    SNAP_TYPES,
    TUN_ERSPAN,
    TUN_GENEVE,
    TUN_GRE,
    TUN_IPV4,
    TUN_IPV6,
    TUN_MPLS,
    TUN_PPPOE,
    TUN_TEREDO,
    TUN_VXLAN,
    TUNNEL,
    TUNNEL_ETHERTYPES,
    TUNNEL_IP_PROTOS,
    TUNNEL_NAMES,
    TUNNEL_UDP_PORTS,
    UNDECODED_ETHER,
    UNDECODED_IP,
    UNDECODED_LINK,
    UNDECODED_LLC,
    UNWRAPPED,
)
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
    l4: np.ndarray         # int8: 6 (tcp), 17 (udp), 1 (icmp), 58 (icmpv6), 2 (igmp) or 0
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
    tunnel: np.ndarray     # int8: outermost tunnel unwrapped (layers.TUNNEL_NAMES), 0 none

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


# the fields' dtypes, in order (the compiled common-case decode allocates its columns with them)
DTYPES = (bool, np.int32, np.int32, np.int32, bool, np.int64, np.int64, np.int64, np.int8, np.int32, bool, np.int8,
          np.uint64, np.uint64, np.uint64, np.uint64, np.int32, np.int32, np.int32, np.int64, np.int64, np.int64,
          np.int8)


def decode(arr: np.ndarray, offsets: np.ndarray, caplen: np.ndarray, linktype: np.ndarray) -> Columns:
    """Decode all records of a chunk. arr is the capture buffer as uint8. The common case
    (fastcols) is decoded compiled, the other records with array operations (_decode_arrays)."""
    if not fastcols.COMPILED or not len(arr) or not len(offsets):
        return _decode_arrays(arr, offsets, caplen, linktype)
    cols, slow = fastcols.decode_common(arr, offsets, caplen, linktype, Columns, DTYPES)
    rows = np.flatnonzero(slow)
    if len(rows):
        sub = _decode_arrays(arr, offsets[rows], caplen[rows], linktype[rows])
        for name in Columns.__dataclass_fields__:
            getattr(cols, name)[rows] = getattr(sub, name)
    return cols


def _decode_arrays(arr: np.ndarray, offsets: np.ndarray, caplen: np.ndarray, linktype: np.ndarray,
                   _depth: int = 0) -> Columns:
    """Decode records with array operations. Tunnels are unwrapped as layers.decode_frame does:
    the rows that carry one are decoded again from the inner packet's start (as Ethernet or raw
    IP) and take the inner fields."""
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
        llc = eth & (t < 0x0600)
        if llc.any():            # SNAP with OUI 0 and an EtherType (layers.SNAP_TYPES)
            s = gather(arr, off + o, 8)
            snap = llc & np.all(s[:, :6] == np.frombuffer(SNAP_ETHERTYPE, np.uint8), axis=1) & (o + 8 <= cap) \
                & np.isin(_u16(s, 6), SNAP_TYPES)
            t = np.where(snap, _u16(s, 6), t)
            o = o + 8 * snap
            llc &= ~snap
        et = np.where(eth, t, et)
        l3 = np.where(eth, o, l3)

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

    for ltv in MORE_LINKS:
        rows = np.flatnonzero(lt == ltv)
        if len(rows):
            r_ok, r_l3, r_et, r_sm, r_dm = _link_more(arr, off[rows], cap[rows], ltv)
            rows, r_l3, r_et, r_sm, r_dm = rows[r_ok], r_l3[r_ok], r_et[r_ok], r_sm[r_ok], r_dm[r_ok]
            ok[rows] = True
            l3[rows] = r_l3
            et[rows] = r_et
            smac[rows] = r_sm
            dmac[rows] = r_dm

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
    first6 = frag6 & (o6 + 8 <= end6)
    if first6.any():             # a first fragment names the upper protocol (layers._ip)
        rows = np.nonzero(first6)[0]
        g = gather(arr, off[rows] + l3[rows] + o6[rows], 4)
        fo0 = (_u16(g, 2) >> 3) == 0
        nxt[rows[fo0]] = g[fo0, 0]

    ip_proto = np.where(v4, g3[:, 9].astype(np.int32), np.where(v6, nxt, 0))
    fragment = frag4 | frag6
    whole = ~fragment            # a fragment's L4 header is the reassembled datagram's
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
    tcp = l4base & whole & (ip_proto == 6) & (l4len >= 20)
    udp = l4base & whole & (ip_proto == 17) & (l4len >= 8)
    g4 = gather(arr, off + l3 + l4rel, 16)
    isl4 = tcp | udp
    sport = np.where(isl4, _u16(g4, 0), 0)
    dport = np.where(isl4, _u16(g4, 2), 0)
    # ICMP: a flow per (request) type, the requester on "port" 0 (layers.icmp_ports)
    icmp4 = (ip_version == 4) & whole & (ip_proto == 1) & (l4len >= 4)
    icmp6 = (ip_version == 6) & whole & (ip_proto == 58) & (l4len >= 4)
    icmp = icmp4 | icmp6
    if icmp.any():
        itype = g4[:, 0].astype(np.int32)
        reply4, reply6 = ICMP_REPLY_OF[4][itype], ICMP_REPLY_OF[6][itype]
        req = np.where(icmp4, reply4, reply6)
        is_reply = req >= 0
        key = np.where(is_reply, req, itype)
        sport = np.where(icmp, np.where(is_reply, key, 0), sport)
        dport = np.where(icmp, np.where(is_reply, 0, key), dport)
    igmp = (ip_version == 4) & whole & (ip_proto == IGMP) & (l4len >= 4)   # as layers._l4
    sport = np.where(igmp, 0, sport)
    dport = np.where(igmp, g4[:, 0].astype(np.int32), dport)
    seq = np.where(tcp, _u32(g4, 4), 0)
    flags = np.where(tcp, g4[:, 13].astype(np.int32), 0)
    doff = (g4[:, 12] >> 4).astype(np.int64) * 4
    tcp_plen = np.where(doff >= 20, np.maximum(l4len - doff, 0), 0)
    ulen = _u16(g4, 4).astype(np.int64)
    uend = np.where((ulen >= 8) & (ulen <= l4len), ulen, l4len)
    pay_rel = np.where(tcp, l4rel + doff, l4rel + 8)
    pay_len = np.where(tcp, tcp_plen, np.where(udp, uend - 8, 0))
    pay_off = off + l3 + pay_rel
    pay_len = np.where(icmp | igmp | fragment, 0, pay_len)
    l4 = np.where(tcp, 6, np.where(udp, 17, np.where(icmp4, 1, np.where(icmp6, 58, np.where(igmp, IGMP, 0)))))
    l4 = l4.astype(np.int8)

    cols = Columns(ok, et.astype(np.int32), vlan, inner, llc, dmac, smac, l3, ip_version,
                   ip_proto.astype(np.int32), fragment, l4, src_hi, src_lo, dst_hi, dst_lo,
                   sport.astype(np.int32), dport.astype(np.int32), flags, seq.astype(np.int64),
                   pay_off, pay_len.astype(np.int64), np.zeros(n, np.int8))
    if _depth < MAX_TUNNEL_DEPTH:
        _unwrap(arr, off, cap, cols, l4rel, l4len, _depth)
    return cols


def _unwrap(arr, off, cap, full: Columns, l4rel, l4len, depth: int) -> None:
    """layers.tunnel_of and the inner decode for every row at once (see decode). Only the rows
    that may carry a tunnel are looked at."""
    ipv = full.ip_version > 0
    cand = np.flatnonzero(
        (full.ok & ~ipv & np.isin(full.ethertype, (0x8847, 0x8848, 0x8864)))
        | (ipv & np.isin(full.ip_proto, (4, 41, 47)))
        | ((full.l4 == 17) & (np.isin(full.dport, (4789, 6081, 3544)) | (full.sport == 3544))))
    if not len(cand):
        return
    cols = full.take(cand)
    off, cap, l4rel, l4len = off[cand], cap[cand], l4rel[cand], l4len[cand]
    n = len(off)
    kind = np.zeros(n, np.int8)
    start = np.zeros(n, np.int64)
    is_eth = np.zeros(n, bool)
    l3 = cols.l3
    ipv = cols.ip_version > 0

    def put(mask, k, st, eth):
        nonlocal kind, start, is_eth
        mask = mask & (kind == 0)
        kind = np.where(mask, np.int8(k) if np.isscalar(k) else k, kind)
        start = np.where(mask, st, start)
        is_eth = np.where(mask, eth, is_eth)

    # MPLS: the label with the bottom-of-stack bit, then IPv4/IPv6
    mpls = cols.ok & ~ipv & ((cols.ethertype == 0x8847) | (cols.ethertype == 0x8848))
    if mpls.any():
        g = gather(arr, off + l3, 4 * MAX_MPLS_LABELS + 1)
        found = np.zeros(n, bool)
        for i in range(MAX_MPLS_LABELS):
            here = mpls & ~found & (l3 + 4 * i + 4 <= cap)
            bos = here & ((g[:, 4 * i + 2] & 1) == 1)
            st = l3 + 4 * i + 4
            nib = g[:, 4 * i + 4] >> 4
            put(bos & (st < cap) & ((nib == 4) | (nib == 6)), TUN_MPLS, st, False)
            found |= bos
            mpls = mpls & here
    pppoe = cols.ok & ~ipv & (cols.ethertype == 0x8864) & (l3 + 8 <= cap)
    if pppoe.any():
        g = gather(arr, off + l3, 8)
        put(pppoe & np.isin(_u16(g, 6), (0x0021, 0x0057)), TUN_PPPOE, l3 + 8, False)
    ip = ipv & ~cols.fragment
    a = l3 + l4rel
    put(ip & (cols.ip_proto == 4), TUN_IPV4, a, False)
    put(ip & (cols.ip_proto == 41), TUN_IPV6, a, False)
    gre = ip & (cols.ip_proto == 47) & (l4len >= 4)
    if gre.any():
        g = gather(arr, off + a, 32)
        fl = _u16(g, 0)
        pt = _u16(g, 2)
        hl = (4 + 4 * ((fl >> 15) & 1) + 4 * ((fl >> 13) & 1) + 4 * ((fl >> 12) & 1)).astype(np.int64)
        gre &= (fl & 0x4007) == 0
        put(gre & ((pt == ETH_IPV4) | (pt == ETH_IPV6)), TUN_GRE, a + hl, False)
        put(gre & (pt == 0x6558), TUN_GRE, a + hl, True)
        put(gre & (pt == 0x88BE), TUN_ERSPAN, a + hl + np.where(fl & 0x1000, 8, 0), True)
        obit = g[np.arange(n), np.minimum(hl + 11, 31)] & 1
        put(gre & (pt == 0x22EB) & (l4len >= hl + 12), TUN_ERSPAN, a + hl + 12 + 8 * obit.astype(np.int64), True)
    udp = ip & (cols.l4 == 17)
    if udp.any():
        p = cols.pay_off - off                           # UDP payload, relative to the record
        g = gather(arr, cols.pay_off, 10)
        plen = cols.pay_len
        put(udp & (cols.dport == 4789) & (plen >= 8), TUN_VXLAN, p + 8, True)
        gen = udp & (cols.dport == 6081) & (plen >= 8) & ((g[:, 0] >> 6) == 0)
        gpt = _u16(g, 2)
        gst = p + 8 + (g[:, 0] & 0x3F).astype(np.int64) * 4
        put(gen & (gpt == 0x6558), TUN_GENEVE, gst, True)
        put(gen & ((gpt == ETH_IPV4) | (gpt == ETH_IPV6)), TUN_GENEVE, gst, False)
        kind = np.where(gen & (kind == 0), -1, kind)    # Geneve of another protocol: no Teredo
        ter = udp & ((cols.dport == 3544) | (cols.sport == 3544)) & (plen >= 1)
        if ter.any():
            orig = (plen >= 8) & (g[:, 0] == 0) & (g[:, 1] == 0)
            tst = np.where(orig, p + 8, p)
            nib = gather(arr, off + np.minimum(tst, np.maximum(cap - 1, 0)), 1)[:, 0] >> 4
            put(ter & (tst < cap) & (nib == 6), TUN_TEREDO, tst, False)
        kind = np.where(kind < 0, 0, kind)
    rows = np.flatnonzero((kind > 0) & (start < cap))
    if not len(rows):
        return
    prev = {name: getattr(full, name)[cand] for name in ("src_mac", "dst_mac")}
    st = start[rows]
    eth_in = is_eth[rows]
    sub = _decode_arrays(arr, off[rows] + st, cap[rows] - st,
                         np.where(eth_in, F.LINKTYPE_ETHERNET, F.LINKTYPE_RAW).astype(np.int32), depth + 1)
    good = sub.ok & (eth_in | (sub.ip_version > 0))
    rows, st, eth_in = rows[good], st[good], eth_in[good]
    sub = sub.take(np.flatnonzero(good))
    at = cand[rows]                                      # the rows in the whole chunk
    for name in Columns.__dataclass_fields__:
        if name in ("vlan", "inner_vlan"):
            continue
        val = getattr(sub, name)
        if name in ("src_mac", "dst_mac"):
            val = np.where(eth_in, val, prev[name][rows])
        elif name == "l3":
            val = val + st
        elif name == "tunnel":
            val = kind[rows]
        getattr(full, name)[at] = val


MORE_LINKS = (F.LINKTYPE_PPP, F.LINKTYPE_PPP_HDLC, F.LINKTYPE_C_HDLC, F.LINKTYPE_FRELAY, F.LINKTYPE_NFLOG,
              F.LINKTYPE_IEEE802_11_RADIOTAP, F.LINKTYPE_PPI, F.LINKTYPE_IEEE802_11)


def _link_more(arr, off, cap, ltv):
    """layers.link_header for the rows of one link type: (ok, l3, ethertype, src MAC, dst MAC)."""
    n = len(off)
    g = gather(arr, off, 16)
    ok = np.zeros(n, bool)
    l3 = np.zeros(n, np.int64)
    et = np.zeros(n, np.int32)
    none = np.full(n, -1, np.int64)
    if ltv in (F.LINKTYPE_PPP, F.LINKTYPE_PPP_HDLC):
        o = np.where((cap >= 2) & (g[:, 0] == 0xFF) & (g[:, 1] == 0x03), 2, 0)
        proto = np.where(o == 2, _u16(g, 2), _u16(g, 0))
        et = np.where(proto == 0x0021, ETH_IPV4, np.where(proto == 0x0057, ETH_IPV6, 0))
        return (cap >= o + 2) & (et != 0), o + 2, et, none, none
    if ltv == F.LINKTYPE_C_HDLC:
        return cap >= 4, np.full(n, 4, np.int64), _u16(g, 2), none, none
    if ltv == F.LINKTYPE_FRELAY:
        base = (cap >= 4) & (g[:, 2] == 0x03)
        nl = g[:, 3]
        s = np.where(nl == 0x80, 4, np.where((nl == 0) & (cap >= 5) & (g[:, 4] == 0x80), 5, 0))
        snap_et = np.where(s == 4, _u16(g, 7), _u16(g, 8))
        direct = (nl == 0xCC) | (nl == 0x8E)
        ok = base & (direct | ((s > 0) & (cap >= s + 5)))
        et = np.where(nl == 0xCC, ETH_IPV4, np.where(nl == 0x8E, ETH_IPV6, snap_et))
        return ok, np.where(direct, 4, s + 5), et, none, none
    if ltv == F.LINKTYPE_NFLOG:
        live = (cap >= 4) & ((g[:, 0] == 2) | (g[:, 0] == 10))
        o = np.full(n, 4, np.int64)
        for _ in range(MAX_NFLOG_TLVS):
            live &= o + 4 <= cap
            if not live.any():
                break
            t = gather(arr, off + o, 4)
            tlen = t[:, 0].astype(np.int64) | (t[:, 1].astype(np.int64) << 8)
            ttype = t[:, 2].astype(np.int32) | (t[:, 3].astype(np.int32) << 8)
            live &= tlen >= 4
            hit = live & (ttype == NFLOG_PAYLOAD)
            ok |= hit
            l3 = np.where(hit, o + 4, l3)
            live &= ~hit
            o = np.where(live, o + ((tlen + 3) & ~3), o)
        et = np.where(g[:, 0] == 2, ETH_IPV4, ETH_IPV6)
        return ok, l3, et, none, none
    if ltv == F.LINKTYPE_IEEE802_11:
        return _wlan_cols(arr, off, cap, np.zeros(n, np.int64), np.ones(n, bool))
    hdr = (g[:, 2].astype(np.int64) | (g[:, 3].astype(np.int64) << 8))
    live = cap >= 4
    if ltv == F.LINKTYPE_PPI:
        dlt = g[:, 4].astype(np.int64) | (g[:, 5].astype(np.int64) << 8) | (g[:, 6].astype(np.int64) << 16) \
            | (g[:, 7].astype(np.int64) << 24)
        live &= (cap >= 8) & (dlt == F.LINKTYPE_IEEE802_11)
    return _wlan_cols(arr, off, cap, hdr, live)


def _wlan_cols(arr, off, cap, o, live):
    """layers._wlan for every row: an 802.11 data frame at record offset o."""
    w = gather(arr, off + o, 40)
    fc0, fc1 = w[:, 0], w[:, 1]
    live = live & (cap >= o + 24) & (((fc0 >> 2) & 3) == 2) & ((fc0 & 0x40) == 0) & ((fc1 & 0x40) == 0)
    hl = 24 + np.where((fc1 & 3) == 3, 6, 0) + np.where(fc0 & 0x80, 2 + np.where(fc1 & 0x80, 4, 0), 0)
    s = o + hl
    llc = gather(arr, off + s, 8)
    snap = np.all(llc[:, :6] == np.array([0xAA, 0xAA, 0x03, 0, 0, 0], np.uint8), axis=1)
    ok = live & (cap >= s + 8) & snap
    to_ds, from_ds = (fc1 & 1) == 1, (fc1 & 2) == 2
    da = np.where(to_ds, _mac(w, 16), _mac(w, 4))
    sa = np.where(from_ds, np.where(to_ds, _mac(w, 24), _mac(w, 16)), _mac(w, 10))
    return ok, s + 8, _u16(llc, 6), sa, da


def adopt_link(cols: Columns, frag: Columns) -> Columns:
    """layers.adopt_link for every row: reassembled datagrams (decoded as raw IP) take the
    VLANs, the MACs where they have none, and the tunnel of their last fragments (frag, row
    for row)."""
    cols.vlan[:], cols.inner_vlan[:] = frag.vlan, frag.inner_vlan
    none = cols.src_mac < 0
    cols.src_mac[none], cols.dst_mac[none] = frag.src_mac[none], frag.dst_mac[none]
    cols.tunnel[:] = np.where(frag.tunnel != 0, frag.tunnel, cols.tunnel)
    return cols


def undecoded(cols: Columns, linktype: np.ndarray, arr: np.ndarray, offsets: np.ndarray,
              caplen: np.ndarray) -> dict[str, int]:
    """Frames of a chunk not (fully) decoded, counted by kind: the sum of
    layers.undecoded_kind over the chunk's frames (zero counts left out). arr, offsets and
    caplen are the chunk's records, for the 802.2 header of LLC frames."""
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
    plain = cols.tunnel == 0
    for k, name in TUNNEL_NAMES.items():
        add(f"{UNWRAPPED}{name}", cols.tunnel == k)
    ip = (cols.ip_version > 0) & ~cols.fragment & plain
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
    l2 = cols.ok & (cols.ip_version == 0) & plain
    for et, name in TUNNEL_ETHERTYPES.items():
        add(f"{TUNNEL}{name}", l2 & (cols.ethertype == et))
    # imported here: the protocol registry imports capture modules
    from plantguard.protocols.registry import layer2_ids
    ethertypes, snaps = layer2_ids()
    et_rows = l2 & ~cols.llc & (cols.ethertype >= 0x0600) \
        & ~np.isin(cols.ethertype, list(TUNNEL_ETHERTYPES)) & ~np.isin(cols.ethertype, sorted(ethertypes))
    if et_rows.any():
        ets, counts = np.unique(cols.ethertype[et_rows], return_counts=True)
        for et, n in zip(ets.tolist(), counts.tolist()):
            out[f"{UNDECODED_ETHER}0x{et:04x}"] = n
    rows = np.flatnonzero(l2 & cols.llc)
    if len(rows):                     # layers.llc_id, as one integer code per row
        size = caplen[rows].astype(np.int64) - cols.l3[rows]
        g = gather(arr, offsets[rows].astype(np.int64) + cols.l3[rows], 8).astype(np.int64)
        snap = (size >= 8) & (g[:, 0] == 0xAA) & (g[:, 1] == 0xAA) & (g[:, 2] == 3)
        code = (g[:, 3] << 32) | (g[:, 4] << 24) | (g[:, 5] << 16) | (g[:, 6] << 8) | g[:, 7]
        known = snap & np.isin(code, [int.from_bytes(o, "big") << 16 | pid for o, pid in snaps])
        code = np.where(snap, code | (1 << 48), np.where(size >= 1, g[:, 0], -1))[~known]
        for c, n in zip(*(a.tolist() for a in np.unique(code, return_counts=True))):
            lid = (f"snap_0x{(c >> 16) & 0xFFFFFF:06x}_0x{c & 0xFFFF:04x}" if c >> 48
                   else f"sap_0x{c:02x}" if c >= 0 else "sap_none")
            out[f"{UNDECODED_LLC}{lid}"] = n
    return out


def ip_text(version: int, hi: int, lo: int) -> str:
    """Address text exactly as layers.decode_frame writes it."""
    import socket
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, int(lo).to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, int(hi).to_bytes(8, "big") + int(lo).to_bytes(8, "big"))


def mac_text(v: int) -> str | None:
    return None if v < 0 else int(v).to_bytes(6, "big").hex(":")
