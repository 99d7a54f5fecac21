"""HART-IP decoder against the icsnpp-hart-ip analyzer baselines (hart_ip_general,
direct_pdu_command and universal_commands logs, headerless after zeek-cut: their columns are the
package's scripts/hart_ip*_types.zeek records, listed below) on its three traces and the
suite's hart-ip.pcap (ICS-Security-Tools/hart/hart_ip.pcap), and against tshark's `hart_ip`
dissector field by field."""
from __future__ import annotations

import re
from collections import Counter

import pytest
from conftest import shared_path
from support.baselines import Score, zeek_bytes, zeek_log
from support.decode import deep_observations, frames, of_kind, packet, replay, stream
from support.peers import tshark_fields

from plantguard.capture.engine import analyze
from plantguard.model import OP_CATEGORIES
from plantguard.protocols import hart_ip, registry
from plantguard.protocols.hart_ip import frame as hf
from plantguard.protocols.hart_ip.commands import COMMANDS

BASE = "baselines/icsnpp-hart-ip/testing/baseline"
TRACES = "pcaps/icsnpp-hart-ip/testing/traces"
SUITE_PCAP = "pcaps/ICS-Security-Tools/hart/hart_ip.pcap"
CASES = {"tests.all_message_ids": f"{TRACES}/hart-ip_all_messageIDs.pcapng",
         "tests.all_types_and_commands_sent": f"{TRACES}/hart-ip_all_types_and_commands_sent.pcapng",
         "tests.publish_and_keepAlive_messages": f"{TRACES}/hart-ip_publish_and_keepAlive.pcapng",
         "tests.hart_ip": SUITE_PCAP}
_CONN = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto"]
# hart_ip_general.log after `zeek-cut -n` of the three link ids (HART_IP::general_log)
GENERAL = _CONN + [
    "message_packet_bytes", "header_version", "header_message_type_reserved", "header_message_type_message_type",
    "header_message_id", "header_status_code", "header_sequence_number", "header_length",
    "session_initiate_master_type", "session_initiate_inactivity_close_timer",
    "token_passing_pdu_delimiter_address_type", "token_passing_pdu_delimiter_expansion_bytes",
    "token_passing_pdu_delimiter_physical_layer_type", "token_passing_pdu_delimiter_frame_type",
    "token_passing_pdu_address_v4", "token_passing_pdu_address_v6", "token_passing_pdu_command_number",
    "token_passing_pdu_byte_count", "token_passing_pdu_check_byte", "token_passing_pdu_contents_data_data",
    "token_passing_pdu_contents_response_response_code"] + [f"status_{i}" for i in range(8)] \
    + [f"direct_status_{i}" for i in range(8)] + [f"direct_ext_{i}" for i in range(7)] \
    + ["read_audit_log_start_record", "read_audit_log_number_of_records"] + [f"audit_{i}" for i in range(7)]
# hart_ip_direct_pdu_command.log after `zeek-cut -n` of its two link ids
DIRECT = _CONN + ["data", "command_number", "byte_count", "response_code"]
# hart_ip_universal_commands.log (271 columns): positions of the fields compared
U_WIDTH = 271
U_IDENTIFY = {0: 7, 11: 139, 21: 196}   # where each identify command's reply block starts
U_TAG, U_DESCRIPTOR, U_DATE, U_LONG_TAG = 170, 171, 172, 194
FRAME_TYPES = {"STX Master to Field": hf.FRAME_STX, "Acknowledgement Field to Master": hf.FRAME_ACK,
               "Burst Frame": hf.FRAME_BACK}


def _log(case: str, name: str, columns: list[str] | None) -> list:
    path = shared_path(f"{BASE}/{case}/{name}.log")
    if columns is None:
        return [line.split("\t") for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]]
    return zeek_log(path, columns)


def _messages(case: str) -> list[tuple]:
    _obs, seen = replay(shared_path(CASES[case]), hart_ip, tap="_observe")
    return seen


