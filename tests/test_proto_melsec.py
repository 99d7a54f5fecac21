"""SLMP / MC protocol decoder. No shared capture holds SLMP (the ITI "MELSEC" captures are
MELSOFT, see test_proto_melsoft.py) and tshark 4.0 has no SLMP dissector, so the oracle is the
published SLMP frame layout: the manual's own example frames byte for byte, and frames built
from the layout, which must all parse with agreeing lengths and pair request with response."""
from __future__ import annotations

import json

import pytest
from conftest import shared_path
from support.decode import frames, of_kind, packet, stream

from plantguard.capture.engine import analyze
from plantguard.knowledge.csaf import read_csaf
from plantguard.knowledge.matching import DeviceIdentity, IntelIndex
from plantguard.model import OP_CATEGORIES
from plantguard.protocols import melsec, melsoft, registry
from plantguard.protocols.melsec import frame as sframe

# the reference manual's batch read example: D100, 10 words, 3E binary, and its ASCII form
MANUAL_READ = bytes.fromhex("500000FFFF03000C00100001040000640000A80A00")
MANUAL_READ_ASCII = b"500000FF03FF000018001004010000D*0001000002"


def req(command: int, sub: int = 0, data: bytes = b"", serial: int | None = None, pc: int = 0xFF,
        io: int = 0x03FF) -> bytes:
    body = (0x10).to_bytes(2, "little") + command.to_bytes(2, "little") + sub.to_bytes(2, "little") + data
    route = bytes([0, pc]) + io.to_bytes(2, "little") + b"\x00" + len(body).to_bytes(2, "little")
    head = b"\x50\x00" if serial is None else b"\x54\x00" + serial.to_bytes(2, "little") + b"\x00\x00"
    return head + route + body


def resp(end: int = 0, data: bytes = b"", serial: int | None = None) -> bytes:
    body = end.to_bytes(2, "little") + data
    route = b"\x00\xff\xff\x03\x00" + len(body).to_bytes(2, "little")
    head = b"\xd0\x00" if serial is None else b"\xd4\x00" + serial.to_bytes(2, "little") + b"\x00\x00"
    return head + route + body


def error_info(command: int, sub: int = 0) -> bytes:
    return b"\x00\xff\xff\x03\x00" + command.to_bytes(2, "little") + sub.to_bytes(2, "little")


def model_reply(name: str, code: int) -> bytes:
    return name.ljust(16).encode("ascii") + code.to_bytes(2, "little")


def test_manual_example_frames():
    f = sframe.parse(MANUAL_READ)
    assert (f.response, f.four_e, f.network, f.pc, f.io, f.station, f.length, f.command, f.subcommand) == \
        (False, False, 0, 0xFF, 0x03FF, 0, 12, 0x0401, 0x0000)
    assert sframe.frame_len(MANUAL_READ, 0) == len(MANUAL_READ) == 21
    assert melsec.describe(f) == ("Device Read (batch)", "read", "D100 x10 words, subcommand 0x0000")
    a = sframe.parse_ascii(MANUAL_READ_ASCII)
    assert (a.command, a.subcommand, a.length, a.io, a.ascii) == (0x0401, 0x0000, 0x18, 0x03FF, True)
    assert melsec.signature(MANUAL_READ) and melsec.signature(MANUAL_READ_ASCII)


CASES = [
    # (request, response, expected operation (name, category, detail start), kinds of the response)
    (req(0x0401, 0x0001, (0).to_bytes(3, "little") + b"\x90" + (16).to_bytes(2, "little")), resp(0, b"\x11\x00"),
     ("Device Read (batch)", "read", "M0 x16 bits"), []),
    (req(0x0401, 0x0002, (0x1A0).to_bytes(4, "little") + (0x9C).to_bytes(2, "little") + b"\x04\x00"),
     resp(0, bytes(8)), ("Device Read (batch)", "read", "X1A0 x4 words"), []),
    (req(0x0403, 0, b"\x02\x00" + (100).to_bytes(3, "little") + b"\xa8" + (5).to_bytes(3, "little") + b"\xb4"),
     resp(0, bytes(4)), ("Device Read Random", "read", "2 words, 0 double words, first D100"), []),
    (req(0x1401, 0, (200).to_bytes(3, "little") + b"\xaf" + b"\x03\x00" + bytes(6)), resp(0),
     ("Device Write (batch)", "write", "R200 x3 words"), []),
    (req(0x1402, 0x0001, b"\x01" + (7).to_bytes(3, "little") + b"\x9d" + b"\x01"), resp(0),
     ("Device Write Random", "write", "1 bits from Y7"), []),
    (req(0x1002, 0, b"\x01\x00"), resp(0), ("Remote STOP", "control", "mode STOP"), []),
    (req(0x1001, 0, b"\x01\x00\x00\x00"), resp(0xC059, error_info(0x1001)), ("Remote RUN", "control", "mode RUN"),
     ["error"]),
    (req(0x1006, 0, b"\x01\x00"), resp(0), ("Remote RESET", "control", "mode RESET"), []),
    (req(0x1829, 0, bytes(16)), resp(0), ("Write File", "program", "subcommand"), []),
    (req(0x1822, 0, bytes(8)), resp(0), ("Delete File", "program", "subcommand"), []),
    (req(0x1810, 0, bytes(8)), resp(0, bytes(4)), ("Read Directory/File", "read", "subcommand"), []),
    (req(0x0101), resp(0, model_reply("Q03UDECPU", 0x0268)), ("Read CPU Model Name", "diagnostic", "subcommand"),
     ["identity"]),
    (req(0x1630, 0, b"\x04\x00" + b"abcd"), resp(0xC200, error_info(0x1630)),
     ("Remote Password Unlock", "auth", "remote password"), ["credential", "error"]),
]


