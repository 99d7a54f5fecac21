"""Fuzzing the CODESYS V3 decoder: random bytes and mutated spec-built payloads (UDP datagrams:
name service requests and Identification replies; TCP block driver blocks carrying channel
layer blocks and layer-7 services) into signature() and decode(), single packets and whole
random flows. They must not raise, must keep their output bounded and their per-flow state small."""
from __future__ import annotations

import functools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.codesys_frames import (
    LINUX,
    WAGO,
    block,
    datagram,
    ns_identification,
    ns_request,
    session_exchanges,
)
from test_fuzz_ics_a import _mutate, _state_bytes, edits

from plantguard.model import OP_CATEGORIES, Packet
from plantguard.protocols import codesys
from plantguard.protocols.codesys import frame as cds_frame

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def samples(l4: str) -> tuple[bytes, ...]:
    if l4 == "udp":
        return (datagram(3, ns_request(), words=4), datagram(4, ns_identification(WAGO)),
                datagram(4, ns_identification(LINUX, parent=b"\0\1", intel=False)),
                datagram(0x40, b"\x03\x00\x07\x00"))
    return tuple(p for _c, p in session_exchanges())


def _check(l4: str, payload: bytes, from_client: bool, state: dict | None = None, seq: int = 1):
    assert isinstance(codesys.signature(payload), bool) and isinstance(codesys.tcp_signature(payload), bool)
    sport, dport = (40000, 11740 if l4 == "tcp" else 1740) if from_client else (11740 if l4 == "tcp" else 1740, 40000)
    src, dst = ("10.0.0.5", "10.0.0.9") if from_client else ("10.0.0.9", "10.0.0.5")
    pkt = Packet("fuzz", 1, 1.0, payload, src=src, dst=dst, l4=l4, sport=sport, dport=dport, seq=seq,
                 from_client=from_client, state={} if state is None else state)
    out = codesys.decode(pkt)
    assert isinstance(out, list) and len(out) <= 3 * codesys.MAX_PDUS_PER_SEGMENT
    for o in out:
        assert o.proto == "codesys" and o.kind in ("service", "operation", "error", "identity", "credential")
        if o.kind == "operation":
            assert o.data["category"] in OP_CATEGORIES and isinstance(o.data["detail"], str)
        if o.kind == "identity":
            assert all(len(str(v)) <= 600 for v in o.data.values())
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("l4", ["udp", "tcp"])
@FUZZ
@given(data=st.binary(max_size=600), from_client=st.booleans())
def test_random_bytes(l4, data, from_client):
    _check(l4, data, from_client)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("l4", ["udp", "tcp"])
@FUZZ
@given(pick=st.integers(0, 1000), changes=edits, from_client=st.booleans())
def test_mutated_payloads(l4, pick, changes, from_client):
    s = samples(l4)
    _check(l4, _mutate(s[pick % len(s)], changes), from_client)


@pytest.mark.timeout(120)
@FUZZ
@given(steps=st.lists(st.tuples(st.integers(0, 1000), edits, st.booleans(), st.integers(-3, 3)),
                      min_size=1, max_size=25))
def test_random_tcp_flows_keep_state_bounded(steps):
    s = samples("tcp")
    state: dict = {}
    seq = {True: 1000, False: 50000}
    for pick, changes, from_client, jump in steps:
        payload = _mutate(s[pick % len(s)], changes)
        _check("tcp", payload, from_client, state, seq[from_client])
        seq[from_client] = (seq[from_client] + len(payload) + jump * 7919) & 0xFFFFFFFF
    assert _state_bytes(state) <= 2 * cds_frame.MAX_TCP + 8192


@pytest.mark.timeout(120)
@FUZZ
@given(body=st.binary(max_size=400))
def test_any_tag_bytes_in_a_reply(body):
    from support.codesys_frames import channel_tcp, service
    _check("tcp", channel_tcp(service(2, 0x11, body, reply=True), False), False)
    assert len(cds_frame.top_tags(body)) <= cds_frame.MAX_TAGS