def _command_names(case: str, rows: list[dict], seen: list[tuple]) -> dict[str, int]:
    """The peer's command names as numbers: 'unknown-0xNN' says its number; the others get the
    number tshark decodes in the same frame (an oracle apart from ours)."""
    path = shared_path(CASES[case])
    by_frame = {r["frame"]: r["hart_ip.pt.command"] for r in tshark_fields(path, "hart_ip.pt.command",
                                                                              ["hart_ip.pt.command"])}
    votes: dict[str, Counter] = {}
    for (frame, *_rest), r in zip(seen, rows):
        name = r["token_passing_pdu_command_number"]
        if name not in ("-", "") and len(by_frame.get(frame, ())) == 1:
            votes.setdefault(name, Counter())[int(by_frame[frame][0])] += 1
    return {name: c.most_common(1)[0][0] for name, c in votes.items()}


def _peer_number(names: dict[str, int], name: str) -> int | None:
    m = re.fullmatch(r"unknown-0x([0-9a-f]+)", name)
    return int(m.group(1), 16) if m else names.get(name)


def _opt(v: str) -> int | None:
    return None if v in ("-", "") else int(v)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_message_matches_general_log(case):
    rows = _log(case, "hart_ip_general", GENERAL)
    seen = _messages(case)
    assert len(seen) == len(rows)
    names = _command_names(case, rows, seen)
    score = Score()
    for (frame, from_client, src, sport, dst, dport, m), r in zip(seen, rows):
        w = f"frame {frame}"
        score.check(f"{w} endpoints", {(src, sport), (dst, dport)},
                    {(r["id.orig_h"], int(r["id.orig_p"])), (r["id.resp_h"], int(r["id.resp_p"]))})
        score.check(f"{w} version", m.version, int(r["header_version"]))
        score.check(f"{w} type", hf.MESSAGE_TYPES.get(m.msg_type), r["header_message_type_message_type"])
        score.check(f"{w} id", hf.MESSAGE_IDS.get(m.msg_id, "").replace("-", " ").lower(),
                    r["header_message_id"].lower())
        score.check(f"{w} status ok", m.status == 0, r["header_status_code"] == "Success")
        score.check(f"{w} sequence", m.sequence, int(r["header_sequence_number"]))
        score.check(f"{w} length", m.byte_count, int(r["header_length"]))
        if m.msg_id == hf.ID_SESSION_INITIATE and len(m.body) >= 5:
            s = hf.SESSION_INITIATE.unpack_from(m.body, 0)
            score.check(f"{w} master type", s.master_type, _opt(r["session_initiate_master_type"]))
            score.check(f"{w} timer", s.inactivity_timer, _opt(r["session_initiate_inactivity_close_timer"]))
        if m.msg_id == hf.ID_AUDIT and m.msg_type == hf.MSG_REQUEST:
            a = hf.AUDIT_REQUEST.unpack_from(m.body, 0)
            score.check(f"{w} audit start", a.start_record, _opt(r["read_audit_log_start_record"]))
            score.check(f"{w} audit records", a.records, _opt(r["read_audit_log_number_of_records"]))
        if m.msg_id != hf.ID_TOKEN_PASSING:
            continue
        p = hf.parse_token_passing(m.body)
        score.check(f"{w} address type", "Unique Address" if p.long_address else "Polling Address",
                    r["token_passing_pdu_delimiter_address_type"])
        score.check(f"{w} expansion", len(p.expansion), _opt(r["token_passing_pdu_delimiter_expansion_bytes"]))
        score.check(f"{w} physical layer", "Asynchronous" if not p.delimiter & 0x18 else "Synchronous",
                    r["token_passing_pdu_delimiter_physical_layer_type"])
        score.check(f"{w} frame type", p.frame_type, FRAME_TYPES.get(r["token_passing_pdu_delimiter_frame_type"]))
        if p.long_address:
            score.check(f"{w} long address", p.address, zeek_bytes(r["token_passing_pdu_address_v6"]))
        else:
            score.check(f"{w} short address", p.address[0], _opt(r["token_passing_pdu_address_v4"]))
        score.check(f"{w} command", p.wire_command, _peer_number(names, r["token_passing_pdu_command_number"]))
        score.check(f"{w} byte count", p.byte_count, _opt(r["token_passing_pdu_byte_count"]))
        score.check(f"{w} check byte", p.check, _opt(r["token_passing_pdu_check_byte"]))
        if p.reply:
            score.check(f"{w} response code", p.response_code,
                        _opt(r["token_passing_pdu_contents_response_response_code"]))
    score.assert_agrees(at_least=7 * len(rows))