@pytest.mark.parametrize("four_e", [False, True])
def test_built_pairs_parse_and_match(four_e):
    """Every built request and response parses with a length that ends at its frame's end, the
    operation is the command's, and each response pairs with its request (4E by serial)."""
    chunks = []
    for i, (rq, rs, _op, _kinds) in enumerate(CASES):
        if four_e:
            rq = rq[:2] + i.to_bytes(2, "little") + b"\x00\x00" + rq[2:]
            rq = b"\x54" + rq[1:]
            rs = b"\xd4" + rs[1:2] + i.to_bytes(2, "little") + b"\x00\x00" + rs[2:]
        for b in (rq, rs):
            assert sframe.frame_len(b, 0) == len(b) and sframe.plausible(b) and melsec.signature(b)
        chunks += [(True, rq), (False, rs)]
    state: dict = {}
    out = stream(chunks, melsec, dport=5000, state=state)
    ops = [(o.data["name"], o.data["category"], o.data["detail"]) for o in of_kind(out, "operation")]
    assert len(ops) == len(CASES)
    for (name, cat, detail), (_rq, _rs, (want_name, want_cat, want_detail), _k) in zip(ops, CASES):
        assert (name, cat) == (want_name, want_cat) and detail.startswith(want_detail), detail
        assert cat in OP_CATEGORIES
        assert ("4E serial" in detail) == four_e
    ident = of_kind(out, "identity")
    assert [(o.data["vendor"], o.data["model"], o.data["product_code"], o.src) for o in ident] == \
        [("Mitsubishi Electric", "Q03UDECPU", 0x0268, "10.0.0.2")]
    errors = [(o.data["code"], o.data["function"], o.data["function_name"]) for o in of_kind(out, "error")]
    assert errors == [(0xC059, 0x1001, "Remote RUN"), (0xC200, 0x1630, "Remote Password Unlock")]
    cred = of_kind(out, "credential")
    assert [(c.data["password"], c.data["cleartext"], c.data["result"], c.src, c.dst) for c in cred] == \
        [("abcd", True, "failure", "10.0.0.1", "10.0.0.2")]
    assert not state.get("pending")


def test_ascii_frames_decode_header_and_command():
    out = melsec.decode(packet(MANUAL_READ_ASCII, l4="udp", dport=5000))
    op = of_kind(out, "operation")[0]
    assert (op.data["code"], op.data["category"]) == (0x0401, "read")
    assert "ASCII-coded" in op.data["detail"]
    err = melsec.decode(packet(b"D00000FF03FF000016C059" + b"00FF03FF00" + b"04010000", l4="udp", sport=5000,
                               dport=40000, from_client=False))
    assert [(o.data["code"], o.subject) for o in of_kind(err, "error")] == [(0xC059, "src")]


def test_segments_reassembled_and_several_frames_per_segment():
    a, b = req(0x1401, 0, (100).to_bytes(3, "little") + b"\xa8\x01\x00\x05\x00"), req(0x1002, 0, b"\x01\x00")
    out = stream([(True, a[:7]), (True, a[7:] + b)], melsec, dport=5000)
    assert [o.data["name"] for o in of_kind(out, "operation")] == ["Device Write (batch)", "Remote STOP"]


