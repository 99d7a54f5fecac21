"""The columnar engine against its oracles, on every capture in the shared data set:
  - the reference analysis (one frame at a time in plain Python): identical flows (key,
    packets, bytes, direction counts, first/last, app, operations, MACs) and identical folded
    observations (every field, count and last frame included), with the normal chunk size and
    with tiny chunks (so state carried from chunk to chunk is exercised);
  - tshark, where installed: packets per capture and TCP/UDP conversations with their frame counts.
Every capture must also run with no exception."""
from __future__ import annotations

import collections
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from plantguard.capture.aggregate import fold_key
from plantguard.capture.engine import DEFAULT_CHUNK, analyze
from plantguard.capture.layers import FRAGMENT_COUNTERS
from plantguard.capture.reference import analyze_reference

PCAPS = SHARED_DATA / "pcaps"


def _captures() -> list[Path]:
    if not PCAPS.is_dir():
        return []
    return sorted(p for p in PCAPS.rglob("*") if p.is_file() and p.suffix in (".pcap", ".pcapng", ".cap", ".gz"))


CAPTURES = _captures()
needs_data = pytest.mark.skipif(not CAPTURES, reason=f"shared captures not found under {PCAPS}")


def flow_table(res):
    return {(f.l4, f.client, f.client_port, f.server, f.port, f.vlan):
            (f.packets, f.bytes, f.packets_to_server, f.bytes_to_server, f.first, f.last, f.app,
             f.operations, f.client_mac, f.server_mac, f.capture, f.first_frame, f.tunnel) for f in res.flows}


def observation_multiset(res):
    return collections.Counter(
        (fold_key(o), o.capture, o.frame, o.ts, o.count, o.last_frame, o.last_ts, o.src_mac,
         o.dst_mac, o.sport, o.vlan) for o in res.observations)


def assert_equivalent(ref, got):
    assert [(c.path, c.packets, c.bytes, c.first, c.last, c.warnings) for c in got.captures] == \
        [(c.path, c.packets, c.bytes, c.first, c.last, c.warnings) for c in ref.captures]
    ft_ref, ft_got = flow_table(ref), flow_table(got)
    assert len(got.flows) == len(ref.flows)
    diff = {k: (ft_ref.get(k), ft_got.get(k)) for k in ft_ref.keys() | ft_got.keys() if ft_ref.get(k) != ft_got.get(k)}
    assert not diff, list(diff.items())[:3]
    om_ref, om_got = observation_multiset(ref), observation_multiset(got)
    assert om_ref == om_got, (list((om_ref - om_got).items())[:2], list((om_got - om_ref).items())[:2])
    for c in FRAGMENT_COUNTERS + ("undecoded_link",):
        assert got.counters[c] == ref.counters[c]
    kinds = {k for k in ref.counters.keys() | got.counters.keys() if ":" in k}   # what was not unwrapped, by kind
    assert {k: got.counters.get(k) for k in kinds} == {k: ref.counters.get(k) for k in kinds}


@needs_data
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: str(p.relative_to(PCAPS)))
def test_engine_equals_reference(path):
    assert_equivalent(analyze_reference([path]), analyze([path]))


@needs_data
def test_engine_equals_reference_with_tiny_chunks():
    """Chunks of 13 records: classification, stream positions and learnt routine packets all
    cross chunk boundaries. The 40 largest captures."""
    biggest = sorted(CAPTURES, key=lambda p: p.stat().st_size)[-40:]
    for path in biggest:
        assert_equivalent(analyze_reference([path]), analyze([path], chunk_records=13))


@needs_data
def test_several_captures_in_one_run():
    paths = [p for p in CAPTURES if "modbus" in str(p).lower()][:6]
    assert_equivalent(analyze_reference(paths), analyze(paths))


