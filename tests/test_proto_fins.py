"""Omron FINS decoder against the icsnpp-omron-fins analyzer baselines (omron_fins_general,
detail, error and file logs, headerless after zeek-cut: their columns come from the package's
README) on its two captures, and against tshark's `omron` dissector on omron_test.pcap."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from conftest import shared_path
from support.baselines import Score, zeek_log
from support.decode import deep_observations, frames, of_kind, packet, replay, stream
from support.peers import tshark_fields

from plantguard.capture.engine import analyze
from plantguard.knowledge.csaf import read_csaf
from plantguard.knowledge.matching import DeviceIdentity, IntelIndex
from plantguard.model import OP_CATEGORIES
from plantguard.protocols import fins, registry
from plantguard.protocols.fins import frame as fins_frame
from plantguard.protocols.fins.commands import end_code

BASE = "baselines/icsnpp-omron-fins"
TRACES = "pcaps/icsnpp-omron-fins/testing/traces"
CASES = {"tests.omron_fins": "omron.pcap", "tests.omron_fins_tcp": "omron_fins_tcp_commands_responses.pcap"}
TSHARK_PCAP = "pcaps/ICS-Security-Tools/omron/omron_test.pcap"
# ICSNPP logs the program area commands three below their wire code (0x0304 Program Area Protect
# as 0x0301, ... 0x0308 Program Area Clear as 0x0305); tshark and the frames agree with us
ICSNPP_PROGRAM_CODES = {0x0301 + i: 0x0304 + i for i in range(5)}


def _columns(log: str) -> list[str]:
    """A log's columns from the README's "Fields Captured" table, as zeek-cut -n leaves them."""
    text = shared_path(f"{BASE}/README.md").read_text()
    section = text[text.index(f"({log}.log)"):]
    table = section[section.index("| ts "):]
    cols = []
    for line in table.splitlines():
        if not line.startswith("|"):
            break
        name = line.split("|")[1].strip()
        if name == "id":
            cols += ["id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"]
        elif name not in ("uid", "omron_fins_link_id", "fuid") and not set(name) <= {"-"}:
            cols.append(name)
    return cols


def _log(case: str, log: str) -> list[dict]:
    return zeek_log(shared_path(f"{BASE}/testing/Baseline/{case}/{log}.log"), _columns(log))


def _hex(field: str) -> int | None:
    m = re.search(r"\(0x([0-9a-fA-F]+)\)$", field)
    return int(m.group(1), 16) if m else None


def _frames(case: str) -> list[tuple]:
    """(layers-level frame, Frame, FINS/TCP parts or None) for every FINS frame the decoder parses."""
    _obs, seen = replay(shared_path(f"{TRACES}/{CASES[case]}"), fins, tap="_observe")
    return seen


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_frame_matches_general_log(case):
    rows = _log(case, "omron_fins_general")
    ours = _frames(case)
    assert len(ours) == len(rows)
    score = Score()
    for (frame, from_client, src, sport, dst, dport, f), r in zip(ours, rows):
        where = f"frame {frame}"
        conn = (src, sport, dst, dport) if from_client else (dst, dport, src, sport)
        score.check(f"{where} endpoints", conn,
                    (r["id.orig_h"], int(r["id.orig_p"]), r["id.resp_h"], int(r["id.resp_p"])))
        score.check(f"{where} gateway", int(bool(f.icf & 0x80)), int(r["icf_gateway"][-2]))
        score.check(f"{where} data type", int(f.response), int(r["icf_data_type"][-2]))
        score.check(f"{where} response setting", f.icf & 1, int(r["icf_response_setting"][-2]))
        for ours_v, col in ((f.gct, "gateway_count"), (f"0x{f.dna:02x}", "destination_network_address"),
                            (f"0x{f.da1:02x}", "destination_node_number"),
                            (f"0x{f.da2:02x}", "destination_unit_address"),
                            (f"0x{f.sna:02x}", "source_network_address"), (f"0x{f.sa1:02x}", "source_node_number"),
                            (f"0x{f.sa2:02x}", "source_unit_address"), (f"0x{f.sid:02x}", "service_id")):
            score.check(f"{where} {col}", str(ours_v), r[col])
        theirs = _hex(r["command_code"])
        score.check(f"{where} command", f.code, ICSNPP_PROGRAM_CODES.get(theirs, theirs))
        if f.response and r["response_code"] != "(empty)":
            score.check(f"{where} end code", end_code(f.mres, f.sres), _hex(r["response_code"]))
    score.assert_agrees(at_least=10 * len(rows))


def test_fins_tcp_framing_matches_general_log():
    rows = _log("tests.omron_fins_tcp", "omron_fins_general")
    path = shared_path(f"{TRACES}/omron_fins_tcp_commands_responses.pcap")
    _obs, seen = replay(path, fins, tap="_observe_tcp")
    assert len(seen) == len(rows)
    score = Score()
    for (frame, *_rest, pdu), r in zip(seen, rows):
        command, error, body = fins_frame.tcp_parts(pdu)
        score.check(f"frame {frame} magic", f"0x{pdu[:4].hex()}", r["tcp_header"])
        score.check(f"frame {frame} length", len(pdu) - 8, int(r["tcp_length"]))
        score.check(f"frame {frame} command", fins.TCP_COMMANDS.get(command) if command != 2 else "Frame Send",
                    r["tcp_command"])
        score.check(f"frame {frame} error", "Normal" if error == 0 else str(error), r["tcp_error_code"])
    score.assert_agrees(at_least=4 * len(rows))


@pytest.mark.parametrize("case", sorted(CASES))
def test_operations_and_errors_match_the_logs(case):
    """Every command is an operation of its code; every response the peer gives an end code
    other than normal completion is an error of that code."""
    obs = [o for o in deep_observations(shared_path(f"{TRACES}/{CASES[case]}")) if o.proto == "fins"]
    rows = _log(case, "omron_fins_general")
    want_ops = Counter(ICSNPP_PROGRAM_CODES.get(_hex(r["command_code"]), _hex(r["command_code"]))
                       for r in rows if r["icf_data_type"].startswith("Command"))
    got_ops = Counter(o.data["code"] for o in of_kind(obs, "operation"))
    assert got_ops == want_ops
    failed = [r["response_code"] for r in rows if r["icf_data_type"].startswith("Response")
              and r["response_code"] != "(empty)" and not r["response_code"].startswith("Normal completion")]
    got_err = Counter(o.data["code"] for o in of_kind(obs, "error"))
    assert sum(got_err.values()) == len(failed)
    # the peer's name of 0x0203 holds a tab, which cuts its column short of the code
    want_err = Counter(_hex(c) for c in failed if _hex(c) is not None)
    assert not want_err - got_err
    for o in of_kind(obs, "operation"):
        assert o.data["category"] in OP_CATEGORIES
        assert o.data["name"] == fins.COMMANDS[o.data["code"]][0]


def test_identity_matches_detail_log():
    score = Score()
    for case, pcap in CASES.items():
        want = [(r["controller_model"], r["controller_version"]) for r in _log(case, "omron_fins_detail")
                if r["controller_model"] not in ("-", "(empty)")]
        obs = deep_observations(shared_path(f"{TRACES}/{pcap}"))
        got = [(o.data["model"], o.data.get("firmware")) for o in of_kind(obs, "identity", "fins")]
        score.check(f"{case} identity count", len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            score.check(f"{case} identity {i}", g, w)
    score.assert_agrees(at_least=5)


def test_file_names_match_file_log():
    """The file memory commands the peer logs (one row per file named), with each file name
    and volume label in our operation's detail."""
    rows = [r for r in _log("tests.omron_fins", "omron_fins_file") if r["icf_data_type"].startswith("Command")]
    obs = deep_observations(shared_path(f"{TRACES}/omron.pcap"))
    ops = [o for o in of_kind(obs, "operation", "fins") if 0x2200 <= o.data["code"] < 0x2300]
    assert {o.data["code"] for o in ops} == {_hex(r["command_code"]) for r in rows}
    score = Score()
    for r in rows:
        code = _hex(r["command_code"])
        details = " | ".join(o.data["detail"] for o in ops if o.data["code"] == code)
        for col in ("volume_label", "file_name", "src_file_name", "dst_file_name", "old_file_name", "new_file_name"):
            if r[col] not in ("-", "(empty)"):
                score.check(f"0x{code:04X} {col} {r[col]}", r[col] in details, True)
    assert all(o.data["category"] == ("program" if o.data["code"] == 0x220C else "file") for o in ops)
    score.assert_agrees(at_least=10)


