"""Fuzzing the Beckhoff ADS/AMS decoder: random bytes and mutated real payloads (AMS/TCP and UDP
discovery / add-route) into the signatures and decode(), single packets and whole random flows.
They must not raise, must keep their output bounded and their per-flow state small; the routine
recogniser must take rows of any bytes without raising."""
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
from plantguard.protocols import ads
from plantguard.protocols.ads import frame as ads_frame
from plantguard.protocols.ads.routine import ads_routine

SAMPLES = ["pcaps/ICS-Security-Tools/beckoff/beckoffaddroute.pcapng",
           "pcaps/ICS-Security-Tools/beckoff/addroute.pcapng"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PORTS = {"tcp": 48898, "udp": 48899}


@functools.cache
def real_payloads(l4: str) -> tuple[bytes, ...]:
    out: list[bytes] = []
    if SHARED_DATA.is_dir():
        for rel in SAMPLES:
            path = SHARED_DATA / rel
            if not path.exists():
                continue
            for _f, _ts, lay in frames(path):
                if lay.l4 == l4 and PORTS[l4] in (lay.sport, lay.dport) and lay.payload and lay.payload not in out:
                    out.append(bytes(lay.payload))
    data = struct.pack("<III", 0x4020, 0, 4)
    head = bytes(6) + struct.pack("<H", 851) + bytes(6) + struct.pack("<HHHIII", 32905, 2, 4, len(data), 0, 1)
    built = struct.pack("<HI", 0, len(head) + len(data)) + head + data
    disc = struct.pack("<III", 0x71146603, 0, 1) + bytes([192, 168, 1, 99, 1, 1]) + struct.pack("<HI", 10000, 0)
    return tuple(out[:80]) or ((built,) if l4 == "tcp" else (disc,))


def _check(l4: str, payload: bytes, from_client: bool, state: dict | None = None, seq: int = 1):
    assert isinstance(ads.signature(payload), bool) and isinstance(ads.strict_signature(payload), bool)
    port = PORTS[l4]
    sport, dport = (40000, port) if from_client else (port, 40000)
    src, dst = ("10.0.0.5", "10.0.0.9") if from_client else ("10.0.0.9", "10.0.0.5")
    pkt = Packet("fuzz", 1, 1.0, payload, src=src, dst=dst, l4=l4, sport=sport, dport=dport, seq=seq,
                 from_client=from_client, state={} if state is None else state)
    out = ads.decode(pkt)
    assert isinstance(out, list) and len(out) <= 3 * ads.MAX_PDUS_PER_SEGMENT
    for o in out:
        assert o.proto == "ads" and o.kind in ("service", "operation", "error", "identity", "credential", "role")
        if o.kind == "operation":
            assert o.data["category"] in OP_CATEGORIES and isinstance(o.data["detail"], str)
            assert len(o.data["detail"]) < 1024
        for v in o.data.values():
            assert not isinstance(v, bytes)
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
    assert _state_bytes(state) <= 2 * ads_frame.MAX_PDU + 8192


@pytest.mark.timeout(120)
@FUZZ
@given(rows=st.lists(st.binary(max_size=128), min_size=1, max_size=40), tcp=st.booleans())
def test_routine_takes_any_rows(rows, tcp):
    p = np.zeros((len(rows), 128), np.uint8)
    for i, r in enumerate(rows):
        p[i, :len(r)] = np.frombuffer(r, np.uint8)
    plen = np.array([len(r) for r in rows], np.int64)
    n = len(rows)
    mask, key = ads_routine(p, plen, np.ones(n, bool), np.full(n, 6 if tcp else 17), np.full(n, 40000),
                            np.full(n, 48898))
    assert mask.shape == (n,) and key.shape == (n,)


def test_huge_declared_length_does_not_buffer_without_bound():
    """A length field of 4 GB is refused at once; one just under the cap is kept only up to it."""
    state: dict = {}
    head = struct.pack("<HI", 0, 0xFFFFFFF0) + bytes(32)
    seq = 1
    for _ in range(50):
        _check("tcp", head + b"\x00" * 1024, True, state, seq)
        seq += len(head) + 1024
    assert _state_bytes(state) <= 2 * ads_frame.MAX_PDU
    state = {}
    head = struct.pack("<HI", 0, ads_frame.MAX_PDU - 6) + bytes(32)
    seq = 1
    for _ in range(40):
        _check("tcp", head + b"\x00" * 30000, True, state, seq)
        seq += len(head) + 30000
    assert _state_bytes(state) <= 2 * ads_frame.MAX_PDU
