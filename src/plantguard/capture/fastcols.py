"""The common case of columns.decode, compiled: Ethernet (up to MAX_VLAN_TAGS tags), IPv4
(unfragmented) or IPv6 (no extension header), TCP, UDP or another transport, and non-IP
EtherTypes, one record at a time. It gives exactly the fields the array decode gives for such
records and marks every other record (other link types, LLC/SNAP, tunnels, fragments, ICMP,
IGMP, IPv6 extension headers, malformed IP) as left to the array decode, which also keeps the
semantics for them in one place. A plant's mirror port is almost all the common case, where
the array decode spent about 0.5 us per record on gathers and masks."""
from __future__ import annotations

import numpy as np

from plantguard.capture import formats as F
from plantguard.capture.layers import IGMP, MAX_VLAN_TAGS

try:  # pragma: no cover - depends on the environment
    import numba
except Exception:  # noqa: BLE001 - numba missing or unusable: columns.decode uses the array path
    numba = None

_ETHERNET = F.LINKTYPE_ETHERNET


def _byte(arr, j):
    """arr[j] clamped to the buffer, as columns.gather reads."""
    size = arr.shape[0]
    if j >= size:
        j = size - 1
    j = max(j, 0)
    return np.int64(arr[j])


def _u16(arr, j):
    return (_byte(arr, j) << 8) | _byte(arr, j + 1)


def _u32(arr, j):
    return (_u16(arr, j) << 16) | _u16(arr, j + 2)


def _u64(arr, j):
    return (np.uint64(_u32(arr, j)) << np.uint64(32)) | np.uint64(_u32(arr, j + 4))


def _mac(arr, j):
    return (_u16(arr, j) << 32) | _u32(arr, j + 2)


def _decode_rows(arr, offsets, caplen, linktype, slow, ok, ethertype, vlan, inner_vlan, llc, dst_mac, src_mac,
                 l3, ip_version, ip_proto, fragment, l4, src_hi, src_lo, dst_hi, dst_lo, sport, dport,
                 tcp_flags, seq, pay_off, pay_len, tunnel):
    for i in range(offsets.shape[0]):
        off = np.int64(offsets[i])
        cap = np.int64(caplen[i])
        if linktype[i] != _ETHERNET or cap < 14:
            slow[i] = True
            continue
        t = _u16(arr, off + 12)
        o = np.int64(14)
        vid0 = -1
        vid1 = -1
        for k in range(MAX_VLAN_TAGS):
            pos = 14 + 4 * k
            if not ((t == 0x8100 or t == 0x88A8 or t == 0x9100) and pos + 4 <= cap and o == pos):
                break
            vid = _u16(arr, off + pos) & 0x0FFF
            if vid0 < 0:
                vid0 = vid
            else:
                vid1 = vid
            t = _u16(arr, off + pos + 2)
            o += 4
        if t < 0x0600 or t == 0x8847 or t == 0x8848 or t == 0x8864:
            slow[i] = True             # LLC/SNAP, MPLS, PPPoE
            continue
        b = off + o                    # the L3 header
        avail3 = cap - o
        ver = 0
        proto = 0
        l4rel = np.int64(40)
        l4len = np.int64(0)
        shi = np.uint64(0)
        slo = np.uint64(0)
        dhi = np.uint64(0)
        dlo = np.uint64(0)
        if t == 0x0800 or t == 0x86DD:
            if avail3 < 1:
                slow[i] = True
                continue
            v = _byte(arr, b) >> 4
            ihl = (_byte(arr, b) & 0x0F) * 4
            if avail3 >= 20 and v == 4 and ihl >= 20:
                if (_u16(arr, b + 6) & 0x3FFF) != 0:
                    slow[i] = True     # a fragment
                    continue
                ver = 4
                proto = _byte(arr, b + 9)
                total = _u16(arr, b + 2)
                end = min(avail3, total) if total >= ihl else avail3
                l4rel = ihl
                slo = np.uint64(_u32(arr, b + 12))
                dlo = np.uint64(_u32(arr, b + 16))
            elif avail3 >= 40 and v == 6:
                proto = _byte(arr, b + 6)
                if proto == 0 or proto == 43 or proto == 60 or proto == 44:
                    slow[i] = True     # extension headers, fragments
                    continue
                ver = 6
                plen6 = _u16(arr, b + 4)
                end = min(avail3, 40 + plen6) if plen6 > 0 else avail3
                shi, slo = _u64(arr, b + 8), _u64(arr, b + 16)
                dhi, dlo = _u64(arr, b + 24), _u64(arr, b + 32)
            else:
                slow[i] = True         # malformed IP
                continue
            if proto == 1 or proto == IGMP or proto == 58 or proto == 4 or proto == 41 or proto == 47:
                slow[i] = True         # ICMP, IGMP, IP-in-IP, GRE
                continue
            l4len = end - l4rel
        a = b + l4rel                  # the L4 header
        is_tcp = ver > 0 and proto == 6 and l4len >= 20
        is_udp = ver > 0 and proto == 17 and l4len >= 8
        sp = 0
        dp = 0
        sq = np.int64(0)
        fl = 0
        plen = np.int64(0)
        prel = l4rel + 8
        code = 0
        if is_tcp or is_udp:
            sp = _u16(arr, a)
            dp = _u16(arr, a + 2)
        if is_tcp:
            code = 6
            sq = _u32(arr, a + 4)
            fl = _byte(arr, a + 13)
            doff = (_byte(arr, a + 12) >> 4) * 4
            plen = max(l4len - doff, 0) if doff >= 20 else 0
            prel = l4rel + doff
        elif is_udp:
            if dp == 4789 or dp == 6081 or dp == 3544 or sp == 3544:
                slow[i] = True         # VXLAN, Geneve, Teredo
                continue
            code = 17
            ulen = _u16(arr, a + 4)
            plen = (ulen if ulen >= 8 and ulen <= l4len else l4len) - 8
        ok[i] = True
        ethertype[i] = t
        vlan[i] = vid0
        inner_vlan[i] = vid1
        llc[i] = False
        dst_mac[i] = _mac(arr, off)
        src_mac[i] = _mac(arr, off + 6)
        l3[i] = o
        ip_version[i] = ver
        ip_proto[i] = proto
        fragment[i] = False
        l4[i] = code
        src_hi[i], src_lo[i], dst_hi[i], dst_lo[i] = shi, slo, dhi, dlo
        sport[i], dport[i] = sp, dp
        tcp_flags[i] = fl
        seq[i] = sq
        pay_off[i] = off + o + prel
        pay_len[i] = plen
        tunnel[i] = 0


if numba is not None:   # pragma: no branch
    _byte, _u16, _u32, _u64, _mac = (numba.njit(cache=True, inline="always")(f)
                                     for f in (_byte, _u16, _u32, _u64, _mac))
    _decode_rows = numba.njit(cache=True)(_decode_rows)
    COMPILED = True
else:
    COMPILED = False


def decode_common(arr: np.ndarray, offsets: np.ndarray, caplen: np.ndarray, linktype: np.ndarray, columns_cls,
                  dtypes: tuple):
    """(columns, slow): the columns of every common-case record, and which records are left to
    the array decode (their columns are to be filled by the caller)."""
    n = len(offsets)
    slow = np.zeros(n, bool)
    out = [np.zeros(n, dt) for dt in dtypes]
    _decode_rows(arr, np.ascontiguousarray(offsets, np.int64), np.ascontiguousarray(caplen, np.int64),
                 np.ascontiguousarray(linktype, np.int64), slow, *out)
    return columns_cls(*out), slow
