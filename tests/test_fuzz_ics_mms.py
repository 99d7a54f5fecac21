"""Fuzzing the IEC 61850 MMS decoder: random bytes and mutated real payloads (TPKT / COTP /
session / presentation / ACSE / MMS) into signature(), decode() and the layer parsers, single
packets and whole random flows. They must not raise, must keep their output bounded and their
per-flow state small (COTP reassembly is capped)."""
from __future__ import annotations

import functools

import pytest
from conftest import SHARED_DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.decode import frames
from test_fuzz_ics_a import _mutate, _state_bytes, edits

from plantguard.model import OP_CATEGORIES, Packet
from plantguard.protocols import mms
from plantguard.protocols.mms import stack
from plantguard.protocols.s7comm.cotp import MAX_COTP_REASSEMBLY

SAMPLES = ["pcaps/ICS-Security-Tools/IEC61850/Sample_File_MMS_and_GOOSE.pcap",
           "pcaps/ICS-Security-Tools/IEC61850/piccolo.pcap",
           "pcaps/ICS-Security-Tools/IEC61850/MMS - Specific Commands/mms-killRequest.pcap",
           "pcaps/ICS-Security-Tools/IEC61850/MMS - Specific Commands/iec61850_read.pcap"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.lru_cache(maxsize=None)
def real_payloads() -> tuple[bytes, ...]:
    out: list[bytes] = []
    if SHARED_DATA.is_dir():
        for rel in SAMPLES:
            path = SHARED_DATA / rel
            if not path.exists():
                continue
            for _f, _ts, lay in frames(path):
                if lay.l4 == "tcp" and 102 in (lay.sport, lay.dport) and lay.payload and lay.payload not in out:
                    out.append(bytes(lay.payload))
    # built: GIVE TOKENS + DATA TRANSFER, one PDV holding an Identify request
    built = b"\x03\x00\x00\x16\x02\xf0\x80\x01\x00\x01\x00\x61\x09\x30\x07\x02\x01\x03\xa0\x02\x82\x00"
    return tuple(out[:120]) or (built,)


def _check(payload: bytes, from_client: bool, state: dict | None = None, seq: int = 1):
    assert isinstance(mms.signature(payload), bool)
    sport, dport = (40000, 102) if from_client else (102, 40000)
    src, dst = ("10.0.0.5", "10.0.0.9") if from_client else ("10.0.0.9", "10.0.0.5")
    pkt = Packet("fuzz", 1, 1.0, payload, src=src, dst=dst, l4="tcp", sport=sport, dport=dport, seq=seq,
                 from_client=from_client, state={} if state is None else state)
    out = mms.decode(pkt)
    assert isinstance(out, list) and len(out) <= 4 * mms.MAX_PDUS_PER_SEGMENT
    for o in out:
        assert o.proto == "mms" and o.kind in ("service", "operation", "error", "identity")
        if o.kind == "operation":
            assert o.data["category"] in OP_CATEGORIES and isinstance(o.data["detail"], str)
            assert len(o.data["detail"]) <= mms.MAX_DETAIL
    return out


@pytest.mark.timeout(120)
@FUZZ
@given(data=st.binary(max_size=600), from_client=st.booleans())
def test_random_bytes(data, from_client):
    _check(data, from_client)
    # the layers on their own: never raise
    stack.unwrap(data)
    mms.parse_pdu(data)


@pytest.mark.timeout(120)
@FUZZ
@given(pick=st.integers(0, 1000), changes=edits, from_client=st.booleans())
def test_mutated_real_payloads(pick, changes, from_client):
    samples = real_payloads()
    data = _mutate(samples[pick % len(samples)], changes)
    _check(data, from_client)
    stack.unwrap(data[7:])
    mms.parse_pdu(data[7:])


@pytest.mark.timeout(120)
@FUZZ
@given(steps=st.lists(st.tuples(st.integers(0, 1000), edits, st.booleans(), st.integers(-3, 3)),
                      min_size=1, max_size=25))
def test_random_tcp_flows_keep_state_bounded(steps):
    samples = real_payloads()
    state: dict = {}
    seq = {True: 1000, False: 50000}
    for pick, changes, from_client, jump in steps:
        payload = _mutate(samples[pick % len(samples)], changes)
        _check(payload, from_client, state, seq[from_client])
        seq[from_client] = (seq[from_client] + len(payload) + jump * 7919) & 0xFFFFFFFF
    assert _state_bytes(state) <= 2 * (mms.MAX_TPKT + MAX_COTP_REASSEMBLY) + 8192


def test_endless_cotp_fragments_do_not_buffer_without_bound():
    state: dict = {}
    unit = b"\x03\x00\x04\x07\x02\xf0\x00" + b"\xa0" * 1024       # DT without end of TSDU
    seq = 1
    for _ in range(200):
        _check(unit, True, state, seq)
        seq += len(unit)
    assert _state_bytes(state) <= MAX_COTP_REASSEMBLY + 2048


def test_deep_nesting_is_bounded():
    """A confirmed request whose service nests 2000 levels of [1] constructed: bounded walk."""
    inner = b"\x1a\x01A\x1a\x01B"
    for _ in range(60):
        inner = b"\xa1" + bytes([len(inner)]) + inner if len(inner) < 120 else b"\xa1\x81" + bytes([len(inner)]) + inner
        if len(inner) > 240:
            break
    pdu = mms.parse_pdu(b"\xa0" + bytes([len(inner) + 5]) + b"\x02\x01\x01\xa4" + bytes([len(inner)]) + inner)
    assert pdu is None or len(pdu.names) <= 16