def test_direct_pdu_commands_match_direct_log():
    """Each command of a direct PDU (16-bit number, byte count, response code in replies)."""
    score = Score()
    for case in ("tests.all_message_ids", "tests.all_types_and_commands_sent"):
        rows = _log(case, "hart_ip_direct_pdu_command", DIRECT)
        general = _log(case, "hart_ip_general", GENERAL)
        seen = _messages(case)
        names = _command_names(case, general, seen)
        ours = [(m.msg_type == hf.MSG_RESPONSE, c) for *_r, m in seen if m.msg_id == hf.ID_DIRECT
                for c in hf.parse_direct(m.body, m.msg_type == hf.MSG_RESPONSE)[2]]
        score.check(f"{case} commands", len(ours), len(rows))
        for i, ((reply, c), r) in enumerate(zip(ours, rows)):
            score.check(f"{case} {i} command", c.command, _peer_number(names, r["command_number"]))
            score.check(f"{case} {i} byte count", c.byte_count, int(r["byte_count"]))
            score.check(f"{case} {i} response code", c.response_code if reply else None, _opt(r["response_code"]))
    score.assert_agrees(at_least=200)


def _norm(s: str | None) -> str:
    return re.sub(r"[^0-9a-z]", "", (s or "").lower())


def _replies(case: str) -> list:
    _obs, seen = replay(shared_path(CASES[case]), hart_ip, tap="_reply")
    return [s[-1] for s in seen if s[-1].response_code == 0]


@pytest.mark.parametrize("case", ["tests.all_types_and_commands_sent", "tests.hart_ip",
                                  "tests.publish_and_keepAlive_messages"])
def test_identity_fields_match_universal_log(case):
    """Read Unique Identifier (0, 11, 21) revisions, device id, manufacturer and profile; Read
    Tag, Descriptor, Date (13, packed ASCII) and Read Long Tag (20) against the peer's rows."""
    rows = [r for r in _log(case, "hart_ip_universal_commands", None)]
    assert all(len(r) == U_WIDTH for r in rows)
    replies = _replies(case)
    score = Score()
    for cmd, at in U_IDENTIFY.items():
        want = [r[at:at + 30] for r in rows if r[at] == "254"]
        got = [hart_ip.identity_from_unique_identifier(p.data) for p in replies if p.command == cmd]
        score.check(f"cmd {cmd} replies", len(got), len(want))
        for i, (g, u) in enumerate(zip(got, want)):
            for key, col in (("hart_revision", 3), ("device_revision", 4), ("firmware", 5), ("hardware", 6),
                             ("device_id", 16)):
                score.check(f"cmd {cmd} #{i} {key}", str(g[key]), u[col])
            score.check(f"cmd {cmd} #{i} vendor", _norm(g.get("vendor")), _norm(u[27]))
            score.check(f"cmd {cmd} #{i} profile", _norm(g.get("device_type")), _norm(u[29]))
    want = [(r[U_TAG], r[U_DESCRIPTOR]) for r in rows if r[U_TAG] != "-"]
    got = [(hf.packed_ascii(p.data[:6]), hf.packed_ascii(p.data[6:18])) for p in replies if p.command == 13]
    score.check("cmd 13 replies", len(got), len(want))
    for i, (g, u) in enumerate(zip(got, want)):
        score.check(f"cmd 13 #{i}", g, u)
    want = [zeek_bytes(r[U_LONG_TAG]).rstrip(b"\x00").decode("latin-1") for r in rows if r[U_LONG_TAG] != "-"]
    got = [p.data[:32].rstrip(b"\x00").decode("latin-1") for p in replies if p.command == 20]
    score.check("cmd 20 replies", len(got), len(want))
    for i, (g, u) in enumerate(zip(got, want)):
        score.check(f"cmd 20 #{i}", g, u)
    score.assert_agrees(at_least=10)


