"""Fuzzing the IEC 61850 GOOSE and Sampled Values decoders: random bytes and mutated spec-built
frames into signature(), decode() and the array recognisers of routine frames. Nothing may raise
out of decode, no observation key may be undeclared, the stream state stays bounded, and wherever
a recogniser calls a frame routine the decoder's output for it must not depend on what the key
leaves out (the engine replays that frame instead of decoding it)."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.iec61850_frames import goose_pdu, l2_payload, sv_pdu

from plantguard.model import OP_CATEGORIES, Packet
from plantguard.observation_kinds import keys_of
from plantguard.protocols import goose, sv

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GOOSE = (l2_payload(1, goose_pdu(st=3, sq=7)), l2_payload(1, goose_pdu(st=300, sq=70000, go_id=None)),
         l2_payload(2, goose_pdu(test=True, nds=True), simulation=True))
SV = (l2_payload(0x4000, sv_pdu()), l2_payload(0x4001, sv_pdu(asdus=8, dataset="MU/LLN0$ds", smp_rate=80)))
MACS = ("00:30:a7:00:00:01", "01:0c:cd:01:00:01")


def _check(module, payload: bytes, state: dict) -> None:
    module.signature(payload)
    out = module.decode(Packet("fuzz", 1, 0.0, payload, *MACS, 0x88B8, state=state))
    assert len(out) <= 64
    for o in out:
        assert set(o.data) <= set(keys_of(o.kind)), o.data
        if o.kind == "operation":
            assert o.data["category"] in OP_CATEGORIES
        for v in o.data.values():
            assert not isinstance(v, (bytes, bytearray))
    assert len(state.get("streams", {})) <= goose.MAX_STREAMS


def _recognise(module, payloads: list[bytes]):
    buf = b"".join(payloads)
    off = np.cumsum([0] + [len(p) for p in payloads[:-1]]).astype(np.int64)
    plen = np.array([len(p) for p in payloads], np.int64)
    arr = np.frombuffer(buf + b"\0", np.uint8)
    if module is goose:
        src = np.ones(len(payloads), np.uint64)
        return goose.frame_routine(arr, off, plen, macs=(src, src))
    return sv.frame_routine(arr, off, plen)


def _mutate(sample: bytes, flips, cut) -> bytes:
    b = bytearray(sample)
    for at, value in flips:
        b[at % len(b)] = value
    return bytes(b[:cut] if cut < len(b) else b)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(payload):
    state: dict = {}
    for module in (goose, sv):
        _check(module, payload, state)
        _check(module, b"\x00\x01\x00\x40\x00\x00\x00\x00" + payload, state)
        _recognise(module, [payload or b"\0", payload + b"\0"])


FLIPS = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6)


@FUZZ
@given(st.sampled_from(GOOSE + SV), FLIPS, st.integers(0, 400))
def test_mutated_frames(sample, flips, cut):
    payload = _mutate(sample, flips, cut)
    state: dict = {}
    for module in (goose, sv):
        _check(module, payload, state)
        _check(module, payload, state)


def _output(module, payload, state):
    return sorted((o.kind, tuple(sorted(o.data.items()))) for o in
                  module.decode(Packet("fuzz", 1, 0.0, payload, *MACS, 0x88B8, state=state)))


@FUZZ
@given(st.integers(0, 65535), st.integers(0, 65535), st.integers(1, 8), st.booleans(), FLIPS)
def test_sv_routine_key_covers_the_output(cnt_a, cnt_b, asdus, simulation, flips):
    """Frames that differ in smpCnt and the samples only get one key and give one output; a
    mutated frame the recogniser accepts gives the output of any frame with its key."""
    a = l2_payload(0x4000, sv_pdu(smp_cnt=cnt_a, asdus=asdus), simulation=simulation)
    b = l2_payload(0x4000, sv_pdu(smp_cnt=cnt_b, asdus=asdus), simulation=simulation)
    c = _mutate(a, flips, 1000)
    mask, key = _recognise(sv, [a, b, c])
    assert mask[0] and mask[1] and key[0] == key[1]
    assert _output(sv, a, {}) == _output(sv, b, {})
    if mask[2] and key[2] == key[0]:
        assert _output(sv, c, {}) == _output(sv, a, {})


@FUZZ
@given(st.integers(0, 5000), st.integers(0, 70000), st.integers(1, 3), st.booleans())
def test_goose_routine_frames_continue_their_stream(st_num, sq, conf_rev, test):
    """A run of heartbeats: the frames the recogniser replays are those with a continuing
    predecessor and successor, and the decoder says the same for each of them."""
    frames = [l2_payload(1, goose_pdu(st=st_num, sq=sq + i, conf_rev=conf_rev, test=test)) for i in range(6)]
    mask, key = _recognise(goose, frames)
    state: dict = {}
    outs = [_output(goose, f, state) for f in frames]
    by_key: dict = {}
    for i in np.flatnonzero(mask):
        assert 0 < i < len(frames) - 1
        assert key[i - 1] == key[i] == key[i + 1]          # it continues and is continued
        assert outs[i] == by_key.setdefault(int(key[i]), outs[i])
    if sq + 5 < 128:                                        # one sqNum width: all but the ends replay
        assert mask.tolist() == [False, True, True, True, True, False]
