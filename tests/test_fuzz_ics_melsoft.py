"""Fuzzing the MELSOFT decoder: random bytes and mutated real payloads (the blackhat23-melsoft
and ITI MELSEC captures, TCP and UDP) into signature() and decode(), single packets and whole
random flows. They must not raise, must keep their output bounded and their per-flow state
small; the routine recogniser must take rows of any bytes without raising."""
from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import SHARED_DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.decode import frames
from test_fuzz_ics_a import _mutate, _state_bytes, edits

from plantguard.model import OP_CATEGORIES, Packet
from plantguard.protocols import melsoft
from plantguard.protocols.melsoft import frame as mframe
from plantguard.protocols.melsoft.routine import melsoft_read_routine

SAMPLES = ["pcaps/blackhat23-melsoft/legitimate_user_addition_plc_stop_test.pcapng",
           "pcaps/blackhat23-melsoft/cve_2021_20594_username_bruteforce.pcapng",
           "pcaps/ICS-Security-Tools/MELSEC/melsoft_UDP_clean_2.pcap",
           "pcaps/ICS-Security-Tools/MELSEC/melsoft_129_clean.pcap"]
PORTS = {5007, 5560, 5562}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def real_payloads(l4: str) -> tuple[bytes, ...]:
    out: list[bytes] = []
    if SHARED_DATA.is_dir():
        for rel in SAMPLES:
            path = SHARED_DATA / rel
            if not path.exists():
                continue
            for _f, _ts, lay in frames(path):
                if lay.l4 == l4 and PORTS & {lay.sport, lay.dport} and lay.payload and lay.payload not in out:
                    out.append(bytes(lay.payload))
                if len(out) >= 120:
                    break
    built = bytes.fromhex("57000000001111070000ffff0300000000000034001c0216140000000000000000000000000000000000"
                          "00000004100000000000000000000000000000003f0000000000000000000200")
    return tuple(out) or (built,)


def _check(l4: str, payload: bytes, from_client: bool, state: dict | None = None, seq: int = 1):
    assert isinstance(melsoft.signature(payload), bool) and isinstance(melsoft.strict_signature(payload), bool)
    sport, dport = (40000, 5007) if from_client else (5007, 40000)
    src, dst = ("10.0.0.5", "10.0.0.9") if from_client else ("10.0.0.9", "10.0.0.5")
    pkt = Packet("fuzz", 1, 1.0, payload, src=src, dst=dst, l4=l4, sport=sport, dport=dport, seq=seq,
                 from_client=from_client, state={} if state is None else state)
    out = melsoft.decode(pkt)
    assert isinstance(out, list) and len(out) <= 3 * melsoft.MAX_PDUS_PER_SEGMENT + 1
    for o in out:
        assert o.proto == "melsoft" and o.kind in ("service", "operation", "error", "identity", "credential")
        if o.kind == "operation":
            assert o.data["category"] in OP_CATEGORIES and isinstance(o.data["detail"], str)
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
def test_mutated_real_payloads(l4, pick, changes, from_client):
    samples = real_payloads(l4)
    _check(l4, _mutate(samples[pick % len(samples)], changes), from_client)


@pytest.mark.timeout(120)
@FUZZ
@given(steps=st.lists(st.tuples(st.integers(0, 1000), edits, st.booleans(), st.integers(-3, 3)),
                      min_size=1, max_size=25))
def test_random_tcp_flows_keep_state_bounded(steps):
    samples = real_payloads("tcp")
    state: dict = {}
    seq = {True: 1000, False: 50000}
    for pick, changes, from_client, jump in steps:
        payload = _mutate(samples[pick % len(samples)], changes)
        _check("tcp", payload, from_client, state, seq[from_client])
        seq[from_client] = (seq[from_client] + len(payload) + jump * 7919) & 0xFFFFFFFF
    assert _state_bytes(state) <= 2 * mframe.MAX_FRAME + 8192


@pytest.mark.timeout(120)
@FUZZ
@given(rows=st.lists(st.binary(max_size=96), min_size=1, max_size=40), tcp=st.booleans())
def test_routine_takes_any_rows(rows, tcp):
    p = np.zeros((len(rows), 96), np.uint8)
    for i, r in enumerate(rows):
        p[i, :len(r)] = np.frombuffer(r, np.uint8)
    plen = np.array([len(r) for r in rows], np.int64)
    n = len(rows)
    mask, key = melsoft_read_routine(p, plen, np.ones(n, bool), np.full(n, 6 if tcp else 17), np.full(n, 40000),
                                     np.full(n, 5007))
    assert mask.shape == (n,) and key.shape == (n,)


def test_huge_declared_size_does_not_buffer_without_bound():
    state: dict = {}
    head = bytes.fromhex("57000000001111070000ffff03000000000000ffff")
    seq = 1
    for _ in range(80):
        _check("tcp", head + b"\x00" * 1024, True, state, seq)
        seq += len(head) + 1024
    assert _state_bytes(state) <= 2 * mframe.MAX_FRAME