def test_tshark_field_by_field():
    """Every token-passing and session message tshark's `hart_ip` decodes in the four captures."""
    fields = ["hart_ip.version", "hart_ip.message_type", "hart_ip.message_id", "hart_ip.status",
              "hart_ip.transaction_id", "hart_ip.msg_length", "hart_ip.session_init.master_type",
              "hart_ip.session_init.inactivity_close_timer", "hart_ip.pt.delimiter", "hart_ip.pt.short_addr",
              "hart_ip.pt.long_address", "hart_ip.pt.command", "hart_ip.pt.length", "hart_ip.pt.response_code",
              "hart_ip.pt.device_status", "hart_ip.pt.checksum", "hart_ip.pt.rsp.device_id",
              "hart_ip.pt.rsp.hart_univ_rev", "hart_ip.pt.rsp.device_rev", "hart_ip.pt.rsp.software_rev",
              "hart_ip.pt.rsp.expanded_device_type", "hart_ip.pt.rsp.manufacturer_Id"]
    score = Score()
    for case, rel in CASES.items():
        path = shared_path(rel)
        rows = {r["frame"]: r for r in tshark_fields(path, "hart_ip", fields)}
        by_frame: dict[int, list] = {}
        for frame, *_rest, m in _messages(case):
            by_frame.setdefault(frame, []).append(m)
        for frame, msgs in by_frame.items():
            r = rows.get(frame)
            if all(m.msg_id in (hf.ID_DIRECT, hf.ID_AUDIT) for m in msgs):
                # tshark 4.0's hart_ip knows message ids 0-3 only: direct PDUs and audit log reads
                # are compared with the icsnpp logs alone
                assert r is None or not r["hart_ip.version"], (case, frame)
                continue
            score.check(f"{case} {frame} decoded by tshark", r is not None, True)
            if r is None or len(r["hart_ip.version"]) != len(msgs):
                continue
            for i, m in enumerate(msgs):
                w = f"{case} {frame}.{i}"
                for attr, f in (("version", "version"), ("msg_type", "message_type"), ("msg_id", "message_id"),
                                ("status", "status"), ("sequence", "transaction_id"), ("byte_count", "msg_length")):
                    score.check(f"{w} {attr}", getattr(m, attr), int(r[f"hart_ip.{f}"][i]))
            if len(msgs) != 1:
                continue
            m = msgs[0]
            if m.msg_id == hf.ID_SESSION_INITIATE and r["hart_ip.session_init.master_type"]:
                s = hf.SESSION_INITIATE.unpack_from(m.body, 0)
                score.check(f"{w} master", s.master_type, int(r["hart_ip.session_init.master_type"][0]))
                score.check(f"{w} timer", s.inactivity_timer, int(r["hart_ip.session_init.inactivity_close_timer"][0]))
            if m.msg_id != hf.ID_TOKEN_PASSING or not r["hart_ip.pt.command"]:
                continue
            p = hf.parse_token_passing(m.body)
            score.check(f"{w} delimiter", p.delimiter, int(r["hart_ip.pt.delimiter"][0], 16))
            if p.long_address:
                score.check(f"{w} address", p.address.hex(), r["hart_ip.pt.long_address"][0].replace(":", ""))
            else:
                score.check(f"{w} address", p.address[0] & 0x3F, int(r["hart_ip.pt.short_addr"][0]))
            score.check(f"{w} command", p.wire_command, int(r["hart_ip.pt.command"][0]))
            score.check(f"{w} byte count", p.byte_count, int(r["hart_ip.pt.length"][0]))
            score.check(f"{w} check", p.check, int(r["hart_ip.pt.checksum"][0], 16))
            if p.reply and r["hart_ip.pt.response_code"]:
                score.check(f"{w} response code", p.response_code, int(r["hart_ip.pt.response_code"][0]))
                score.check(f"{w} device status", p.device_status, int(r["hart_ip.pt.device_status"][0], 16))
            if p.reply and p.command == 0 and p.response_code == 0 and r["hart_ip.pt.rsp.device_id"]:
                ident = hart_ip.identity_from_unique_identifier(p.data)
                score.check(f"{w} device id", f"{ident['device_id']:06x}", r["hart_ip.pt.rsp.device_id"][0])
                score.check(f"{w} HART rev", ident["hart_revision"], int(r["hart_ip.pt.rsp.hart_univ_rev"][0]))
                score.check(f"{w} device rev", ident["device_revision"], int(r["hart_ip.pt.rsp.device_rev"][0]))
                score.check(f"{w} sw rev", ident["firmware"], r["hart_ip.pt.rsp.software_rev"][0])
                score.check(f"{w} device type", ident["device_type_id"],
                            int(r["hart_ip.pt.rsp.expanded_device_type"][0], 16))
    score.assert_agrees(at_least=500)