def test_omron_test_pcap_matches_tshark():
    path = shared_path(TSHARK_PCAP)
    fields = ["omron.tcp.command", "omron.icf", "omron.dna", "omron.da1", "omron.sa1", "omron.sid",
              "omron.command", "omron.response.code", "omron.controller.model", "omron.controller.version"]
    rows = {r["frame"]: r for r in tshark_fields(path, "omron", fields)}
    obs = deep_observations(path)
    _o, seen = replay(path, fins, tap="_observe")
    score = Score()
    assert {s[0] for s in seen} <= set(rows)
    for frame, *_rest, f in seen:
        r = rows[frame]
        score.check(f"{frame} icf", f.icf, int(r["omron.icf"][0], 16))
        for attr in ("dna", "da1", "sa1", "sid"):
            score.check(f"{frame} {attr}", getattr(f, attr), int(r[f"omron.{attr}"][0], 0))
        score.check(f"{frame} command", f.code, int(r["omron.command"][0], 16))
        if f.response:
            score.check(f"{frame} end code", f.mres << 8 | f.sres, int(r["omron.response.code"][0], 16))
    for o in of_kind(obs, "identity", "fins"):
        r = rows[o.frame]
        score.check(f"{o.frame} model", o.data["model"], r["omron.controller.model"][0].strip())
        score.check(f"{o.frame} version", o.data["firmware"], r["omron.controller.version"][0].strip())
    tcp_frames = [r for r in rows.values() if r["omron.tcp.command"]]
    score.check("FINS/TCP frames", len(tcp_frames), 4)
    score.assert_agrees(minimum=1.0, at_least=20)


