"""Fuzzing the EtherCAT decoder: random bytes and mutated spec-built frames into signature(),
decode() and the array recogniser of cyclic frames. Nothing may raise or grow without bound, and
wherever the recogniser calls a frame cyclic the decoder must say no more than the master's role
(the engine replays that frame instead of decoding it)."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.ethercat_frames import MASTER, RETURNED, cyclic, startup

from plantguard.model import OP_CATEGORIES, Packet
from plantguard.observation_kinds import keys_of
from plantguard.protocols import ethercat

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SAMPLES = tuple(f[14:] for f in startup() + cyclic(4))      # Ethernet payloads
MAX_OBS = 2 * ethercat.MAX_DATAGRAMS + 1


def _decode(payload: bytes, src: str = MASTER):
    return ethercat.decode(Packet("fuzz", 1, 0.0, payload, src, "ff:ff:ff:ff:ff:ff", 0x88A4))


def _quiet(payloads: list[bytes]) -> np.ndarray:
    buf = b"".join(payloads)
    off = np.cumsum([0] + [len(p) for p in payloads[:-1]]).astype(np.int64)
    plen = np.array([len(p) for p in payloads], np.int64)
    return ethercat.quiet_frames(np.frombuffer(buf + b"\0", np.uint8), off, plen)


def _check(payload: bytes, src: str) -> None:
    ethercat.signature(payload)
    out = _decode(payload, src)
    assert len(out) <= MAX_OBS
    for o in out:
        assert set(o.data) <= set(keys_of(o.kind))
        if o.kind == "operation":
            assert o.data["category"] in OP_CATEGORIES


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes(payload, returning):
    _check(payload, RETURNED if returning else MASTER)
    _check(b"\x00\x10" + payload, MASTER)             # a type-1 header in front


@FUZZ
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=8),
       st.integers(0, 400), st.booleans())
def test_mutated_frames(sample, flips, cut, returning):
    b = bytearray(sample)
    for at, value in flips:
        if b:
            b[at % len(b)] = value
    payload = bytes(b[:cut] if cut < len(b) else b)
    _check(payload, RETURNED if returning else MASTER)


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(SAMPLES), st.binary(max_size=80)), min_size=1, max_size=12),
       st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6))
def test_cyclic_recogniser_never_hides_output(payloads, flips):
    """Where quiet_frames says cyclic, decode gives the master's role alone, in both directions."""
    payloads = [bytearray(p) for p in payloads]
    for at, value in flips:
        p = payloads[at % len(payloads)]
        if p:
            p[at % len(p)] = value
    payloads = [bytes(p) for p in payloads]
    for payload, quiet in zip(payloads, _quiet(payloads).tolist()):
        if quiet:
            for src in (MASTER, RETURNED):
                assert [o.kind for o in _decode(payload, src)] == ["role"]


def test_the_cyclic_frames_are_recognised():
    frames = [f[14:] for f in cyclic(3)]
    assert _quiet(frames).all()
    assert not _quiet([f[14:] for f in startup()]).any()