def test_observations_of_the_captures():
    """Operations carry the command's category, replies that fail are errors of the server (the
    communication-error replies of all_types_and_commands_sent, Too Few Data Bytes in the
    publish trace), and the identities name the Rosemount gateway and the FieldComm Group device."""
    obs = [o for rel in CASES.values() for o in deep_observations(shared_path(rel)) if o.proto == "hart-ip"]
    for o in of_kind(obs, "operation"):
        assert o.data["category"] in OP_CATEGORIES
        if isinstance(o.data["code"], int) and o.data["code"] in COMMANDS:
            assert (o.data["name"], o.data["category"]) == COMMANDS[o.data["code"]]
    cats = Counter(o.data["category"] for o in of_kind(obs, "operation"))
    assert cats["read"] and cats["config"] and cats["write"] and cats["diagnostic"]
    errors = Counter((o.data["code"], o.data["function"]) for o in of_kind(obs, "error"))
    assert errors[(5, 54)] == 3 and errors[(132, 0)] == 1
    idents = [o.data for o in of_kind(obs, "identity")]
    gw = next(d for d in idents if d.get("vendor") == "Rosemount")
    assert gw["device_id"] == 210 and gw["device_type"] == "WirelessHART gateway" and "route" not in gw
    assert any(d.get("name") == "wihartgw" for d in idents)
    assert any(d.get("vendor") == "FieldComm Group" and d["device_id"] == 9774703 for d in idents)
    assert {o.subject for o in of_kind(obs, "identity")} == {"src"}


def test_inventory_names_the_gateway():
    """The gateway's own replies make its identity (each field's source the HART-IP frame that
    stated it) and the protocol's server role makes it a gateway."""
    from plantguard.inventory.build import build_assets
    assets = build_assets(analyze([shared_path(SUITE_PCAP)]))
    a = next(a for a in assets if a.ip == "192.168.0.10")
    assert a.identity["vendor"] == "Rosemount" and a.identity["name"] == "wihartgw"
    assert a.identity["device_id"] == 210 and a.identity["hart_revision"] == 7
    assert a.identity_sources["vendor"]["proto"] == "hart-ip" and a.identity_sources["vendor"]["frame"] == 4
    assert a.role == "gateway", a.role_reasons


