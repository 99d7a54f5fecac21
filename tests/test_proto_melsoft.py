"""MELSOFT (GX Works engineering protocol) against the published Lua dissector (Nozomi Networks,
Black Hat MEA 2023) run in tshark on every shared MELSOFT capture, field by field: the three
blackhat23-melsoft captures (iQ-R safety CPU, TCP 5007) and the five ITI MELSEC captures, which
hold MELSOFT too (FX5U, TCP 5562 and UDP 5560; no MC protocol / SLMP frame in any of them)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import shared_path
from support.baselines import Score
from support.decode import deep_observations, of_kind, packet, replay, stream
from support.peers import tshark_fields

from plantguard.capture.engine import analyze
from plantguard.knowledge.csaf import read_csaf
from plantguard.knowledge.families import identity_family
from plantguard.knowledge.matching import DeviceIdentity, IntelIndex
from plantguard.model import OP_CATEGORIES
from plantguard.protocols import melsoft, registry
from plantguard.protocols.melsoft import frame as mframe

LUA = "baselines/blackhat23-melsoft/melsoft_bhmea2023.lua"
BLACKHAT = ["pcaps/blackhat23-melsoft/cve_2021_20594_username_bruteforce.pcapng",
            "pcaps/blackhat23-melsoft/cve_2021_20598_20599_nn_2021_0019_attack_demo_1.pcapng",
            "pcaps/blackhat23-melsoft/legitimate_user_addition_plc_stop_test.pcapng"]
ITI = ["pcaps/ICS-Security-Tools/MELSEC/melsoft_129_clean.pcap",
       "pcaps/ICS-Security-Tools/MELSEC/melsoft_UDP_clean_1.pcap",
       "pcaps/ICS-Security-Tools/MELSEC/melsoft_UDP_clean_2.pcap",
       "pcaps/ICS-Security-Tools/MELSEC/melsoft_UDP_unclean_1.pcap",
       "pcaps/ICS-Security-Tools/MELSEC/melsoft_variant_clean.pcap"]
FIELDS = ["melsoft.req.magic_bytes", "melsoft.resp.magic_bytes", "melsoft.req.sequence_number",
          "melsoft.resp.sequence_number", "melsoft.req.network_number", "melsoft.req.unit_number",
          "melsoft.req.io_number", "melsoft.req.cmdhdr_cmddata_ethftr_size",
          "melsoft.resp.cmdhdr_cmddata_ethftr_size", "melsoft.req.cmdhdr_type", "melsoft.resp.cmdhdr_type",
          "melsoft.resp.status", "melsoft.req.command_code", "melsoft.resp.command_code",
          "melsoft.req.packet_reference", "melsoft.resp.packet_reference", "melsoft.req.cmddata_remaining_size",
          "melsoft.resp.cmddata_remaining_size", "melsoft.req.ethftr_parameter_type",
          "melsoft.req.username_login.username", "melsoft.req.user_information_registration.username"]


def _lua(tmp: Path) -> str:
    """The Lua dissector, also on the iQ-F ports the ITI captures use (it registers TCP 5007 only)."""
    wrapper = tmp / "melsoft_ports.lua"
    wrapper.write_text(f'dofile("{shared_path(LUA)}")\n'
                       'DissectorTable.get("udp.port"):add(5560, proto_melsoft)\n'
                       'DissectorTable.get("tcp.port"):add(5562, proto_melsoft)\n')
    return str(wrapper)


def _int(values: list[str]) -> int | None:
    return int(values[0], 0) if values else None


@pytest.mark.parametrize("rel", BLACKHAT + ITI)
def test_frames_match_the_lua_dissector(rel, tmp_path):
    """Every frame the Lua dissector takes apart (magic 0x5701 requests and 0xD700 responses;
    it leaves 0x5700 and 0xD701 as "Other"), the same header, command and footer fields; a TCP
    segment the capture holds twice (a SPAN copy, tshark's retransmission) is compared once."""
    path = shared_path(rel)
    rows = {r["frame"]: r for r in tshark_fields(path, "melsoft && !tcp.analysis.retransmission", FIELDS,
                                                 ["-X", f"lua_script:{_lua(tmp_path)}"])}
    _obs, seen = replay(path, melsoft, tap="_observe")
    score, compared = Score(), 0
    for frame, *_rest, f in seen:
        r = rows.get(frame)
        side = "resp" if f.response else "req"
        if r is None or not r[f"melsoft.{side}.magic_bytes"]:
            continue
        compared += 1
        w = f"frame {frame} {side}"
        score.check(f"{w} sequence", f.sequence, _int(r[f"melsoft.{side}.sequence_number"]))
        score.check(f"{w} size", f.size, _int(r[f"melsoft.{side}.cmdhdr_cmddata_ethftr_size"]))
        score.check(f"{w} header type", f.header_type, _int(r[f"melsoft.{side}.cmdhdr_type"]))
        score.check(f"{w} command", f.code, _int(r[f"melsoft.{side}.command_code"]))
        score.check(f"{w} reference", f.reference, _int(r[f"melsoft.{side}.packet_reference"]))
        score.check(f"{w} data size", f.data_size, _int(r[f"melsoft.{side}.cmddata_remaining_size"]))
        if f.response:
            score.check(f"{w} status", f.status, _int(r["melsoft.resp.status"]))
            continue
        score.check(f"{w} network", f.network, _int(r["melsoft.req.network_number"]))
        score.check(f"{w} unit", f.unit, _int(r["melsoft.req.unit_number"]))
        # the Lua dissector shows the I/O number big-endian (0xFF03); it is 0x03FF as MC protocol writes it
        score.check(f"{w} io", int.from_bytes(f.io.to_bytes(2, "little"), "big"), _int(r["melsoft.req.io_number"]))
        if f.footer:
            score.check(f"{w} footer types", [t for t, _v in mframe.footer_parameters(f.footer)],
                        [int(v, 0) for v in r["melsoft.req.ethftr_parameter_type"]])
        if f.code == 0x0131:
            score.check(f"{w} user", melsoft._user(f.data[:0x28]), r["melsoft.req.username_login.username"][0])
        if f.code == 0x1133:
            score.check(f"{w} registered user", r["melsoft.req.user_information_registration.username"][0] in
                        melsoft.describe(f)[2], True)
    lua_frames = {f for f, r in rows.items() if r["melsoft.req.magic_bytes"] or r["melsoft.resp.magic_bytes"]}
    assert lua_frames <= {s[0] for s in seen}       # every frame the Lua dissector reads, we read
    assert compared >= (100 if "variant" in rel or "legit" in rel else 9)
    score.assert_agrees(minimum=1.0, at_least=6 * compared)


def test_every_frame_parses_and_lengths_agree():
    """Every MELSOFT payload of every capture is whole frames whose size field ends exactly at
    the payload's end, with the command header type of its direction."""
    from support.decode import frames
    n = 0
    for rel in BLACKHAT + ITI:
        for _f, _t, lay in frames(shared_path(rel)):
            p = lay.payload
            if p and p[:1] in (b"\x57", b"\xd7"):
                assert mframe.plausible(p), (rel, _f)
                assert mframe.frame_len(p, 0) == len(p)
                n += 1
            elif p and {5007, 5560, 5562} & {lay.sport, lay.dport}:
                assert mframe.plausible_discovery(p), (rel, _f, p[:8].hex())
    assert n > 28000


def test_bruteforce_is_failed_logins_then_success():
    """CVE-2021-20594: nine Username Logins, 'nozoma'..'nozomh' refused (status 0x0943), then
    'nozomi' accepted, each a credential with the user name and its result."""
    obs = deep_observations(shared_path(BLACKHAT[0]))
    creds = of_kind(obs, "credential", "melsoft")
    assert [(c.data["user"], c.data["result"]) for c in creds] == \
        [(f"nozom{ch}", "failure") for ch in "abcdefgh"] + [("nozomi", "success")]
    assert all(c.data["password"] is None and c.data["cleartext"] is False for c in creds)
    assert all(c.src == "10.41.128.33" and c.dst == "192.168.45.100" and c.dport == 5007 for c in creds)
    errors = of_kind(obs, "error", "melsoft")
    assert [(e.data["code"], e.data["function"]) for e in errors] == [(0x0943, 0x0131)] * 8


def test_stop_user_registration_and_identity():
    """The legitimate session: a Remote Control Stop and a Safety Run Mode Change (control, the
    PLC change timeline), a User Information Registration (config, naming the user), and the
    CPU (R08SFCPU, model code 0x4891) from every Open Initial."""
    obs = deep_observations(shared_path(BLACKHAT[2]))
    ops = of_kind(obs, "operation", "melsoft")
    control = [(o.data["name"], o.data["category"]) for o in ops if o.data["category"] == "control"]
    assert control == [("Remote Control Stop", "control"), ("Safety Run Mode Change", "control")]
    reg = [o for o in ops if o.data["code"] == 0x1133]
    assert [o.data["detail"].split(", ")[:3] for o in reg] == [
        ["registers 1 user(s): 'nozomi' (Administrators)", "80 data bytes", "with authorisation token"],
        ["registers 3 user(s): 'test_nozomi' (Administrators)", "'user' (Users)", "'devel' (Developers)"]]
    assert all(o.data["category"] == "config" for o in reg)
    idents = {(o.src, o.data["model"], o.data["product_code"]) for o in of_kind(obs, "identity", "melsoft")}
    assert idents == {("172.17.0.134", "R08SFCPU", 0x4891)}
    assert all(o.data["category"] in OP_CATEGORIES for o in ops)


def test_iti_captures_fx5u_stop_and_program_write():
    obs = deep_observations(shared_path(ITI[1]))
    idents = {(o.data["model"], o.data["product_code"]) for o in of_kind(obs, "identity", "melsoft")}
    assert idents == {("FX5U-32MT/ES", 0x4A29)}
    cats = Counter(o.data["category"] for o in of_kind(obs, "operation", "melsoft"))
    assert cats["control"] == 1 and cats["program"] >= 17 and cats["write"] == 106


def _mitsubishi_index() -> IntelIndex:
    idx = IntelIndex()
    for path in sorted(shared_path("vuln/csaf").glob("*/*.json")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "Mitsubishi" not in text:
            continue
        doc = read_csaf(json.loads(text))
        for p in doc.products:
            idx.add_product(doc.id, p.product_id, p.vendor, p.product_name, p.full_name, p.version_text,
                            p.version_kind, p.model_numbers, p.cpe)
    return idx


def _advisories(idx: IntelIndex, ident: dict) -> set[str]:
    dev = DeviceIdentity.from_identity(ident)
    return {p.advisory_id.lower() for p in idx.candidates(dev) if idx.match_product(dev, p) is not None}


def test_identities_meet_mitsubishi_advisories():
    """The R08SFCPU of the blackhat captures meets ICSA-21-250-01 (the advisory of the very
    CVE-2021-20594 its capture demonstrates); the FX5U of the ITI captures meets the MELSEC
    iQ-F Series advisory ICSA-20-345-01 through its family; a Q03UDECPU the MELSEC Q ones."""
    idx = _mitsubishi_index()
    r08 = of_kind(deep_observations(shared_path(BLACKHAT[0].replace("cve_2021_20594_username_bruteforce",
                                                                    "legitimate_user_addition_plc_stop_test"))),
                  "identity", "melsoft")[0].data
    assert "icsa-21-250-01" in _advisories(idx, r08)
    fx5 = of_kind(deep_observations(shared_path(ITI[2])), "identity", "melsoft")[0].data
    assert identity_family(fx5) == ("MELSEC iQ-F", "model")
    assert "icsa-20-345-01" in _advisories(idx, fx5)
    assert identity_family({"model": "Q03UDECPU"})[0] == "MELSEC Q series"
    assert "icsa-22-172-01" in _advisories(idx, {"vendor": "Mitsubishi Electric", "model": "Q03UDECPU"})
    assert not _advisories(idx, {"vendor": "Siemens", "model": "CPU 315-2 PN/DP", "firmware": "3.2"})


def test_signature_on_other_ports_and_negatives():
    from support.decode import frames
    payloads = [lay.payload for _f, _t, lay in frames(shared_path(BLACKHAT[2])) if lay.payload]
    whole = [p for p in payloads if p[:1] in (b"\x57", b"\xd7")]
    disc = [p for p in payloads if p[:1] in (b"\x5a", b"\xda")]
    assert whole and disc
    for p in whole[:50]:
        assert registry.classify("tcp", 40000, 6000, p) is melsoft
    for p in disc:   # discovery datagrams: on MELSOFT's ports only
        assert registry.classify("tcp", 40000, 5007, p) is melsoft
        assert registry.classify("tcp", 40000, 6000, p) is not melsoft
    # a frame cut short, Modbus, S7 and FINS/TCP are not MELSOFT on its own port
    assert not melsoft.signature(whole[0][:-1])
    assert not melsoft.signature(b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x01")
    assert not melsoft.signature(bytes.fromhex("0300001611e00000000100c1020100c2020102c0010a"))
    assert not melsoft.signature(b"FINS" + bytes(12))


def _frame(code: int, data: bytes, response: bool = False, status: int = 0, seq: int = 0) -> bytes:
    """A footerless frame per the layout the captures show (FX5 style)."""
    body = RESP_HEAD[:4] + status.to_bytes(2, "big") + RESP_HEAD[6:] if response else REQ_HEAD
    cd = code.to_bytes(2, "big") + b"\x00\x00\x00\x00" + data
    eth = bytearray(REQ_ETH if not response else RESP_ETH)
    eth[2] = seq & 0xFF
    eth[0x13:0x15] = (len(body) + len(cd)).to_bytes(2, "little")
    return bytes(eth) + body + cd


REQ_ETH = bytes.fromhex("57000000001111070000ffff03000000000000") + b"\x00\x00"
RESP_ETH = bytes.fromhex("d70000000011117f000000a80300ffff030000") + b"\x00\x00"
REQ_HEAD = bytes.fromhex("1c021614") + bytes(20)
RESP_HEAD = bytes.fromhex("9c021814") + bytes(22)


def test_built_frames_across_segments_and_refused_stop():
    stop = _frame(0x1002, b"\x01\x00")
    read = _frame(0x0410, bytes(22))
    out = stream([(True, stop[:30]), (True, stop[30:] + read)], melsoft, dport=5562)
    assert [(o.data["name"], o.data["category"]) for o in of_kind(out, "operation")] == \
        [("Remote Control Stop", "control"), ("Device Read (Watch / Modify Value)", "read")]
    refused = _frame(0x1002, b"", response=True, status=0x4013)
    err = [o for o in melsoft.decode(packet(refused, sport=5562, dport=40000, from_client=False)) if o.kind == "error"]
    assert [(e.data["code"], e.data["function"], e.subject) for e in err] == [(0x4013, 0x1002, "src")]


def _obs_key(o) -> tuple:
    return o.kind, o.proto, o.src, o.dst, o.frame, o.count, tuple(sorted(map(str, o.data.items())))


def test_watch_polling_is_replayed_and_equals_the_reference(tmp_path):
    """0x0410 polling over TCP 5562 with a Remote Stop and a refused read among the polls: the
    engine replays the polls and says exactly what the reference decoder says."""
    from support.packets import pcap_bytes, tcp_conversation

    from plantguard.capture.reference import analyze_reference
    exchanges = []
    for i in range(400):
        exchanges.append((True, _frame(0x0410, bytes(20) + b"\x02\x00", seq=i)))
        exchanges.append((False, _frame(0x0410, b"\x61\x00\x00\x00", response=True,
                                        status=0x4031 if i == 150 else 0, seq=i)))
        if i == 200:
            exchanges.append((True, _frame(0x1002, b"\x01\x00", seq=i)))
    frames = tcp_conversation("10.0.0.3", "10.0.0.2", 5562, exchanges, t0=1.7e9)
    path = tmp_path / "melsoft_poll.pcap"
    path.write_bytes(pcap_bytes(frames))
    got, ref = analyze([path]), analyze_reference([path])
    assert got.counters["routine_packets"] > 600
    assert sorted(map(_obs_key, got.observations)) == sorted(map(_obs_key, ref.observations))
    errors = [o for o in got.observations if o.kind == "error"]
    assert [(o.data["code"], o.src) for o in errors] == [(0x4031, "10.0.0.2")]
