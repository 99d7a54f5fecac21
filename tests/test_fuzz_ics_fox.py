"""Fuzzing the Niagara Fox decoder: random bytes, mutated real frames (the hellos and the digest
challenge of fox_info.pcap) and frames built from random fields into signature(), frame_len()
and decode(), single packets and whole random flows. They must not raise, must keep their output
bounded and printable, and their per-flow state small."""
from __future__ import annotations

import functools

import pytest
from conftest import SHARED_DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.decode import frames
from test_fuzz_ics_a import _mutate, _state_bytes, edits

from plantguard.model import OP_CATEGORIES, Packet
from plantguard.protocols import fox

SAMPLE = "pcaps/ICS-Security-Tools/fox/fox_info.pcap"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BUILT = (b"fox a 0 -1 fox hello\n{\nfox.version=s:1.0\napp.name=s:Station\napp.version=s:3.8.38\n"
         b"sysInfo=o:bog 4[<b/>]\n};;\n")


@functools.cache
def real_payloads() -> tuple[bytes, ...]:
    out: list[bytes] = []
    if SHARED_DATA.is_dir() and (SHARED_DATA / SAMPLE).exists():
        out = [bytes(lay.payload) for _f, _ts, lay in frames(SHARED_DATA / SAMPLE) if lay.payload]
    return tuple(out) or (BUILT,)


def _check(payload: bytes, from_client: bool, state: dict | None = None, seq: int = 1):
    assert isinstance(fox.signature(payload), bool)
    n = fox.frame_len(payload, 0)
    assert n in (fox.BAD, fox.NEED_MORE) or 0 < n <= len(payload)
    sport, dport = (40000, 1911) if from_client else (1911, 40000)
    src, dst = ("10.0.0.5", "10.0.0.9") if from_client else ("10.0.0.9", "10.0.0.5")
    pkt = Packet("fuzz", 1, 1.0, payload, src=src, dst=dst, l4="tcp", sport=sport, dport=dport, seq=seq,
                 from_client=from_client, state={} if state is None else state)
    out = fox.decode(pkt)
    assert isinstance(out, list) and len(out) <= 6 * fox.MAX_PDUS_PER_SEGMENT
    for o in out:
        assert o.proto == "fox" and o.kind in fox.SPEC.observes
        if o.kind == "operation":
            assert o.data["category"] in OP_CATEGORIES
        for v in o.data.values():
            if isinstance(v, str):
                assert v.isprintable() and len(v) <= 2 * fox.MAX_TEXT
    return out


@pytest.mark.timeout(120)
@FUZZ
@given(data=st.binary(max_size=600), from_client=st.booleans())
def test_random_bytes(data, from_client):
    _check(data, from_client)
    _check(b"fox a 0 -1 fox hello\n{\n" + data, from_client)


@pytest.mark.timeout(120)
@FUZZ
@given(pick=st.integers(0, 1000), changes=edits, from_client=st.booleans())
def test_mutated_real_payloads(pick, changes, from_client):
    samples = real_payloads()
    _check(_mutate(samples[pick % len(samples)], changes), from_client)


_key = st.from_regex(r"[A-Za-z][A-Za-z0-9._]{0,19}", fullmatch=True)   # keys are identifiers (app.name)
_value = st.one_of(
    st.tuples(st.sampled_from("sifzt"), st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" "))),
    st.binary(max_size=40).map(lambda b: ("b", b)),
    st.binary(max_size=40).map(lambda b: ("o", b)))


@pytest.mark.timeout(120)
@FUZZ
@given(fields=st.lists(st.tuples(_key, _value), max_size=20), from_client=st.booleans(),
       command=st.sampled_from(["hello", "challenge", "authenticate", "x"]))
def test_frames_of_random_fields_frame_whole(fields, from_client, command):
    body = b""
    for key, (t, raw) in fields:
        if t == "b":
            body += f"{key}=b:{len(raw)}[".encode() + raw + b"]\n"
        elif t == "o":
            body += f"{key}=o:bog {len(raw)}[".encode() + raw + b"]\n"
        else:
            body += f"{key}={t}:".encode() + raw + b"\n"
    frame = f"fox a 1 -1 fox {command}\n{{\n".encode() + body + b"};;\n"
    assert fox.frame_len(frame, 0) == len(frame)
    assert fox.parse_frame(frame) is not None
    _check(frame, from_client)


@pytest.mark.timeout(120)
@FUZZ
@given(steps=st.lists(st.tuples(st.integers(0, 1000), edits, st.booleans(), st.integers(-3, 3)),
                      min_size=1, max_size=25))
def test_random_flows_keep_state_bounded(steps):
    samples = real_payloads()
    state: dict = {}
    seq = {True: 1000, False: 50000}
    for pick, changes, from_client, jump in steps:
        payload = _mutate(samples[pick % len(samples)], changes)
        _check(payload, from_client, state, seq[from_client])
        seq[from_client] = (seq[from_client] + len(payload) + jump * 7919) & 0xFFFFFFFF
    assert _state_bytes(state) <= 2 * fox.MAX_FRAME + 8192