def test_signature_any_port_and_negatives():
    path = shared_path(SUITE_PCAP)
    payloads = [lay.payload for _f, _t, lay in frames(path) if lay.payload and hart_ip.signature(lay.payload)]
    assert len(payloads) >= 40
    for p in payloads:
        assert registry.classify("udp", 49905, 5095, p) is hart_ip     # the gateway's second port
        assert registry.classify("tcp", 40000, 5094, p) is hart_ip
    keep_alive = bytes.fromhex("0100020000050008")
    assert hart_ip.signature(keep_alive)
    for bad in (bytes.fromhex("0300020000050008"),       # version 3
                bytes.fromhex("0107020000050008"),       # message type 7
                bytes.fromhex("0100060000050008"),       # message id 6
                bytes.fromhex("0100020000050009"),       # byte count past the payload
                keep_alive + b"\x00",                    # byte count short of it
                bytes.fromhex("01000000000100080100000000"),   # session initiate of the wrong size
                b"GET / HTTP/1.1\r\n\r\n", bytes.fromhex("000100000006010300000001")):
        assert not hart_ip.signature(bad), bad.hex()
        assert registry.classify("tcp", 40000, 5555, bad) is not hart_ip
        assert registry.classify("udp", 40000, 5094, bad) is not hart_ip
    # Modbus on its own port stays Modbus
    assert registry.classify("tcp", 40000, 502, bytes.fromhex("000100000006010300000001")) is not hart_ip


def _hip(msg_type: int, msg_id: int, seq: int, body: bytes, status: int = 0) -> bytes:
    return bytes([1, msg_type, msg_id, status]) + seq.to_bytes(2, "big") + (8 + len(body)).to_bytes(2, "big") + body


def _tp(command: int, data: bytes = b"", reply: bool = False, rc: int = 0,
        address: bytes = bytes.fromhex("a695eb27b8")) -> bytes:
    """A long-frame token-passing PDU per the HART data link layout, its check byte the XOR."""
    delim = 0x86 if reply else 0x82
    body = (bytes([rc, 0]) if reply else b"") + data
    f = bytes([delim]) + address + bytes([command, len(body)]) + body
    x = 0
    for b in f:
        x ^= b
    return f + bytes([x])


def test_writes_resets_and_refusals_by_hand():
    """Built by hand per the HART-IP and HART layouts: write long tag (config) split across two
    TCP segments, device reset and fixed current (control), a write refused in write-protect
    mode (error 7), a warning (8) that is no error, and a direct PDU of two commands."""
    tag = b"FT-101".ljust(32, b"\x00")
    w = _hip(0, 3, 1, _tp(22, tag))
    reset = _hip(0, 3, 2, _tp(42))
    fixed = _hip(0, 3, 3, _tp(40, bytes.fromhex("40800000")))
    direct = _hip(0, 4, 4, b"\x00\x00" + b"\x00\x01\x00" + b"\x00\x26\x00")
    out = stream([(True, w[:11]), (True, w[11:] + reset + fixed + direct),
                  (False, _hip(1, 3, 1, _tp(22, tag, True, rc=7))), (False, _hip(1, 3, 2, _tp(42, b"", True, rc=8)))],
                 hart_ip, dport=5094)
    ops = [(o.data["code"], o.data["category"]) for o in of_kind(out, "operation")]
    assert ops == [(22, "config"), (42, "control"), (40, "control"), (1, "read"), (38, "config")]
    assert "long_tag=FT-101" in of_kind(out, "operation")[0].data["detail"]
    assert "current_ma=4" in of_kind(out, "operation")[2].data["detail"]
    errs = [(o.data["code"], o.data["function"], o.subject) for o in of_kind(out, "error")]
    assert errs == [(7, 22, "src")]
    nak = hart_ip.decode(packet(_hip(15, 0, 9, b"", status=1), l4="udp", sport=5094, dport=40000,
                                from_client=False))
    assert [(o.data["code"], o.data["name"]) for o in of_kind(nak, "error")] == [(1, "Primary session unavailable")]


def test_field_instrument_behind_the_gateway_is_a_module():
    """A Read Unique Identifier reply of a device that is no bridge and no gateway profile (a
    HART 7 Endress+Hauser transmitter, per the cmd 0 layout) is kept as a routed module."""
    data = bytes([254, 0x11, 0x2A, 5, 7, 3, 2, 0x08, 0x00, 0x01, 0x02, 0x03, 5, 4, 0, 1, 0, 0, 0x11, 0, 0x11, 1])
    out = hart_ip.decode(packet(_hip(1, 3, 1, _tp(0, data, True, address=bytes.fromhex("912a010203"))),
                                l4="udp", sport=5094, dport=40000, from_client=False))
    ident = of_kind(out, "identity")[0].data
    assert ident["vendor"] == "Endress+Hauser" and ident["device_id"] == 0x010203
    assert ident["route"] == "HART unique address 112a010203"