def test_signature_ports_and_negatives():
    assert registry.classify("tcp", 40000, 5000, MANUAL_READ) is melsec
    assert registry.classify("tcp", 40000, 7777, MANUAL_READ) is melsec            # any port, strictly
    odd = req(0x0401, 0, MANUAL_READ[15:], pc=0x00, io=0x0000)
    assert melsec.signature(odd) and registry.classify("tcp", 40000, 7777, odd) is not melsec
    assert not melsec.signature(MANUAL_READ[:-1])                                   # length disagrees
    assert not melsec.signature(req(0x7777))                                        # no such command
    assert not melsec.signature(b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x01")  # Modbus
    assert not melsec.signature(b"5000 hello")


def test_melsoft_captures_are_not_slmp():
    """The shared MELSEC captures hold MELSOFT only: not one of their payloads is SLMP, and no
    SLMP frame is MELSOFT."""
    n = 0
    for rel in ("pcaps/ICS-Security-Tools/MELSEC/melsoft_UDP_clean_2.pcap",
                "pcaps/ICS-Security-Tools/MELSEC/melsoft_129_clean.pcap",
                "pcaps/blackhat23-melsoft/legitimate_user_addition_plc_stop_test.pcapng"):
        for _f, _t, lay in frames(shared_path(rel)):
            if lay.payload and lay.l4 in ("tcp", "udp"):
                assert not melsec.signature(lay.payload)
                n += 1
    assert n > 2000
    for rq, rs, *_ in CASES:
        assert not melsoft.signature(rq) and not melsoft.signature(rs)


def test_identity_meets_mitsubishi_advisories():
    """A Q03UDECPU and an R04CPU named by Read CPU Model Name meet their families' advisories."""
    idx = IntelIndex()
    for path in sorted(shared_path("vuln/csaf").glob("*/*.json")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "Mitsubishi" in text:
            doc = read_csaf(json.loads(text))
            for p in doc.products:
                idx.add_product(doc.id, p.product_id, p.vendor, p.product_name, p.full_name, p.version_text,
                                p.version_kind, p.model_numbers, p.cpe)

    def advisories(ident):
        dev = DeviceIdentity.from_identity(ident)
        return {p.advisory_id.lower() for p in idx.candidates(dev) if idx.match_product(dev, p) is not None}

    out = stream([(True, req(0x0101)), (False, resp(0, model_reply("Q03UDECPU", 0x0268)))], melsec, dport=5000)
    ident = of_kind(out, "identity")[0].data
    assert "icsa-22-172-01" in advisories(ident)        # MELSEC Q Series Q03UDECPU
    assert "icsa-20-317-01" in advisories({"vendor": "Mitsubishi Electric", "model": "R04CPU"})  # MELSEC iQ-R


def _obs_key(o) -> tuple:
    return o.kind, o.proto, o.src, o.dst, o.frame, o.count, tuple(sorted(map(str, o.data.items())))


def test_polling_is_replayed_and_equals_the_reference(tmp_path):
    """Batch-read polling over UDP 5000 (4E) and TCP 5002 (3E), with a model name read, a
    refused read and a Remote STOP among the polls: the engine replays the polls and says exactly
    what the reference decoder says (the model name reply is decoded, not replayed)."""
    from support.packets import pcap_bytes, tcp_conversation, udp_frame

    from plantguard.capture.reference import analyze_reference
    read = (100).to_bytes(3, "little") + b"\xa8\x0a\x00"
    pcap, t = [], 1.7e9
    for i in range(300):
        rq, rs = req(0x0401, 0, read, serial=i), resp(0xC056 if i == 120 else 0, bytes(20), serial=i)
        if i == 200:
            rq, rs = req(0x0101, serial=i), resp(0, model_reply("R04CPU", 0x4800), serial=i)
        pcap.append((t + i * 0.02, udp_frame("10.0.0.1", "10.0.0.2", 50000, 5000, rq)))
        pcap.append((t + i * 0.02 + 0.01, udp_frame("10.0.0.2", "10.0.0.1", 5000, 50000, rs,
                                                     smac="02:00:00:00:00:02", dmac="02:00:00:00:00:01")))
    exchanges = []
    for i in range(300):
        exchanges += [(True, req(0x0401, 0, read)), (False, resp(0, bytes(20)))]
        if i == 150:
            exchanges += [(True, req(0x1002, 0, b"\x01\x00")), (False, resp(0))]
        if i == 250:
            exchanges += [(True, req(0x0101)), (False, resp(0, model_reply("Q03UDECPU", 0x0268)))]
    pcap += tcp_conversation("10.0.0.3", "10.0.0.2", 5002, exchanges, t0=t + 10)
    path = tmp_path / "slmp_poll.pcap"
    path.write_bytes(pcap_bytes(pcap))
    got, ref = analyze([path]), analyze_reference([path])
    assert got.counters["routine_packets"] > 850
    assert sorted(map(_obs_key, got.observations)) == sorted(map(_obs_key, ref.observations))
    models = {o.data["model"] for o in got.observations if o.kind == "identity"}
    assert models == {"R04CPU", "Q03UDECPU"}
    assert [(o.data["code"], o.data["function"]) for o in got.observations if o.kind == "error"] == [(0xC056, None)]
