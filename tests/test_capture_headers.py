"""The deep tier builds its TCP/UDP Packets from the columnar decode (capture/headers.py), not
from layers.decode_frame: every header field must equal the per-frame decode, on random frames
of every link type (IPv4 and IPv6, VLAN stacks, lying length fields)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from plantguard.capture import headers
from plantguard.capture.layers import decode_frame
from test_capture_columns import any_frame, columnar


def reference_fields(lay) -> tuple:
    return (lay.src_mac, lay.dst_mac, lay.ethertype, lay.vlan, lay.src, lay.dst, lay.l4,
            lay.sport, lay.dport, lay.tcp_flags, lay.seq)


@settings(max_examples=300, deadline=None)
@given(st.lists(any_frame(), min_size=1, max_size=12))
def test_row_fields_equal_reference_decode(items):
    by_lt: dict[int, list[bytes]] = {}
    for lt, f in items:
        by_lt.setdefault(lt, []).append(f)
    for lt, frames in by_lt.items():
        cols, _buf = columnar(lt, frames)
        li = np.flatnonzero(cols.l4 > 0)
        sub = cols.take(li)
        rows = headers.L4Rows(sub)
        for j, i in enumerate(li.tolist()):
            want = reference_fields(decode_frame(lt, frames[i]))
            assert rows.row(j) == want, frames[i].hex()
            assert headers.l4_header(sub, j) == want, frames[i].hex()
            assert [type(v) for v in rows.row(j)] == [type(v) for v in want]


def test_some_l4_rows_are_checked():
    # an IPv6 UDP and a VLAN-tagged IPv4 TCP frame: both paths of row() run
    v6 = (bytes(12) + b"\x86\xdd" + b"\x60\x00\x00\x00\x00\x0c\x11\x40" + bytes(15) + b"\x01"
          + bytes(15) + b"\x02" + b"\x00\x35\x04\xd2\x00\x0c\x00\x00abcd")
    v4 = (bytes(12) + b"\x81\x00\x00\x07\x08\x00" + b"\x45\x00\x00\x2c" + bytes(4) + b"\x40\x06\x00\x00"
          + b"\x0a\x00\x00\x01\x0a\x00\x00\x02" + b"\xaf\x12\x00\x66" + b"\x00\x00\x00\x09" + bytes(4)
          + b"\x50\x18\x00\x00" + bytes(4) + b"data")
    cols, _ = columnar(1, [v6, v4])
    assert cols.l4.tolist() == [17, 6]
    rows = headers.L4Rows(cols.take(np.arange(2)))
    assert rows.row(0) == reference_fields(decode_frame(1, v6))
    assert rows.row(1)[3:9] == (7, "10.0.0.1", "10.0.0.2", "tcp", 0xAF12, 102)
    assert rows.row(1) == reference_fields(decode_frame(1, v4))