def test_huge_declared_length_does_not_buffer_without_bound():
    state: dict = {}
    head = b"\x00\x01\x17\xe8" + struct.pack("<I", 0xFFFFFFF0)
    seq = 1
    for _ in range(50):
        _check("tcp", head + b"\x00" * 1024, True, state, seq)
        seq += len(head) + 1024
    assert _state_bytes(state) <= 2 * cds_frame.MAX_TCP
    # a declared length just inside the bound is buffered, then dropped when it cannot complete
    big = block(datagram(0x40, b"\x01\x01" + bytes(18)))[:8]
    assert cds_frame.tcp_frame_len(big, 0) > 0


@pytest.mark.timeout(120)
@FUZZ
@given(rows=st.lists(st.binary(max_size=16), min_size=1, max_size=40), tcp=st.booleans())
def test_hold_rows_take_any_rows(rows, tcp):
    import numpy as np

    from plantguard.protocols.codesys.routine import WIDTH, hold_rows
    p = np.zeros((len(rows), WIDTH), np.uint8)
    for i, r in enumerate(rows):
        p[i, :min(len(r), WIDTH)] = np.frombuffer(r[:WIDTH], np.uint8)
    n = len(rows)
    plen = np.array([len(r) for r in rows], np.int64)
    mask = hold_rows(p, plen, np.ones(n, bool), np.full(n, 6 if tcp else 17), np.full(n, 40000), np.full(n, 11740))
    assert mask.shape == (n,)
    for i, r in enumerate(rows):   # a whole block is never a hold row; UDP never is
        whole = r[:4] == b"\x00\x01\x17\xe8" and len(r) >= 8 and int.from_bytes(r[4:8], "little") == len(r)
        assert bool(mask[i]) == (tcp and len(r) > 0 and not whole)


@pytest.mark.timeout(120)
@FUZZ
@given(rows=st.lists(st.binary(max_size=200), min_size=1, max_size=30), tcp=st.booleans(),
       pick=st.integers(0, 1000), changes=edits)
def test_read_routine_takes_any_rows(rows, tcp, pick, changes):
    import numpy as np

    from plantguard.protocols.codesys.routine import READ_WIDTH, monitoring_read_routine
    s = samples("tcp")
    rows = rows + [_mutate(s[pick % len(s)], changes)]
    p = np.zeros((len(rows), READ_WIDTH), np.uint8)
    for i, r in enumerate(rows):
        p[i, :min(len(r), READ_WIDTH)] = np.frombuffer(r[:READ_WIDTH], np.uint8)
    n = len(rows)
    plen = np.array([len(r) for r in rows], np.int64)
    mask, key = monitoring_read_routine(p, plen, np.ones(n, bool), np.full(n, 6 if tcp else 17),
                                        np.full(n, 40000), np.full(n, 11740))
    assert mask.shape == (n,) and key.shape == (n,)
    for i in np.flatnonzero(mask):   # whatever the routine takes, the decoder reads as a Monitoring 2 Read
        out = _check("tcp" if tcp else "udp", rows[i], True)
        assert [o.data["name"] for o in out if o.kind == "operation"] == ["Read variables"]


@pytest.mark.timeout(120)
@FUZZ
@given(pick=st.booleans(), changes=edits, from_client=st.booleans())
def test_mutated_v2_payloads(pick, changes, from_client):
    from support.codesys_frames import V2_QUERY, v2_reply
    payload = _mutate(V2_QUERY if pick else v2_reply(), changes)
    sport, dport = (40000, 2455) if from_client else (2455, 40000)
    pkt = Packet("fuzz", 1, 1.0, payload, src="10.0.0.5", dst="10.0.0.9", l4="tcp", sport=sport, dport=dport,
                 seq=1, from_client=from_client, state={})
    out = codesys.decode(pkt)
    assert len(out) <= 2 and all(len(str(v)) <= 80 for o in out for v in o.data.values())