def wrapped_sequence_numbers(raw: bytes, margin: int = 3000) -> tuple[bytes, int]:
    """A classic little-endian Ethernet pcap with every TCP direction's sequence numbers
    shifted to wrap at 2^32 `margin` bytes into the direction, and the second payload segment
    after the wrap sent twice (a full retransmission). Returns (pcap, repeats written)."""
    out, off = [raw[:24]], 24
    first: dict[bytes, int] = {}
    after: collections.Counter = collections.Counter()
    while off + 16 <= len(raw):
        incl = struct.unpack_from("<I", raw, off + 8)[0]
        hdr, fr = raw[off:off + 16], bytearray(raw[off + 16:off + 16 + incl])
        off += 16 + incl
        out += [hdr, bytes(fr)]
        if len(fr) < 54 or fr[12:14] != b"\x08\x00" or fr[23] != 6:
            continue
        t = 14 + (fr[14] & 15) * 4
        key = bytes(fr[26:34] + fr[t:t + 4])            # addresses and ports: one direction
        seq = struct.unpack_from("!I", fr, t + 4)[0]
        new = (seq - first.setdefault(key, seq) - margin) & 0xFFFFFFFF
        struct.pack_into("!I", fr, t + 4, new)
        out[-1] = bytes(fr)
        if len(fr) - t - (fr[t + 12] >> 4) * 4 > 0 and new < 1 << 31:    # payload, past the wrap
            after[key] += 1
            if after[key] == 2:
                out += [hdr, bytes(fr)]
    return b"".join(out), sum(1 for v in after.values() if v >= 2)


@needs_data
def test_sequence_numbers_wrapping_mid_connection(tmp_path):
    """modbusBig.pcap with its connections' sequence numbers wrapping at 2^32 early on, and one
    full retransmission per direction after the wrap. The stream marks are kept modulo 2^32:
    before, a retransmission after the wrap counted as new data, was replayed, and a write
    request was counted twice (the reference, whose modules mask, counted it once)."""
    src = PCAPS / "zeek" / "modbus" / "modbusBig.pcap"
    if not src.exists():
        pytest.skip("modbusBig.pcap missing")
    data, repeats = wrapped_sequence_numbers(src.read_bytes())
    assert repeats >= 4
    path = tmp_path / "wrapped.pcap"
    path.write_bytes(data)
    ref = analyze_reference([path])
    for chunk in (DEFAULT_CHUNK, 13, 1000):
        got = analyze([path], chunk_records=chunk)
        assert_equivalent(ref, got)
        assert got.counters["retransmissions_skipped"] >= 3, got.counters
    plain = analyze([src])
    ops = lambda res: sorted((f.client, f.client_port, sorted(f.operations.items())) for f in res.flows)
    assert ops(got) == ops(plain)          # the repeats add no operation


@needs_data
def test_routine_packets_are_replayed_not_decoded():
    """On a Modbus polling capture most packets must take the array path."""
    path = PCAPS / "zeek" / "modbus" / "modbusBig.pcap"
    if not path.exists():
        pytest.skip("modbusBig.pcap missing")
    res = analyze([path])
    assert res.counters["routine_packets"] > 1000
    assert res.counters["routine_packets"] + res.counters["deep_packets"] < res.captures[0].packets



def test_polling_through_a_lost_segment_is_still_replayed(tmp_path):
    """A mirror port loses a packet: the routine requests after the gap (in order again) are
    replayed, not all decoded for the rest of the connection, and the result is still the
    reference's, with exactly one gap counted."""
    import struct

    from support.packets import pcap_bytes, tcp_conversation
    exchanges = []
    for tid in range(3000):
        exchanges.append((True, struct.pack(">HHHBBHH", tid & 0xFFFF, 0, 6, 1, 3, 100, 2)))
        exchanges.append((False, struct.pack(">HHHBBBHH", tid & 0xFFFF, 0, 7, 1, 3, 4, tid & 0xFF, 7)))
    frames = tcp_conversation("10.0.0.1", "10.0.0.2", 502, exchanges)
    del frames[3 + 20]                          # one request the mirror port lost
    path = tmp_path / "poll_gap.pcap"
    path.write_bytes(pcap_bytes(frames))
    from plantguard.protocols import _pdustream
    ref = analyze_reference([path])
    ref_gaps = _pdustream.STATS["stream_gaps"]
    got = analyze([path])
    assert_equivalent(ref, got)
    assert got.counters["stream_gaps"] == ref_gaps == 1
    assert got.counters["deep_packets"] < 100 < got.counters["routine_packets"]