def _omron_index() -> IntelIndex:
    """The products of the shared CSAF advisories that name Omron, indexed as assess indexes them."""
    idx = IntelIndex()
    for path in sorted(shared_path("vuln/csaf").glob("*/*.json")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "Omron" not in text:
            continue
        doc = read_csaf(json.loads(text))
        for p in doc.products:
            idx.add_product(doc.id, p.product_id, p.vendor, p.product_name, p.full_name, p.version_text,
                            p.version_kind, p.model_numbers, p.cpe)
    return idx


def _advisories(idx: IntelIndex, ident: dict) -> set[str]:
    dev = DeviceIdentity.from_identity(ident)
    return {p.advisory_id.lower() for p in idx.candidates(dev) if idx.match_product(dev, p) is not None}


def test_identity_meets_omron_advisories():
    """The CP1L that Controller Data Read identifies meets the SYSMAC CP1L advisory (version 01.00
    inside '< 1.10'); CJ2M and NJ501 models meet their families' advisories; a Siemens CPU none."""
    idx = _omron_index()
    obs = deep_observations(shared_path(TSHARK_PCAP))
    ident = of_kind(obs, "identity", "fins")[0].data
    assert "icsa-22-179-02" in _advisories(idx, ident)
    assert "icsa-22-179-02" not in _advisories(idx, dict(ident, firmware="1.10"))
    assert {"icsa-23-108-01", "icsa-19-346-02"} <= _advisories(idx, {"vendor": "OMRON", "model": "CJ2M-CPU31",
                                                                     "firmware": "2.0"})
    assert "icsa-22-314-08" in _advisories(idx, {"vendor": "OMRON", "model": "NJ501-1500", "firmware": "1.21"})
    assert not _advisories(idx, {"vendor": "Siemens", "model": "CPU 315-2 PN/DP", "firmware": "3.2"})


def test_signature_strict_on_other_ports():
    path = shared_path(TSHARK_PCAP)
    payloads = [lay.payload for _f, _t, lay in frames(path) if lay.payload]
    tcp = [p for p in payloads if p[:4] == b"FINS"]
    udp = [p for p in payloads if p[:4] != b"FINS"]
    assert tcp and udp
    for p in tcp:
        assert registry.classify("tcp", 40000, 5555, p) is fins
    for p in udp:   # bare FINS: on 9600 only
        assert registry.classify("udp", 40000, 9600, p) is fins
        assert registry.classify("udp", 40000, 5555, p) is not fins
    # Modbus and S7 payloads are not FINS on 9600
    assert not fins.signature(b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x01")
    assert not fins.signature(bytes.fromhex("0300001611e00000000100c1020100c2020102c0010a"))


def test_program_write_across_segments_stop_and_refused_write():
    """Built by hand per the FINS frame layout: a Program Area Write split across two FINS/TCP
    segments is reassembled and is a program operation; Stop is control."""
    head = bytes([0x80, 0, 2, 0, 1, 0, 0, 0xEF, 0, 7])
    write = head + bytes([0x03, 0x07]) + b"\x00\x00" + (0x100).to_bytes(4, "big") + b"\x00\x04" + b"\xAA" * 4
    framed = b"FINS" + (8 + len(write)).to_bytes(4, "big") + (2).to_bytes(4, "big") + bytes(4) + write
    stop = head + bytes([0x04, 0x02])
    framed_stop = b"FINS" + (8 + len(stop)).to_bytes(4, "big") + (2).to_bytes(4, "big") + bytes(4) + stop
    out = stream([(True, framed[:20]), (True, framed[20:] + framed_stop)], fins, dport=9600)
    ops = [(o.data["name"], o.data["category"]) for o in of_kind(out, "operation")]
    assert ops == [("Program Area Write", "program"), ("Stop", "control")]
    # a Memory Area Write refused in RUN mode (end code 0x2206) is an error of the PLC
    resp = bytes([0xC0]) + head[1:] + b"\x01\x02\x22\x06"
    err = [o for o in fins.decode(packet(resp, l4="udp", sport=9600, dport=40000, from_client=False))
           if o.kind == "error"]
    assert [(o.data["code"], o.data["function"], o.subject) for o in err] == [(0x2206, 0x0102, "src")]


def _poll(sid: int, response: bool, end: bytes = b"\x00\x00") -> bytes:
    """A Memory Area Read of DM 100, 2 words, per the FINS frame layout (or its response)."""
    icf = 0xC0 if response else 0x80
    head = bytes([icf, 0, 2, 0, 0xEF if response else 1, 0, 0, 1 if response else 0xEF, 0, sid & 0xFF])
    return head + b"\x01\x01" + (end + b"\x12\x34\x56\x78" if response else b"\x82\x00\x64\x00\x00\x02")


def _framed(fins_bytes: bytes) -> bytes:
    return b"FINS" + (8 + len(fins_bytes)).to_bytes(4, "big") + b"\x00\x00\x00\x02" + bytes(4) + fins_bytes


def _obs_key(o) -> tuple:
    return o.kind, o.proto, o.src, o.dst, o.frame, o.count, tuple(sorted(map(str, o.data.items())))


def test_polling_is_replayed_and_equals_the_reference(tmp_path):
    """Memory Area Read polling over UDP and FINS/TCP, with a refused read and a Stop among the
    polls: the engine replays the polls and says exactly what the reference decoder says."""
    from plantguard.capture.reference import analyze_reference
    from support.packets import pcap_bytes, tcp_conversation, udp_frame
    frames, t = [], 1.7e9
    for i in range(300):
        end = b"\x22\x06" if i == 150 else b"\x00\x00"
        frames.append((t + i * 0.02, udp_frame("10.0.0.1", "10.0.0.2", 50000, 9600, _poll(i, False))))
        frames.append((t + i * 0.02 + 0.01, udp_frame("10.0.0.2", "10.0.0.1", 9600, 50000, _poll(i, True, end),
                                                      smac="02:00:00:00:00:02", dmac="02:00:00:00:00:01")))
    exchanges = []
    for i in range(300):
        exchanges += [(True, _framed(_poll(i, False))), (False, _framed(_poll(i, True)))]
        if i == 200:
            exchanges.append((True, _framed(_poll(i, False)[:10] + b"\x04\x02")))
    frames += tcp_conversation("10.0.0.3", "10.0.0.2", 9600, exchanges, t0=t + 10)
    path = tmp_path / "fins_poll.pcap"
    path.write_bytes(pcap_bytes(frames))
    got, ref = analyze([path]), analyze_reference([path])
    assert got.counters["routine_packets"] > 900
    assert sorted(map(_obs_key, got.observations)) == sorted(map(_obs_key, ref.observations))
    ops = {(o.data["name"], o.data["category"]) for o in got.observations if o.kind == "operation"}
    assert ops == {("Memory Area Read", "read"), ("Stop", "control")}
    errors = [o for o in got.observations if o.kind == "error"]
    assert [(o.data["code"], o.src) for o in errors] == [(0x2206, "10.0.0.2")]
