"""Fuzzing the SLMP / MC protocol decoder: random bytes and mutated frames (built from the SLMP
layout; no shared capture holds SLMP) into signature() and decode(), single packets and whole
random flows. They must not raise, must keep their output bounded and their per-flow state
small (the requests waiting for a response included); the routine and Hold recognisers must
take rows of any bytes without raising."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_ics_a import _mutate, _state_bytes, edits
from test_proto_melsec import CASES, MANUAL_READ, MANUAL_READ_ASCII

from plantguard.model import OP_CATEGORIES, Packet
from plantguard.protocols import melsec
from plantguard.protocols.melsec import frame as sframe
from plantguard.protocols.melsec.routine import melsec_hold_rows, melsec_read_routine

SAMPLES = tuple([MANUAL_READ, MANUAL_READ_ASCII] + [b for rq, rs, *_ in CASES for b in (rq, rs)])
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(l4: str, payload: bytes, from_client: bool, state: dict | None = None, seq: int = 1):
    assert isinstance(melsec.signature(payload), bool) and isinstance(melsec.strict_signature(payload), bool)
    sport, dport = (40000, 5000) if from_client else (5000, 40000)
    src, dst = ("10.0.0.5", "10.0.0.9") if from_client else ("10.0.0.9", "10.0.0.5")
    pkt = Packet("fuzz", 1, 1.0, payload, src=src, dst=dst, l4=l4, sport=sport, dport=dport, seq=seq,
                 from_client=from_client, state={} if state is None else state)
    out = melsec.decode(pkt)
    assert isinstance(out, list) and len(out) <= 3 * melsec.MAX_PDUS_PER_SEGMENT
    for o in out:
        assert o.proto == "melsec" and o.kind in ("service", "operation", "error", "identity", "credential")
        if o.kind == "operation":
            assert o.data["category"] in OP_CATEGORIES and isinstance(o.data["detail"], str)
    assert len(pkt.state.get("pending") or {}) <= melsec.MAX_PENDING
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
def test_mutated_frames(l4, pick, changes, from_client):
    _check(l4, _mutate(SAMPLES[pick % len(SAMPLES)], changes), from_client)


@pytest.mark.timeout(120)
@FUZZ
@given(steps=st.lists(st.tuples(st.integers(0, 1000), edits, st.booleans(), st.integers(-3, 3)),
                      min_size=1, max_size=40))
def test_random_tcp_flows_keep_state_bounded(steps):
    state: dict = {}
    seq = {True: 1000, False: 50000}
    for pick, changes, from_client, jump in steps:
        payload = _mutate(SAMPLES[pick % len(SAMPLES)], changes)
        _check("tcp", payload, from_client, state, seq[from_client])
        seq[from_client] = (seq[from_client] + len(payload) + jump * 7919) & 0xFFFFFFFF
    assert _state_bytes(state) <= 2 * sframe.MAX_FRAME + 8192


@pytest.mark.timeout(120)
@FUZZ
@given(rows=st.lists(st.binary(max_size=32), min_size=1, max_size=40), tcp=st.booleans())
def test_routine_and_hold_take_any_rows(rows, tcp):
    p = np.zeros((len(rows), 32), np.uint8)
    for i, r in enumerate(rows):
        p[i, :len(r)] = np.frombuffer(r, np.uint8)
    plen = np.array([len(r) for r in rows], np.int64)
    n = len(rows)
    args = (np.ones(n, bool), np.full(n, 6 if tcp else 17), np.full(n, 40000), np.full(n, 5000))
    mask, key = melsec_read_routine(p, plen, *args)
    assert mask.shape == (n,) and key.shape == (n,)
    assert melsec_hold_rows(p[:, :24], plen, *args).shape == (n,)


def test_many_unanswered_requests_stay_bounded():
    state: dict = {}
    for serial in range(500):
        rq = b"\x54\x00" + serial.to_bytes(2, "little") + b"\x00\x00" + bytes.fromhex("00ffff0300060010000101") \
            + b"\x00\x00"
        _check("udp", rq, True, state)
    assert len(state["pending"]) == melsec.MAX_PENDING