def test_s7comm_plus_messages_are_replayed():
    """S7comm-plus requests, responses and notifications that repeat (an HMI polling an
    S7-1200/1500) take the array path, sequence numbers and V2/V3 digests left out of the key."""
    path = PCAPS / "icsnpp-s7comm" / "s7comm_plus.pcap"
    if not path.exists():
        pytest.skip("s7comm_plus.pcap missing")
    got = analyze([path])
    assert_equivalent(analyze_reference([path]), got)
    assert got.counters["routine_packets"] > 100 > got.counters["deep_packets"]


# ---- tshark as a second oracle ----
TSHARK = shutil.which("tshark")
TSHARK_CAPTURES = ["zeek/modbus/modbusSmall.pcap", "zeek/dnp3/dnp3.pcap", "icsnpp-enip/enip_cip_example.pcap",
                   "icsnpp-s7comm/snap7.pcap", "zeek/mqtt.pcap", "icsnpp-bacnet/bacnet_services.pcap",
                   "ICS-Security-Tools/ModbusTCP/ModbusTCP.pcap"]
CONV = re.compile(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+([\d,]+) \S+ \S+\s+([\d,]+) \S+ \S+\s+([\d,]+) ")


def _tshark(path: Path):
    out = subprocess.run([TSHARK, "-n", "-r", str(path), "-q", "-z", "conv,tcp", "-z", "conv,udp", "-z", "io,stat,0"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "LC_ALL": "C"}).stdout
    convs, section = collections.Counter(), None
    frames = None
    for line in out.splitlines():
        if line.startswith("TCP Conversations"):
            section = "tcp"
        elif line.startswith("UDP Conversations"):
            section = "udp"
        m = CONV.match(line)
        if m and section:
            a, b = (m.group(1), int(m.group(2))), (m.group(3), int(m.group(4)))
            convs[(section,) + tuple(sorted([a, b]))] += int(m.group(7).replace(",", ""))
        m2 = re.match(r"^\|\s*[\d.]+\s*<>\s*[\d.]+\s*\|\s*(\d+)\s*\|", line)
        if m2:
            frames = int(m2.group(1))
    return convs, frames


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
@needs_data
@pytest.mark.parametrize("rel", TSHARK_CAPTURES)
def test_flows_match_tshark_conversations(rel):
    path = PCAPS / rel
    if not path.exists():
        pytest.skip(f"{rel} missing")
    convs, frames = _tshark(path)
    res = analyze([path])
    assert frames == res.captures[0].packets
    ours = collections.Counter()
    for f in res.flows:        # tshark does not split conversations by VLAN
        ours[(f.l4,) + tuple(sorted([(f.client, f.client_port), (f.server, f.port)]))] += f.packets
    assert ours == convs


def test_pipelined_modbus_polls_are_replayed(tmp_path):
    """A master that sends several requests in one segment (and a slave that answers them in
    one): such segments are routine too, keyed on every ADU's function and addresses; a write
    among reads makes a key of its own, and the result is still the reference's."""
    import struct

    from support.packets import pcap_bytes, tcp_conversation

    def req(tid, fc, addr, qty):
        return struct.pack(">HHHBBHH", tid & 0xFFFF, 0, 6, 1, fc, addr, qty)

    def rsp(tid, fc, words):
        return struct.pack(">HHHBBB", tid & 0xFFFF, 0, 3 + 2 * words, 1, fc, 2 * words) + bytes(2 * words)
    exchanges, tid = [], 0
    for k in range(1500):
        fcs = (3, 4, 6 if k % 100 == 7 else 3)
        exchanges.append((True, b"".join(req(tid + i, fc, 10 * i, 2) for i, fc in enumerate(fcs))))
        exchanges.append((False, b"".join(
            struct.pack(">HHHBBHH", (tid + i) & 0xFFFF, 0, 6, 1, 6, 10 * i, 2) if fc == 6 else rsp(tid + i, fc, 2)
            for i, fc in enumerate(fcs))))
        tid += 3
    path = tmp_path / "pipelined.pcap"
    path.write_bytes(pcap_bytes(tcp_conversation("10.0.0.1", "10.0.0.2", 502, exchanges)))
    got = analyze([path])
    assert_equivalent(analyze_reference([path]), got)
    assert got.counters["routine_packets"] > 2500 and got.counters["deep_packets"] < 200


def test_long_and_pipelined_polls_are_replayed(tmp_path):
    """Segments past the recognisers' first 128 bytes (two 100-register Modbus answers in one
    segment) and S7 read jobs sent together in one segment, one after an empty COTP unit that
    is not the last, are routine too (second passes on what the first rules left); the result
    is still the reference's."""
    import struct

    from support.packets import pcap_bytes, tcp_conversation

    def mb_rsp(tid, words):
        return struct.pack(">HHHBBB", tid & 0xFFFF, 0, 3 + 2 * words, 1, 3, 2 * words) + bytes(2 * words)

    def tpkt(s7: bytes, eot: bool = True) -> bytes:
        cotp = bytes([2, 0xF0, 0x80 if eot else 0])
        return struct.pack(">BBH", 3, 0, 4 + len(cotp) + len(s7)) + cotp + s7

    def s7_read(ref, items, rosctr=1):
        param = bytes([4, len(items)]) + b"".join(
            bytes([0x12, 0x0A, 0x10, 2]) + struct.pack(">HHB", 2, 1, 0x84) + (addr << 3).to_bytes(3, "big")
            for addr in items)
        return struct.pack(">BBHHHH", 0x32, rosctr, 0, ref & 0xFFFF, len(param), 0) + param

    def s7_ack(ref, n):
        data = b"".join(bytes([0xFF, 4, 0, 16, 0, 0]) for _ in range(n))
        return struct.pack(">BBHHHHBB", 0x32, 3, 0, ref & 0xFFFF, 2, len(data), 0, 0) + bytes([4, n]) + data
    modbus, s7 = [], []
    for k in range(600):
        modbus.append((True, struct.pack(">HHHBBHH", 2 * k, 0, 6, 1, 3, 0, 100)
                       + struct.pack(">HHHBBHH", 2 * k + 1, 0, 6, 1, 3, 100, 100)))
        modbus.append((False, mb_rsp(2 * k, 100) + mb_rsp(2 * k + 1, 100)))
        s7.append((True, tpkt(b"", eot=False) + tpkt(s7_read(2 * k, (1, 2))) + tpkt(s7_read(2 * k + 1, (3,)))))
        s7.append((False, tpkt(s7_ack(2 * k, 2)) + tpkt(s7_ack(2 * k + 1, 1))))
    for name, port, exchanges in (("modbus", 502, modbus), ("s7", 102, s7)):
        path = tmp_path / f"{name}.pcap"
        path.write_bytes(pcap_bytes(tcp_conversation("10.0.0.1", "10.0.0.2", port, exchanges)))
        got = analyze([path])
        assert_equivalent(analyze_reference([path]), got)
        assert got.counters["routine_packets"] > 1000 and got.counters["deep_packets"] < 50, (name, got.counters)


@needs_data
def test_bacnet_polling_is_replayed():
    """Zeek's BACnet example polls the same properties with a new invoke id every time, and the
    answers carry changing present values: keyed without the invoke id and the values, those
    polls take the array path (the generic short-payload rule alone replayed 533 datagrams)."""
    path = PCAPS / "icsnpp-bacnet" / "bacnet_example.pcap"
    if not path.exists():
        pytest.skip("bacnet_example.pcap missing")
    ref = analyze_reference([path])
    for chunk in (DEFAULT_CHUNK, 13):
        got = analyze([path], chunk_records=chunk)
        assert_equivalent(ref, got)
        assert got.counters["routine_packets"] > 1800, got.counters
        assert got.counters["deep_packets"] < 1300, got.counters


def _bacnet(apdu: bytes, expecting_reply: bool) -> bytes:
    npdu = b"\x01" + (b"\x04" if expecting_reply else b"\x00")
    return struct.pack(">BBH", 0x81, 0x0A, 4 + len(npdu) + len(apdu)) + npdu + apdu


def test_bacnet_polling_around_a_password_is_exact(tmp_path):
    """A workstation polls a present value, and twice asks to reinitialise the controller with a
    password: once refused, once unanswered (only the next poll reports it, without a verdict). Polls
    of a flow that waits on a password's reply are decoded (ProtocolSpec.hold), the others are
    replayed, and the result is the reference's for any chunk size."""
    from support.packets import pcap_bytes, udp_frame
    frames, inv = [], 0

    def send(client: bool, apdu: bytes) -> None:
        a, b = ("10.0.0.5", "10.0.0.9") if client else ("10.0.0.9", "10.0.0.5")
        frames.append((1.0 + len(frames) / 100, udp_frame(a, b, 47808, 47808, _bacnet(apdu, client))))

    def poll(n: int) -> None:
        nonlocal inv
        for i in range(n):
            inv = (inv + 1) & 0xFF
            ref = b"\x0c\x00\x00\x00\x01\x19\x55"          # analog-input 1, present-value
            send(True, bytes([0x00, 0x05, inv, 12]) + ref)
            send(False, bytes([0x30, inv, 12]) + ref + b"\x3e\x44" + struct.pack(">f", i / 4) + b"\x3f")

    reinit = b"\x09\x01\x1c\x00abc"                       # warm start, password "abc"
    poll(300)
    send(True, bytes([0x00, 0x05, 0x78, 20]) + reinit)
    send(False, bytes([0x50, 0x78, 20]) + b"\x91\x04\x91\x1a")   # security: password-failure
    poll(100)
    send(True, bytes([0x00, 0x05, 0x77, 20]) + reinit)    # never answered: only the next poll tells
    poll(300)
    path = tmp_path / "bacnet_poll.pcap"
    path.write_bytes(pcap_bytes(frames))
    ref = analyze_reference([path])
    assert sorted(str(o.data["result"]) for o in ref.observations if o.kind == "credential") == ["None", "failure"]
    for chunk in (DEFAULT_CHUNK, 13, 301):
        got = analyze([path], chunk_records=chunk)
        assert_equivalent(ref, got)
        # decoded: the first polls (learning), the password requests and the refusal, and the
        # poll after the unanswered request; the polls around them are replayed
        assert got.counters["routine_packets"] > 1350 and got.counters["deep_packets"] < 20, (chunk, got.counters)


def _send_unit_data(session: int, seq: int, cip: bytes) -> bytes:
    """One SendUnitData PDU: connected address item (connection id) and connected data item
    (sequence count, then the CIP message)."""
    data = struct.pack("<IH", 0, 0) + struct.pack("<H", 2) + struct.pack("<HHI", 0xA1, 4, 0x11223344) \
        + struct.pack("<HH", 0xB1, 2 + len(cip)) + struct.pack("<H", seq & 0xFFFF) + cip
    return struct.pack("<HHII8sI", 0x70, len(data), session, 0, b"\0" * 8, 0) + data


def _read_tag(tag: bytes, write: bool = False) -> bytes:
    pad = tag + (b"\0" if len(tag) % 2 else b"")
    path = bytes([0x91, len(tag)]) + pad
    if write:   # Write Tag: type INT, one element, the value
        return bytes([0x4D, len(path) // 2]) + path + struct.pack("<HHh", 0xC3, 1, 7)
    return bytes([0x4C, len(path) // 2]) + path + struct.pack("<H", 1)


def _msp(messages: list[bytes]) -> bytes:
    """A Multiple Service Packet to the Message Router carrying `messages`."""
    offsets, at = [], 2 + 2 * len(messages)
    for m in messages:
        offsets.append(at)
        at += len(m)
    return bytes([0x0A, 2, 0x20, 0x02, 0x24, 0x01]) + struct.pack("<H", len(messages)) \
        + b"".join(struct.pack("<H", o) for o in offsets) + b"".join(messages)


def _msp_reply(n: int, service: int = 0xCC) -> bytes:
    """Its reply: n successful inner replies of `service` (Read Tag's carry a type word)."""
    offsets = [2 + 2 * n + 6 * k for k in range(n)]
    return bytes([0x8A, 0, 0, 0]) + struct.pack("<H", n) + b"".join(struct.pack("<H", o) for o in offsets) \
        + b"".join(bytes([service, 0, 0, 0]) + struct.pack("<H", 0xC3) for _ in range(n))


def test_pipelined_cip_polls_are_replayed(tmp_path):
    """A scanner that sends several SendUnitData PDUs in one segment (Multiple Service Packets
    of tag reads, as Logix HMIs poll) and a PLC that answers them in one: such segments are
    routine, keyed on every PDU; a tag write among the reads makes a key of its own, and the
    result is still the reference's."""
    from support.packets import pcap_bytes, tcp_conversation

    exchanges, seq = [], 0
    for k in range(800):
        tags = [b"Motor_Speed", b"Line_Count", b"Tank_Level"] if k % 2 else [b"Valve_%d" % v for v in range(6)]
        batch = [_msp([_read_tag(t) for t in tags]), _msp([_read_tag(b"Alarm_Word")]),
                 _msp([_read_tag(b"Setpoint", write=(k % 97 == 5))])]
        exchanges.append((True, b"".join(_send_unit_data(0x1234, seq + i, m) for i, m in enumerate(batch))))
        replies = [_msp_reply(len(tags)), _msp_reply(1), _msp_reply(1, 0xCD if k % 97 == 5 else 0xCC)]
        exchanges.append((False, b"".join(_send_unit_data(0x1234, seq + i, r) for i, r in enumerate(replies))))
        seq += len(batch)
    path = tmp_path / "pipelined_cip.pcap"
    path.write_bytes(pcap_bytes(tcp_conversation("10.0.0.1", "10.0.0.2", 44818, exchanges)))
    got = analyze([path])
    assert_equivalent(analyze_reference([path]), got)
    assert got.counters["routine_packets"] > 1400 and got.counters["deep_packets"] < 120, got.counters
    ops = collections.Counter(o.data.get("name") for o in got.observations if o.kind == "operation")
    assert {"Read Tag", "Write Tag"} <= set(ops), ops


POLL_TOOL = SHARED_DATA.parent / "tools" / "poll_scale.py"


@pytest.mark.skipif(not POLL_TOOL.exists(), reason=f"shared tools not found: {POLL_TOOL}")
def test_real_polling_capture_equals_reference(tmp_path):
    """The corpus' 57 real polling conversations (tools/poll_scale.py: Modbus, S7comm, CIP with
    pipelined Multiple Service Packets, BACnet, IEC 104), 30 s of each: the compiled routine
    recognisers replay most of it, and the result is the reference decoder's."""
    import sys
    out = tmp_path / "poll.pcap"
    subprocess.run([sys.executable, str(POLL_TOOL), "--seconds", "30", "--cells", "1", str(out)],
                   check=True, capture_output=True)
    got = analyze([out])
    assert_equivalent(analyze_reference([out]), got)
    total = sum(c.packets for c in got.captures)
    assert got.counters["routine_packets"] > 0.75 * total, (total, got.counters)
    assert got.counters["deep_packets"] < 0.05 * total, (total, got.counters)
