"""Fuzzing the C37.118 synchrophasor decoder: random bytes and mutated real payloads (TCP and UDP)
into the signatures and decode(), single packets and whole random flows. They must not raise,
must keep their output bounded and their per-flow state small; the routine recogniser and the
Hold rows must take rows of any bytes without raising."""
from __future__ import annotations

import functools
import struct

import numpy as np
import pytest
from conftest import SHARED_DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.decode import frames
from test_fuzz_ics_a import _mutate, _state_bytes, edits

from plantguard.model import OP_CATEGORIES, Packet
from plantguard.protocols import synchrophasor
from plantguard.protocols.synchrophasor import frame as c37
from plantguard.protocols.synchrophasor.routine import data_frame_routine, may_configure

SAMPLES = ["pcaps/ICS-Security-Tools/C37.118/C37.118_1PMU_UDP.pcap",
           "pcaps/ICS-Security-Tools/C37.118/C37.118_1PMU_TCP.pcap",
           "pcaps/ICS-Security-Tools/C37.118/C37.118_4in1PMU_TCP.pcap"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _built() -> bytes:
    body = struct.pack(">H", 5)
    head = struct.pack(">BBHHII", 0xAA, 0x41, 18, 7, 0, 0)
    return head + body + struct.pack(">H", c37.crc_ccitt(head + body))


@functools.cache
def real_payloads(l4: str) -> tuple[bytes, ...]:
    out: list[bytes] = []
    if SHARED_DATA.is_dir():
        for rel in SAMPLES:
            path = SHARED_DATA / rel
            if not path.exists():
                continue
            for _f, _ts, lay in frames(path):
                if lay.l4 == l4 and lay.payload and bytes(lay.payload) not in out and len(out) < 120:
                    out.append(bytes(lay.payload))
    return tuple(out) or (_built(),)


def _check(l4: str, payload: bytes, from_client: bool, state: dict | None = None, seq: int = 1):
    assert isinstance(synchrophasor.signature(payload), bool)
    assert isinstance(synchrophasor.strict_signature(payload), bool)
    sport, dport = (40000, 4712) if from_client else (4712, 40000)
    src, dst = ("10.0.0.5", "10.0.0.9") if from_client else ("10.0.0.9", "10.0.0.5")
    pkt = Packet("fuzz", 1, 1.0, payload, src=src, dst=dst, l4=l4, sport=sport, dport=dport, seq=seq,
                 from_client=from_client, state={} if state is None else state)
    out = synchrophasor.decode(pkt)
    assert isinstance(out, list) and len(out) <= 8 * synchrophasor.MAX_FRAMES_PER_SEGMENT
    for o in out:
        assert o.proto == "synchrophasor" and o.kind in ("service", "operation", "error", "identity")
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
@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_behind_a_valid_header(data):
    """The header (and check word) right, the body random: the body parsers meet garbage."""
    for kind in range(6):
        head = struct.pack(">BBHHII", 0xAA, (kind << 4) | 1, 16 + len(data), 7, 0, 0)
        frame = head + data + struct.pack(">H", c37.crc_ccitt(head + data))
        _check("udp", frame, kind == c37.COMMAND)
        assert c37.parse_config(kind, data) is None or isinstance(c37.parse_config(kind, data).pmus, list)


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
    assert _state_bytes(state) <= 2 * c37.MAX_FRAME + 65536


@pytest.mark.timeout(120)
@FUZZ
@given(rows=st.lists(st.binary(max_size=96), min_size=1, max_size=40), tcp=st.booleans())
def test_routine_and_hold_take_any_rows(rows, tcp):
    p = np.zeros((len(rows), 96), np.uint8)
    for i, r in enumerate(rows):
        p[i, :len(r)] = np.frombuffer(r, np.uint8)
    plen = np.array([len(r) for r in rows], np.int64)
    n = len(rows)
    args = (np.ones(n, bool), np.full(n, 6 if tcp else 17), np.full(n, 40000), np.full(n, 4712))
    mask, key = data_frame_routine(p, plen, *args)
    assert mask.shape == (n,) and key.shape == (n,)
    assert may_configure(p[:, :16], plen, *args).shape == (n,)


def test_huge_declared_size_does_not_buffer_without_bound():
    state: dict = {}
    head = struct.pack(">BBHHII", 0xAA, 0x31, 0xFFFF, 7, 0, 0)
    seq = 1
    for _ in range(100):
        _check("tcp", head + b"\x00" * 1400, False, state, seq)
        seq += len(head) + 1400
    assert _state_bytes(state) <= 2 * c37.MAX_FRAME


def test_many_streams_keep_a_bounded_configuration_table():
    state: dict = {}
    pmu = b"S".ljust(16) + struct.pack(">HHHHH", 1, 0, 0, 0, 0) + struct.pack(">HH", 0, 1)
    for idcode in range(200):
        body = struct.pack(">IH", 1_000_000, 1) + pmu + struct.pack(">h", 30)
        head = struct.pack(">BBHHII", 0xAA, 0x31, 16 + len(body), idcode, 0, 0)
        _check("udp", head + body + struct.pack(">H", c37.crc_ccitt(head + body)), False, state)
    assert len(state["blocks"]) <= synchrophasor.MAX_STREAMS
    assert len(state["cfgcnt"]) <= synchrophasor.MAX_CFGCNTS