def _obs_key(o) -> tuple:
    return o.kind, o.proto, o.src, o.dst, o.frame, o.count, tuple(sorted(map(str, o.data.items())))


def test_polling_is_replayed_and_equals_the_reference(tmp_path):
    """Cyclic command 3 and 9 polling and keep-alives over TCP and UDP, with a failed poll among
    them: the engine replays the polls and says exactly what the reference decoder says."""
    from support.packets import pcap_bytes, tcp_conversation, udp_frame

    from plantguard.capture.reference import analyze_reference
    t = 1.7e9
    frames_, exchanges = [], []
    for i in range(300):
        cmd = 3 if i % 2 else 9
        rc = 32 if i == 150 else 0
        req, rep = _hip(0, 3, i, _tp(cmd, b"\x00" if cmd == 9 else b"")), \
            _hip(1, 3, i, _tp(cmd, bytes([i & 0xFF]) * 8, True, rc=rc))
        frames_.append((t + i * 0.02, udp_frame("10.0.0.1", "10.0.0.2", 50000, 5094, req)))
        frames_.append((t + i * 0.02 + 0.01, udp_frame("10.0.0.2", "10.0.0.1", 5094, 50000, rep,
                                                       smac="02:00:00:00:00:02", dmac="02:00:00:00:00:01")))
        exchanges += [(True, req), (False, rep)]
        if i % 10 == 0:
            exchanges += [(True, _hip(0, 2, 1000 + i, b"")), (False, _hip(1, 2, 1000 + i, b""))]
    frames_ += tcp_conversation("10.0.0.3", "10.0.0.2", 5094, exchanges, t0=t + 10)
    path = tmp_path / "hart_poll.pcap"
    path.write_bytes(pcap_bytes(frames_))
    got, ref = analyze([path]), analyze_reference([path])
    assert got.counters["routine_packets"] > 900
    assert sorted(map(_obs_key, got.observations)) == sorted(map(_obs_key, ref.observations))
    errors = [o for o in got.observations if o.kind == "error"]
    assert [(o.data["code"], o.src) for o in errors] == [(32, "10.0.0.2"), (32, "10.0.0.2")]


def test_rosemount_gateway_against_the_csaf_sample():
    """The sample holds no HART advisory (the Emerson WirelessHART Gateway and FieldComm Group
    HART-IP advisories are outside it); the Rosemount gateway is an Emerson device for matching
    and meets none of the sample's Emerson advisories (PACSystems controllers)."""
    import json

    from plantguard.knowledge.csaf import read_csaf
    from plantguard.knowledge.matching import DeviceIdentity, IntelIndex
    from plantguard.knowledge.vendors import vendor_key
    assert vendor_key("Rosemount") == vendor_key("Emerson")
    idx, emerson = IntelIndex(), []
    for path in sorted(shared_path("vuln/csaf").glob("*/*.json")):
        text = path.read_text(encoding="utf-8", errors="replace")
        assert "WirelessHART" not in text and "HART-IP" not in text, path
        if "Emerson" in text:
            doc = read_csaf(json.loads(text))
            emerson.append(doc.id)
            for p in doc.products:
                idx.add_product(doc.id, p.product_id, p.vendor, p.product_name, p.full_name, p.version_text,
                                p.version_kind, p.model_numbers, p.cpe)
    assert emerson
    gw = next(o.data for o in deep_observations(shared_path(SUITE_PCAP))
              if o.kind == "identity" and o.data.get("vendor") == "Rosemount")
    dev = DeviceIdentity.from_identity(gw)
    assert not [p for p in idx.candidates(dev) if idx.match_product(dev, p) is not None]
