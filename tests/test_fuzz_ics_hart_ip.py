"""Fuzzing the HART-IP decoder: random bytes and mutated real payloads (UDP and TCP) into
signature() and decode(), single packets and whole random flows. They must not raise, must keep
their output bounded and their per-flow state small; the routine recogniser must take rows of
any bytes without raising."""
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
from plantguard.protocols import hart_ip
from plantguard.protocols.hart_ip import frame as hf
from plantguard.protocols.hart_ip.routine import hart_ip_routine

SAMPLES = ["pcaps/icsnpp-hart-ip/testing/traces/hart-ip_all_types_and_commands_sent.pcapng",
           "pcaps/icsnpp-hart-ip/testing/traces/hart-ip_all_messageIDs.pcapng",
           "pcaps/ICS-Security-Tools/hart/hart_ip.pcap"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# a token-passing Read Unique Identifier reply of a HART 7 device (the cmd 0 layout)
BUILT = bytes.fromhex("0101030000010029") + bytes.fromhex("86a695eb27b80018" "0000" "fe264e050704010e0c0000d2"
                                                          "0502000203" "0026" "0026" "84") + b"\x00"


@functools.cache
def real_payloads(l4: str) -> tuple[bytes, ...]:
    out: list[bytes] = []
    if SHARED_DATA.is_dir():
        for rel in SAMPLES:
            path = SHARED_DATA / rel
            if not path.exists():
                continue
            for _f, _ts, lay in frames(path):
                if lay.l4 == l4 and lay.payload and hart_ip.signature(lay.payload) and lay.payload not in out:
                    out.append(bytes(lay.payload))
    return tuple(out[:120]) or (BUILT,)


def _check(l4: str, payload: bytes, from_client: bool, state: dict | None = None, seq: int = 1):
    assert isinstance(hart_ip.signature(payload), bool)
    sport, dport = (40000, 5094) if from_client else (5094, 40000)
    src, dst = ("10.0.0.5", "10.0.0.9") if from_client else ("10.0.0.9", "10.0.0.5")
    pkt = Packet("fuzz", 1, 1.0, payload, src=src, dst=dst, l4=l4, sport=sport, dport=dport, seq=seq,
                 from_client=from_client, state={} if state is None else state)
    out = hart_ip.decode(pkt)
    assert isinstance(out, list) and len(out) <= 66 * hart_ip.MAX_PDUS_PER_SEGMENT
    for o in out:
        assert o.proto == "hart-ip" and o.kind in ("service", "operation", "error", "identity")
        if o.kind == "operation":
            assert o.data["category"] in OP_CATEGORIES and isinstance(o.data["detail"], str)
        for v in o.data.values():
            assert not isinstance(v, bytes)
    assert len(pkt.state.get("hart_server_devices", ())) <= hart_ip.MAX_DEVICES
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
    assert _state_bytes(state) <= 2 * hf.MAX_MESSAGE + 8192


@pytest.mark.timeout(120)
@FUZZ
@given(rows=st.lists(st.binary(max_size=64), min_size=1, max_size=40), tcp=st.booleans())
def test_routine_takes_any_rows(rows, tcp):
    p = np.zeros((len(rows), 64), np.uint8)
    for i, r in enumerate(rows):
        p[i, :len(r)] = np.frombuffer(r, np.uint8)
    plen = np.array([len(r) for r in rows], np.int64)
    n = len(rows)
    mask, key = hart_ip_routine(p, plen, np.ones(n, bool), np.full(n, 6 if tcp else 17), np.full(n, 40000),
                                np.full(n, 5094))
    assert mask.shape == (n,) and key.shape == (n,)


def test_huge_declared_length_does_not_buffer_without_bound():
    state: dict = {}
    head = bytes.fromhex("010003000001ffff")
    seq = 1
    for _ in range(50):
        _check("tcp", head + b"\x00" * 1024, True, state, seq)
        seq += len(head) + 1024
    assert _state_bytes(state) <= 2 * hf.MAX_MESSAGE


def test_direct_pdu_of_many_commands_is_bounded():
    body = b"\x00\x00" + b"\x00\x01\x00" * 600
    msg = bytes([1, 0, 4, 0, 0, 1]) + (8 + len(body)).to_bytes(2, "big") + body
    out = _check("udp", msg[:hf.MAX_MESSAGE], True)
    assert len([o for o in out if o.kind == "operation"]) <= 64
