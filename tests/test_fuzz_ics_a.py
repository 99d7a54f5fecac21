"""Fuzzing the Modbus, EtherNet/IP and S7comm decoders: random bytes and mutated real payloads
into signature() and decode(), single packets and whole random flows. They must not raise
(the engine would count and skip, but a decoder that returns [] is better), must not hang,
must keep their output and per-flow state bounded."""
from __future__ import annotations

import functools
import struct

import pytest
from conftest import SHARED_DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.decode import frames

from plantguard.model import OP_CATEGORIES, Packet
from plantguard.protocols import enip, modbus, s7comm

MODULES = {"modbus": (modbus, 502, "tcp"), "enip": (enip, 44818, "tcp"), "enip-udp": (enip, 44818, "udp"),
           "enip-io": (enip, 2222, "udp"), "s7comm": (s7comm, 102, "tcp")}
SAMPLES = {
    "modbus": ["pcaps/ICS-Security-Tools/ModbusTCP/modbus_test_data_part1.pcap", "pcaps/zeek/modbus/fuzz-72.pcap"],
    "enip": ["pcaps/icsnpp-enip/multiple_service_packet_cip.pcapng", "pcaps/ICS-Security-Tools/openics/EIP-IPAddressChangeAttempt.pcap"],
    "enip-udp": ["pcaps/ICS-Security-Tools/openics/EIP-IPAddressChangeAttempt.pcap"],
    "enip-io": ["pcaps/icsnpp-enip/enip_cip_example.pcap"],
    "s7comm": ["pcaps/icsnpp-s7comm/snap7.pcap", "pcaps/icsnpp-s7comm/s7comm_plus.pcap",
               "pcaps/ICS-Security-Tools/s7/step7_s300_download.pcapng"],
}
MAX_OBS_PER_PACKET = 2000
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.lru_cache(maxsize=None)
def real_payloads(kind: str) -> tuple[bytes, ...]:
    """Up to 60 distinct payloads of that protocol from the shared captures (a few built-in
    ones when the data set is absent)."""
    _mod, port, l4 = MODULES[kind]
    out: list[bytes] = []
    if SHARED_DATA.is_dir():
        for rel in SAMPLES[kind]:
            path = SHARED_DATA / rel
            if not path.exists():
                continue
            for _f, _ts, lay in frames(path):
                if lay.l4 == l4 and port in (lay.sport, lay.dport) and lay.payload and lay.payload not in out:
                    out.append(bytes(lay.payload))
                if len(out) >= 60:
                    break
    return tuple(out) or (b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x01",
                          b"\x63\x00" + b"\x00" * 22, b"\x03\x00\x00\x07\x02\xf0\x80")


def _packet(kind: str, payload: bytes, from_client: bool, state: dict, seq: int = 1, frame: int = 1) -> Packet:
    _mod, port, l4 = MODULES[kind]
    sport, dport = (40000, port) if from_client else (port, 40000)
    if kind == "enip-io":
        sport = dport = 2222
    src, dst = ("10.0.0.5", "10.0.0.9") if from_client else ("10.0.0.9", "10.0.0.5")
    return Packet("fuzz", frame, float(frame), payload, src=src, dst=dst, l4=l4, sport=sport, dport=dport,
                  seq=seq, from_client=from_client, state=state)


def _check(kind: str, payload: bytes, from_client: bool, state: dict | None = None, seq: int = 1):
    mod = MODULES[kind][0]
    assert isinstance(mod.signature(payload), bool)
    out = mod.decode(_packet(kind, payload, from_client, {} if state is None else state, seq))
    assert isinstance(out, list) and len(out) <= MAX_OBS_PER_PACKET
    for o in out:
        assert o.proto == mod.NAME and o.kind in ("service", "operation", "error", "identity")
        if o.kind == "operation":
            assert o.data["category"] in OP_CATEGORIES and isinstance(o.data["name"], str)
    return out


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    b = bytearray(data)
    for op, pos, val in edits:
        if not b:
            b.append(val)
            continue
        i = pos % len(b)
        if op == 0:
            b[i] = val
        elif op == 1:
            del b[i:]
        elif op == 2:
            b.insert(i, val)
        else:
            b[i:i] = bytes([val]) * (val % 9)
    return bytes(b)


edits = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", list(MODULES))
@FUZZ
@given(data=st.binary(max_size=600), from_client=st.booleans())
def test_random_bytes(kind, data, from_client):
    _check(kind, data, from_client)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", list(MODULES))
@FUZZ
@given(pick=st.integers(0, 1000), changes=edits, from_client=st.booleans())
def test_mutated_real_payloads(kind, pick, changes, from_client):
    samples = real_payloads(kind)
    _check(kind, _mutate(samples[pick % len(samples)], changes), from_client)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["modbus", "enip", "s7comm"])
@FUZZ
@given(steps=st.lists(st.tuples(st.integers(0, 1000), edits, st.booleans(), st.integers(-3, 3)),
                      min_size=1, max_size=25))
def test_random_flows_keep_state_bounded(kind, steps):
    """Mutated segments of one flow with jumping sequence numbers: per-flow state stays small."""
    samples = real_payloads(kind)
    state: dict = {}
    seq = {True: 1000, False: 50000}
    for pick, changes, from_client, jump in steps:
        payload = _mutate(samples[pick % len(samples)], changes)
        _check(kind, payload, from_client, state, seq[from_client])
        seq[from_client] = (seq[from_client] + len(payload) + jump * 7919) & 0xFFFFFFFF
    assert _state_bytes(state) <= 4 * 65536 + 8 * 65536


def _state_bytes(obj, depth: int = 0) -> int:
    """Bytes held in a decoder's per-flow state (buffers, pending requests)."""
    if depth > 6:
        return 0
    if isinstance(obj, (bytes, bytearray)):
        return len(obj)
    if isinstance(obj, dict):
        return sum(_state_bytes(k, depth + 1) + _state_bytes(v, depth + 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set)):
        return sum(_state_bytes(v, depth + 1) for v in obj)
    if hasattr(obj, "__slots__"):
        return sum(_state_bytes(getattr(obj, s, None), depth + 1) for s in obj.__slots__)
    return 0


def test_huge_declared_lengths_do_not_buffer_without_bound():
    """Headers announcing 64 KiB PDUs followed by a trickle of bytes: memory stays capped."""
    state: dict = {}
    head = struct.pack("<HHII8sI", 0x70, 0xFFFF, 1, 0, b"\0" * 8, 0)
    seq = 1
    _check("enip", head, True, state, seq)
    seq += len(head)
    for _ in range(300):
        _check("enip", b"\x00" * 512, True, state, seq)
        seq += 512
    assert _state_bytes(state) <= 24 + 0xFFFF + 1024
    state = {}
    tpkt = b"\x03\x00\xff\xff\x02\xf0\x00"         # a COTP fragment without end of TPDU
    seq = 1
    for _ in range(300):
        _check("s7comm", tpkt + b"\x32" * (0xFFFF - 7), True, state, seq)
        seq += 0xFFFF
    assert _state_bytes(state) <= 2 * 65536 + 1024


def test_many_pdus_in_one_segment_are_capped():
    adu = struct.pack(">HHHBB", 1, 0, 6, 1, 3) + b"\x00\x00\x00\x01"
    out = _check("modbus", adu * 2000, True)
    assert len([o for o in out if o.kind == "operation"]) == modbus.MAX_PDUS_PER_SEGMENT
