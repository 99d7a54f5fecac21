"""Fuzzing the DNP3, BACnet, PROFINET, IEC 104, OPC UA and MQTT decoders with hypothesis:
random bytes, mutated payloads from the real captures, and streams of segments fed into one
flow state. decode() and signature() must never raise, never hang and keep their output
bounded; every observation must respect the model's contract."""
from __future__ import annotations

import functools
import random

import pytest
from conftest import SHARED_DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.decode import frames

from plantguard.model import OP_CATEGORIES, Observation, Packet
from plantguard.protocols import bacnet, dnp3, iec104, mqtt, opcua, profinet

MODULES = [dnp3, bacnet, profinet, iec104, opcua, mqtt]
KINDS = {"identity", "service", "operation", "credential", "session", "tls", "certificate",
         "hostname", "address", "topic", "error", "role"}
MAX_OBS_PER_PACKET = 1024
SAMPLE_CAPTURES = {
    dnp3: ["pcaps/zeek/dnp3/dnp3.pcap", "pcaps/ICS-Security-Tools/openics/DNP3-Malformed.pcap"],
    bacnet: ["pcaps/icsnpp-bacnet/bacnet_error_reject_abort.pcap", "pcaps/icsnpp-bacnet/bacnet_segmented_data.pcap"],
    profinet: ["pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap",
               "pcaps/ICS-Security-Tools/profinet/PROFINET-RT-DCP/ChangeIPUsingDCP.pcap"],
    iec104: ["pcaps/ICS-Security-Tools/IEC60870-5-104/TestDissectIec104.pcap"],
    opcua: ["pcaps/icsnpp-opcua-binary/open62541_client-server_mainloop.pcap"],
    mqtt: ["pcaps/zeek/mqtt.pcap"],
}
FUZZ = settings(max_examples=int(__import__("os").environ.get("ICS_B_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.lru_cache(maxsize=1)
def samples() -> list[tuple]:
    """(module, payload, is layer 2) from the real captures (empty without the shared data)."""
    out = []
    for mod, rels in SAMPLE_CAPTURES.items():
        per_capture = 80 // len(rels)
        for rel in rels:
            path = SHARED_DATA / rel
            if not path.exists():
                continue
            taken = 0
            for _f, _ts, lay in frames(path):
                if lay.l4 and lay.payload and (mod.signature(lay.payload) or mod in (dnp3, iec104, opcua, mqtt)
                                               and (mod.SPEC.tcp_ports[0] in (lay.sport, lay.dport))):
                    out.append((mod, bytes(lay.payload), False))
                    taken += 1
                elif mod is profinet and not lay.l4 and lay.ethertype == 0x8892:
                    out.append((mod, bytes(lay.l3), True))
                    taken += 1
                if taken >= per_capture:
                    break
    return out


def _packet(mod, payload: bytes, state: dict, frame: int, from_client: bool, seq: int, l2: bool) -> Packet:
    if l2:
        return Packet("fuzz", frame, float(frame), payload, "00:00:00:00:00:01", "01:0e:cf:00:00:00",
                      0x8892, None, state=state)
    port = (mod.SPEC.tcp_ports or mod.SPEC.udp_ports or (9999,))[0]
    l4 = "tcp" if mod.SPEC.tcp_ports or mod is opcua else "udp"
    src, dst, sport, dport = ("10.0.0.1", "10.0.0.2", 40000, port) if from_client else \
        ("10.0.0.2", "10.0.0.1", port, 40000)
    return Packet("fuzz", frame, float(frame), payload, "00:00:00:00:00:01", "00:00:00:00:00:02", 0x0800, None,
                  src, dst, l4, sport, dport, 0x18, seq, from_client, state)


def _check(obs) -> None:
    assert isinstance(obs, list) and len(obs) <= MAX_OBS_PER_PACKET
    for o in obs:
        assert isinstance(o, Observation) and o.kind in KINDS and o.subject in ("src", "dst")
        if o.kind == "operation":
            assert o.data["category"] in OP_CATEGORIES
            assert {"code", "name", "detail"} <= set(o.data)
        if o.kind == "credential":
            assert o.data["result"] in ("success", "failure", None) and isinstance(o.data["cleartext"], bool)


def _feed(mod, chunks, l2: bool = False) -> None:
    state: dict = {}
    seqs = {True: 1000, False: 900000}
    for frame, (payload, from_client, jump) in enumerate(chunks, 1):
        if jump:
            seqs[from_client] += jump          # a lost segment, a retransmission or reordering
        pkt = _packet(mod, payload, state, frame, from_client, seqs[from_client] & 0xFFFFFFFF, l2)
        _check(mod.decode(pkt))
        seqs[from_client] += len(payload)


@pytest.mark.timeout(120)
@FUZZ
@given(mod=st.sampled_from(MODULES), data=st.binary(max_size=2048))
def test_signature_never_raises(mod, data):
    assert mod.signature(data) in (True, False)


@pytest.mark.timeout(120)
@FUZZ
@given(mod=st.sampled_from(MODULES), chunks=st.lists(
    st.tuples(st.binary(max_size=700), st.booleans(), st.sampled_from([0, 0, 0, 7, -3, 5000])),
    min_size=1, max_size=10), l2=st.booleans())
def test_random_streams(mod, chunks, l2):
    _feed(mod, chunks, l2 and mod is profinet)


@st.composite
def mutated(draw):
    pool = samples()
    if not pool:
        pytest.skip("shared captures not available")
    mod, payload, l2 = draw(st.sampled_from(pool))
    b = bytearray(payload)
    rnd = random.Random(draw(st.integers(0, 2 ** 32 - 1)))
    for _ in range(draw(st.integers(1, 8))):
        op = rnd.randrange(5)
        if op == 0 and b:                                   # flip a byte
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        elif op == 1 and b:                                 # truncate
            del b[rnd.randrange(len(b)):]
        elif op == 2:                                       # insert junk
            i = rnd.randrange(len(b) + 1)
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 16)))
        elif op == 3 and len(b) > 8:                        # set a length-like field to a huge value
            i = rnd.randrange(len(b) - 4)
            b[i:i + 4] = rnd.choice([b"\xff\xff\xff\x7f", b"\xff\xff", b"\x00\x00\x00\x00", b"\x7f"])
        elif op == 4 and b:                                 # duplicate a slice (repeated PDUs)
            i = rnd.randrange(len(b))
            b += b[i:i + rnd.randrange(1, 64)]
    return mod, bytes(b), l2


