"""The Packet header fields of TCP/UDP rows, straight from the columnar decode, so the deep tier
does not decode the L2-L4 headers of its packets a second time. The columns equal
layers.decode_frame() field by field (test_capture_columns holds them together), so a Packet
built from them equals one built from decode_frame."""
from __future__ import annotations

import socket

import numpy as np

from plantguard.capture.columns import Columns
from plantguard.capture.layers import L4_NAMES

_MAC_TEXT: dict[int, str] = {}   # a plant has few addresses and sees them over and over
_IP_TEXT: dict[tuple, str] = {}
_CACHE_MAX = 1 << 16


def _mac(v: int) -> str | None:
    if v < 0:
        return None
    text = _MAC_TEXT.get(v)
    if text is None:
        if len(_MAC_TEXT) >= _CACHE_MAX:
            _MAC_TEXT.clear()
        text = _MAC_TEXT[v] = v.to_bytes(6, "big").hex(":")
    return text


def _ip(version: int, hi: int, lo: int) -> str:
    key = (version, hi, lo)
    text = _IP_TEXT.get(key)
    if text is None:
        if len(_IP_TEXT) >= _CACHE_MAX:
            _IP_TEXT.clear()
        if version == 4:
            text = socket.inet_ntop(socket.AF_INET, lo.to_bytes(4, "big"))
        else:
            text = socket.inet_ntop(socket.AF_INET6, hi.to_bytes(8, "big") + lo.to_bytes(8, "big"))
        _IP_TEXT[key] = text
    return text


class L4Rows:
    """Header fields of the TCP/UDP rows of sub as one integer matrix; row(j) gives row j's
    (src_mac, dst_mac, ethertype, vlan, src, dst, l4, sport, dport, tcp_flags, seq), in
    Packet's field order. Python values are made only for the rows asked for: most rows handed
    to the deep tier are replayed by a template learnt in the same chunk and never need them."""

    def __init__(self, sub: Columns):
        self.sub = sub
        self.m = np.stack([sub.src_mac, sub.dst_mac, sub.ethertype, sub.vlan, sub.ip_version, sub.l4,
                           sub.src_lo.view(np.int64), sub.dst_lo.view(np.int64), sub.sport, sub.dport,
                           sub.tcp_flags, sub.seq], axis=1).astype(np.int64, copy=False)

    def row(self, j: int) -> tuple:
        smac, dmac, et, vlan, ver, l4, slo, dlo, sport, dport, flags, seq = self.m[j].tolist()
        if ver != 4:
            return l4_header(self.sub, j)
        v4, macs = _IP_TEXT.get, _MAC_TEXT.get    # cache hits inline: this runs per deep packet
        return (macs(smac) or _mac(smac), macs(dmac) or _mac(dmac), et, None if vlan < 0 else vlan,
                v4((4, 0, slo)) or _ip(4, 0, slo), v4((4, 0, dlo)) or _ip(4, 0, dlo),
                "tcp" if l4 == 6 else "udp" if l4 == 17 else L4_NAMES.get(l4, ""), sport, dport, flags, seq)


def l4_header(sub: Columns, r: int) -> tuple:
    """l4_headers() for one row (a few packets per chunk: no array pass for them)."""
    ver = int(sub.ip_version[r])
    vlan = int(sub.vlan[r])
    return (_mac(int(sub.src_mac[r])), _mac(int(sub.dst_mac[r])), int(sub.ethertype[r]),
            None if vlan < 0 else vlan,
            _ip(ver, int(sub.src_hi[r]) if ver == 6 else 0, int(sub.src_lo[r])),
            _ip(ver, int(sub.dst_hi[r]) if ver == 6 else 0, int(sub.dst_lo[r])),
            L4_NAMES.get(int(sub.l4[r]), ""), int(sub.sport[r]), int(sub.dport[r]),
            int(sub.tcp_flags[r]), int(sub.seq[r]))