@pytest.mark.timeout(120)
@FUZZ
@given(cases=st.lists(mutated(), min_size=1, max_size=6))
def test_mutated_real_payloads(cases):
    for mod, payload, l2 in cases:
        assert mod.signature(payload) in (True, False)
        _feed(mod, [(payload, True, 0), (payload, False, 0), (payload[: len(payload) // 2], True, 0)], l2)


@pytest.mark.timeout(120)
@FUZZ
@given(cases=st.lists(mutated(), min_size=2, max_size=12), splits=st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_mutated_streams_split_anywhere(cases, splits):
    """Mutated PDUs of one protocol, concatenated and cut into segments at arbitrary points."""
    mod = cases[0][0]
    stream = b"".join(p for m, p, l2 in cases if m is mod and not l2)
    chunks, i = [], 0
    for n in splits * (1 + len(stream) // max(1, sum(splits))):
        if i >= len(stream):
            break
        chunks.append((stream[i:i + n], True, 0))
        i += n
    if chunks:
        _feed(mod, chunks)


def test_pathological_inputs_are_bounded():
    """Hand-picked worst cases: maximal length fields, endless repetitions of tiny PDUs."""
    cases = {
        dnp3: b"\x05\x64\x05\xc0\x01\x00\x02\x00" + b"\x00\x00" + b"\x05\x64" * 5000,
        iec104: b"\x68\x04\x43\x00\x00\x00" * 4000,
        mqtt: b"\xc0\x00" * 8000 + b"\x30\xff\xff\xff\x7f",
        opcua: b"MSGF\x10\x00\x00\x00" + b"\x00" * 8 + b"MSGC\xff\xff\xff\x00" * 100,
        bacnet: b"\x81\x0a\x00\x08\x01\x00" + b"\x0e" * 4000,
        profinet: b"\x04\x00" + b"\xff" * 4000,
    }
    for mod, payload in cases.items():
        _feed(mod, [(payload, True, 0), (payload, False, 0)])
    _feed(profinet, [(b"\xfe\xff\x05\x01" + b"\x00" * 6 + b"\xff\xff" + b"\x02\x02\xff\xff" * 500, True, 0)], True)
