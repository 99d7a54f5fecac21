"""S7comm / S7comm-plus decoder against the icsnpp-s7comm baselines (cotp.log, s7comm.log,
s7comm_read_szl.log, s7comm_upload_download.log, s7comm_plus.log, s7comm_known_devices.log),
tshark on the ITI S7 captures (per-PDU functions and the SZL identity values), and hand-built
frames for what needs reassembly."""
from __future__ import annotations

import json
import shutil
import struct
import subprocess

import pytest
from conftest import analyze_shared, shared_path
from support.baselines import agreement, sequence_agreement, zeek_log
from support.decode import of_kind, replay, stream

from plantguard.protocols import registry, s7comm
from plantguard.protocols.s7comm import s7 as s7comm_s7
from plantguard.protocols.s7comm import s7plus as s7comm_s7plus

B = "baselines/icsnpp-s7comm/"
P = "pcaps/icsnpp-s7comm/"
ITI = "pcaps/ICS-Security-Tools/s7/"
CASES = [("s7ident", "s7ident.pcap"), ("snap7", "snap7.pcap"), ("s7comm_plus", "s7comm_plus.pcap")]


def _h(v: str):
    return None if v == "-" else int(v, 16)


def _swap(v: int) -> int:
    """icsnpp reads the PDU reference little-endian; the header field is big-endian."""
    return ((v & 0xFF) << 8) | (v >> 8)


# Where the decoder looks each tapped function up (the tap replaces that module's attribute):
# decode() calls _observe_cotp per COTP TPDU, which calls s7._observe_s7 per S7 PDU and
# s7plus._observe_s7plus per S7comm-plus frame.
TAPPED_IN = {"_observe_cotp": s7comm, "_observe_s7": s7comm_s7, "_observe_s7plus": s7comm_s7plus}


def _tap(rel: str, tap: str):
    return replay(shared_path(rel), TAPPED_IN[tap], tap)


# --- icsnpp-s7comm ---------------------------------------------------------------------------

@pytest.mark.parametrize("analyzer,pcap", CASES)
def test_cotp_log_matches_icsnpp(analyzer, pcap):
    theirs = [(r["is_orig"] == "T", _h(r["pdu_code"])) for r in zeek_log(shared_path(f"{B}analyzer.{analyzer}/cotp.log"))]
    _obs, seen = _tap(P + pcap, "_observe_cotp")
    ours = [(dport == 102, c.code) for _f, _c, _s, _sp, _d, dport, c in seen]
    assert sequence_agreement(ours, theirs)[0] == 1.0
    names = {r["pdu_code"]: r["pdu_name"] for r in zeek_log(shared_path(f"{B}analyzer.{analyzer}/cotp.log"))}
    assert all(s7comm.COTP_TYPES[_h(code)] == name for code, name in names.items())


def _s7_record(dport: int, s: s7comm.S7Pdu) -> tuple:
    if s.rosctr == s7comm.USERDATA:
        sub = s.subfunction
    elif s.rosctr == s7comm.JOB and s.function == 0x28:
        sub = s7comm.pi_service(s.param)[0]
    else:
        sub = "-"
    if s.rosctr in (s7comm.ACK, s7comm.ACK_DATA):
        err = (s.err_class << 8) | s.err_code if s.err_class else s.err_code
    elif s.rosctr == s7comm.USERDATA and (s.type_group or 0) >> 4 == 8:
        err = s.ud_error
    else:
        err = None
    return (dport == 102, s.rosctr, _swap(s.pdu_ref), s.function, sub, err)


@pytest.mark.parametrize("analyzer,pcap", CASES)
def test_s7comm_log_matches_icsnpp(analyzer, pcap):
    """ROSCTR, PDU reference, function (user-data: type/group byte), sub-function (user-data
    sub-function or PI service name) and error code of every S7 PDU."""
    rows = zeek_log(shared_path(f"{B}analyzer.{analyzer}/s7comm.log"))
    theirs = [(r["is_orig"] == "T", int(r["rosctr_code"]), int(r["pdu_reference"]), _h(r["function_code"]),
               _h(r["subfunction_code"]) if r["subfunction_code"].startswith("0x") else r["subfunction_code"],
               _h(r["error_code"])) for r in rows]
    _obs, seen = _tap(P + pcap, "_observe_s7")
    ours = [_s7_record(dport, s) for _f, _c, _s, _sp, _d, dport, s in seen]
    ratio, only_ours, only_theirs = sequence_agreement(ours, theirs)
    assert only_theirs == []
    # icsnpp logs no Ack (ROSCTR 2) PDUs, nor the first fragment of a fragmented user-data reply
    # and the request for its next fragment (docs/baseline-differences/s7comm.md)
    assert all(r[1] == s7comm.ACK for r in only_ours if r[1] != s7comm.USERDATA)
    extra_userdata = [r for r in only_ours if r[1] == s7comm.USERDATA]
    assert extra_userdata == ([(False, 7, 2, 0x84, 1, 0), (True, 7, 3, 0x44, 1, None)] if analyzer == "snap7" else [])
    matched = len(ours) - len(only_ours)
    assert matched == len(theirs) and ratio >= {"s7ident": 0.8, "snap7": 0.95, "s7comm_plus": 1.0}[analyzer]
    names = {(r["rosctr_code"], r["function_code"]): r["function_name"] for r in rows if r["rosctr_code"] != "7"}
    assert all(s7comm.FUNCTIONS[_h(fc)][0] == name for (_r, fc), name in names.items())


def test_read_szl_log_matches_icsnpp():
    rows = zeek_log(shared_path(f"{B}analyzer.snap7/s7comm_read_szl.log"))
    theirs = [(r["is_orig"] == "T", int(r["pdu_reference"]), r["method"], _h(r["szl_id"]), _h(r["szl_index"]),
               _h(r["return_code"])) for r in rows]
    _obs, seen = _tap(P + "snap7.pcap", "_observe_s7")
    ours = []
    for _f, _c, _s, _sp, _d, dport, s in seen:
        if s.rosctr != 7 or (s.type_group or 0) & 0xF != 4 or s.subfunction != 1 or s.durn:
            continue    # fragmented replies (durn) are not logged by icsnpp
        reply = (s.type_group >> 4) == 8
        szl = s7comm.szl_reply_header(s.data) if reply else s7comm.szl_request(s.data)
        if szl is None:
            continue
        ours.append((dport == 102, _swap(s.pdu_ref), "Response" if reply else "Request", szl[0], szl[1], s.data[0]))
    assert sequence_agreement(ours, theirs)[0] == 1.0 and len(theirs) == 9


def test_upload_download_log_matches_icsnpp():
    rows = zeek_log(shared_path(f"{B}analyzer.snap7/s7comm_upload_download.log"))
    theirs = [(r["is_orig"] == "T", r["rosctr"], int(r["pdu_reference"]), r["function_name"], _h(r["function_status"]),
               r["session_id"], r["blocklength"], r["filename"], r["block_type"], r["block_number"],
               r["destination_filesystem"]) for r in rows]
    _obs, seen = _tap(P + "snap7.pcap", "_observe_s7")
    ours = []
    for _f, _c, _s, _sp, _d, dport, s in seen:
        if s.rosctr in (1, 3) and s.function is not None and 0x1A <= s.function <= 0x1F:
            u = s7comm.upload_fields(s)
            g = lambda k: str(u[k]) if k in u else "-"   # noqa: E731
            ours.append((dport == 102, {1: "Job-Request", 3: "ACK-Data"}[s.rosctr], _swap(s.pdu_ref),
                         s7comm.FUNCTIONS[s.function][0], u.get("status"), g("session_id"), g("blocklength"),
                         g("filename"), g("block_type"), g("block_number"), g("filesystem")))
    ratio, only_ours, only_theirs = sequence_agreement(ours, theirs)
    assert ratio == 1.0 and len(theirs) == 25, (only_ours[:2], only_theirs[:2])


def test_s7comm_plus_log_matches_icsnpp():
    rows = zeek_log(shared_path(f"{B}analyzer.s7comm_plus/s7comm_plus.log"))
    theirs = [(r["is_orig"] == "T", int(r["version"]), _h(r["opcode"]), _h(r["function_code"])) for r in rows]
    _obs, seen = _tap(P + "s7comm_plus.pcap", "_observe_s7plus")
    ours = [(dport == 102, p.version, p.opcode, p.function) for _f, _c, _s, _sp, _d, dport, p in seen]
    assert sequence_agreement(ours, theirs)[0] == 1.0 and len(theirs) == 121
    for r in rows:
        assert s7comm.S7P_OPCODES[_h(r["opcode"])] == r["opcode_name"]
        if r["function_code"] != "-":
            assert s7comm.S7P_FUNCTIONS[_h(r["function_code"])][0] == r["function_name"]


def test_known_devices_log_and_pipeline_identity():
    (row,) = zeek_log(shared_path(f"{B}analyzer.s7ident/s7comm_known_devices.log"))
    res = analyze_shared(P + "s7ident.pcap")
    ids = [o for o in res.observations if o.kind == "identity" and o.proto == "s7comm"]
    assert ids and all(o.subject_ip == row["id.resp_h"] and o.subject_port == 102 for o in ids)
    merged: dict = {}
    for o in ids:
        merged.update(o.data)
    assert merged["name"] == row["automation_system_name"] == "SNAP7-SERVER"
    assert merged["module"] == row["module_name"] == "CPU 315-2 PN/DP"
    assert merged["serial"] == row["module_serial"] == "S C-C2UR28922012"
    assert row["plant_name"] == "(empty)" and "plant_id" not in merged
    assert merged["order_number"] == "6ES7 315-2EH14-0AB0" and merged["firmware"] == "V3.2.6"
    assert merged["vendor"] == "Siemens" and merged["product"] == "CPU 315-2 PN/DP"
    assert merged["copyright"] == "Original Siemens Equipment"


# --- tshark as second oracle -------------------------------------------------------------------

def _evidence(rel: str) -> dict:
    doc = json.loads(shared_path("baselines/tshark-derived/identity_evidence.json").read_text())
    entry = doc["files"][rel]
    return {k: [v.split("=", 1) for v in vals] for k, vals in entry.items()}


@pytest.mark.parametrize("rel", [P + "s7ident.pcap", P + "snap7.pcap", ITI + "tia_s300_goOnline.pcapng",
                                 ITI + "s7comm_reading_plc_status.pcap", ITI + "s7comm_reading_setting_plc_time.pcap"])
def test_szl_identity_agrees_with_tshark(rel):
    """tshark's SZL 0x001c fields: name (module name, index 2), cputypname (index 7), serialn."""
    ev = dict(_evidence(rel)["s7_szl_component_id"])
    obs, _ = replay(shared_path(rel))
    merged: dict = {}
    for o in of_kind(obs, "identity", "s7comm"):
        merged.update(o.data)
    assert merged["module"] == ev["name"]
    if "cputypname" in ev:
        assert merged["model"] == ev["cputypname"]
    if "serialn" in ev:
        assert merged["serial"] == ev["serialn"]


@pytest.mark.parametrize("rel,card", [(P + "s7ident.pcap", "MMC 267FF11F"), (P + "snap7.pcap", "MMC 4A1AC019"),
                                      (ITI + "tia_s300_goOnline.pcapng", "MMC 4A1AC019"),
                                      (ITI + "s7comm_reading_plc_status.pcap", "MMC 2900FC1A")])
def test_memory_card_serial_and_location_designation_as_tshark_reads_them(rel, card):
    """SZL 0x001C index 8 (tshark s7comm.szl.001c.0008.snmcmmc) is the CPU's memory_card_serial
    in the inventory; index 0x0B, the location designation (s7comm.szl.001c.000b.loc_id), and index
    3, the plant designation (.0003.tag), are blank in every shared capture, and so absent."""
    if not shutil.which("tshark"):
        pytest.skip("tshark not installed")
    from plantguard.inventory.build import build_assets
    out = subprocess.run(["tshark", "-n", "-r", str(shared_path(rel)), "-Y", "s7comm.szl.001c.0008.snmcmmc",
                          "-T", "fields", "-e", "ip.src", "-e", "s7comm.szl.001c.0008.snmcmmc",
                          "-e", "s7comm.szl.001c.000b.loc_id", "-e", "s7comm.szl.001c.0003.tag"],
                         capture_output=True, text=True, timeout=120).stdout.split("\n")[0].split("\t")
    plc, mmc, loc, tag = out
    assert mmc == card and loc.strip() == tag.strip() == ""
    ident = {a.ip: a for a in build_assets(analyze_shared(rel))}[plc].identity
    assert ident["memory_card_serial"] == mmc
    assert "location" not in ident and "plant_id" not in ident


@pytest.mark.parametrize("rel,order,firmware", [
    (ITI + "S7-1200-Uploading-OB1-TIAV12.pcap", "6ES7 214-1HE30-0XB0", "V2.2"),
    (ITI + "s7-1200-hmi.pcap", "6ES7 211-1BE31-0XB0", "V3.0"),
    (ITI + "S7-1511_db2_var1_HMI.pcap", "6ES7 511-1AK00-0AB0", "V1.0"),
])
def test_s7comm_plus_create_object_response_names_order_number_and_firmware(rel, order, firmware):
    """tshark 4.0 has no S7comm-plus dissector: the version string is compared with the bytes of
    the PLC's Create Object response as tshark shows them (tcp.payload of the frame from port 102)."""
    if not shutil.which("tshark"):
        pytest.skip("tshark not installed")
    out = subprocess.run(["tshark", "-n", "-r", str(shared_path(rel)), "-Y", 'tcp.srcport == 102 && frame contains "6ES7"',
                          "-T", "fields", "-e", "frame.number", "-e", "ip.src", "-e", "tcp.payload"],
                         capture_output=True, text=True, timeout=120).stdout.splitlines()
    frame, plc, payload = out[0].split("\t")
    text = bytes.fromhex(payload).decode("latin-1")
    assert f"1;{order} ;{firmware}" in text or f"1;{order};{firmware}" in text
    obs = [o for o in analyze_shared(rel).observations if o.kind == "identity" and o.proto == "s7comm"]
    assert obs and obs[0].frame == int(frame) and obs[0].subject_ip == plc
    assert obs[0].data == {"order_number": order, "firmware": firmware, "vendor": "Siemens"}


def test_szl_location_designation_and_plant_designation_when_set():
    rec = lambda i, text: struct.pack(">H", i) + text.ljust(32, b"\0")   # noqa: E731
    body = struct.pack(">HHHH", 0x001C, 0, 34, 4) + rec(3, b"PLANT-A/LINE-7") + rec(7, b"CPU 315-2 PN/DP") \
        + rec(8, b"MMC 267FF11F") + rec(0x0B, b"Hall 3, cabinet 12")
    assert s7comm.identity_from_szl(body) == {
        "plant_id": "PLANT-A/LINE-7", "model": "CPU 315-2 PN/DP", "memory_card_serial": "MMC 267FF11F",
        "location": "Hall 3, cabinet 12", "product": "CPU 315-2 PN/DP", "vendor": "Siemens"}


def _tshark_pdus(rel: str) -> list[tuple]:
    if not shutil.which("tshark"):
        pytest.skip("tshark not installed")
    out = subprocess.run(["tshark", "-r", str(shared_path(rel)), "-Y", "s7comm", "-T", "fields", "-E", "aggregator=|",
                          "-e", "frame.number", "-e", "s7comm.header.rosctr", "-e", "s7comm.param.func",
                          "-e", "s7comm.param.userdata.funcgroup", "-e", "s7comm.param.userdata.subfunc"],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        frame, ros, fn, grp, sub = (line.split("\t") + [""] * 5)[:5]
        for r in ros.split("|"):
            r = int(r)
            if r == 7:
                rows.append((int(frame), 7, int(grp.split("|")[0]), int(sub.split("|")[0]) if sub else None))
            elif r in (1, 3):
                rows.append((int(frame), r, int(fn.split("|")[0], 16) if fn else None, None))
            else:
                rows.append((int(frame), r, None, None))
    return rows


@pytest.mark.parametrize("rel", ["step7_s300_download.pcapng", "step7_s300_readVarTab.pcapng",
                                 "tia_s300_downloadHwConfig.pcapng", "tia_s300_goOnline.pcapng",
                                 "wincc_s400_production.pcapng", "s7comm_downloading_block_db1.pcap",
                                 "s7comm_reading_plc_status.pcap", "step7_s300_AuthPassword.pcapng"])
def test_every_s7_pdu_agrees_with_tshark(rel):
    _obs, seen = _tap(ITI + rel, "_observe_s7")
    ours = []
    for f, _c, _s, _sp, _d, _dp, s in seen:
        if s.rosctr == 7:
            group = s.type_group & 0xF if s.type_group is not None else None
            # for mode transitions tshark shows the new mode, not a sub-function
            ours.append((f, 7, group, None if group == 0 else s.subfunction))
        elif s.rosctr in (1, 3):
            ours.append((f, s.rosctr, s.function, None))
        else:
            ours.append((f, s.rosctr, None, None))
    ratio, only_ours, only_tshark = agreement(ours, _tshark_pdus(ITI + rel))
    assert ratio == 1.0 and ours, (list(only_ours.items())[:3], list(only_tshark.items())[:3])


# --- categories ----------------------------------------------------------------------------------

def _ops(rel: str) -> list:
    obs, _ = replay(shared_path(rel))
    return [o for o in obs if o.kind == "operation" and o.proto == "s7comm"]


@pytest.mark.parametrize("rel,name,category", [
    (ITI + "step7_s300_download.pcapng", "Request Download", "program"),
    (ITI + "step7_s300_download.pcapng", "Download Block", "program"),
    (ITI + "step7_s300_download.pcapng", "Download Ended", "program"),
    (ITI + "step7_s300_download.pcapng", "PLC Control _INSE", "program"),
    (ITI + "tia_s300_downloadHwConfig.pcapng", "PLC Control _DELE", "program"),
    (ITI + "tia_s300_downloadHwConfig.pcapng", "PLC Control P_PROGRAM", "control"),
    (ITI + "step7_s300_stop.pcapng", "PLC Stop", "control"),
    (ITI + "step7_s300_copyRamToRom.pcapng", "PLC Control _MODU", "program"),
    (ITI + "step7_s300_AuthPassword.pcapng", "PLC password", "auth"),
    (ITI + "s7comm_reading_setting_plc_time.pcap", "Set clock", "config"),
    (ITI + "step7_s300_rwVarTab.pcapng", "Modify variable", "write"),
    (ITI + "s7comm_varservice_libnodavedemo.pcap", "Write Variable", "write"),
    (ITI + "s7comm_varservice_libnodavedemo.pcap", "Read Variable", "read"),
    (P + "snap7.pcap", "Start Upload", "program"),
    (P + "snap7.pcap", "Read SZL", "diagnostic"),
    (P + "s7comm_plus.pcap", "Set Variable", "write"),
    (P + "s7comm_plus.pcap", "Get Multi Variables", "read"),
    (ITI + "S7-1200-Uploading-OB1-TIAV12.pcap", "Create Object", "other"),
    (ITI + "S7-1200-Uploading-OB1-TIAV12.pcap", "Get Var Sub Streamed", "read"),
])
def test_operation_categories(rel, name, category):
    ops = [o for o in _ops(rel) if o.data["name"] == name]
    assert ops and {o.data["category"] for o in ops} == {category}
    assert all(o.subject == "dst" and o.dport == 102 and isinstance(o.data["code"], int) for o in ops)


def test_details():
    ops = _ops(ITI + "step7_s300_download.pcapng")
    assert {o.data["detail"] for o in ops if o.data["name"] == "Download Block"} == {"block DB 1 (Passive) file _0A00001P"}
    assert {o.data["detail"] for o in ops if o.data["name"] == "PLC Control _INSE"} == {"Activate downloaded block (0A00001P)"}
    rv = [o.data["detail"] for o in _ops(ITI + "s7comm_varservice_libnodavedemo.pcap") if o.data["code"] == 4]
    assert rv and all(d.startswith("items=") for d in rv)
    plus = [o.data["detail"] for o in _ops(P + "s7comm_plus.pcap") if o.data["name"] == "Set Variable"]
    assert set(plus) == {"S7comm-plus V3 session 0x70000e4d"}


def test_service_with_tsaps_and_s7comm_plus_version():
    obs, _ = replay(shared_path(ITI + "S7-1200-Uploading-OB1-TIAV12.pcap"))
    (svc,) = of_kind(obs, "service", "s7comm")
    assert svc.subject_ip == "192.168.1.191" and svc.subject_port == 102
    assert svc.data == {"name": "s7comm-plus", "version": "1", "calling_tsap": "0x0600", "called_tsap": "SIMATIC-ROOT-ES"}
    obs, _ = replay(shared_path(P + "s7ident.pcap"))
    (svc,) = of_kind(obs, "service", "s7comm")
    assert svc.data["called_tsap"] == "0x0101 (PG, rack 0, slot 1)"


def test_errors():
    obs, _ = replay(shared_path(P + "snap7.pcap"))
    errs = {(o.data["code"], o.data["name"]) for o in of_kind(obs, "error", "s7comm")}
    assert (0xD209, "User-data error 0xd209") in errs and (0xD20C, "Error 0xd20c") in errs


# --- hand-built frames -------------------------------------------------------------------------

def _tpkt(cotp: bytes) -> bytes:
    return struct.pack(">BBH", 3, 0, 4 + len(cotp)) + cotp


def _dt(payload: bytes, eot: bool = True) -> bytes:
    return _tpkt(bytes([2, 0xF0, 0x80 if eot else 0x00]) + payload)


def _job(fn_param: bytes, ref: int = 1, data: bytes = b"") -> bytes:
    return struct.pack(">BBHHHH", 0x32, 1, 0, ref, len(fn_param), len(data)) + fn_param + data


def _run(segments, state=None):
    return stream(segments, s7comm, sport=1100, dport=102, client="10.0.0.5", server="10.0.0.9", state=state)


def test_pdu_in_cotp_fragments_and_tpkt_across_segments():
    stop = _job(b"\x29\x00\x00\x00\x00\x00\x09P_PROGRAM")
    stream = _dt(stop[:7], eot=False) + _dt(stop[7:])
    out = _run([(True, stream[:5]), (True, stream[5:23]), (True, stream[23:])])
    ops = [o for o in out if o.kind == "operation"]
    assert [(o.data["name"], o.data["category"], o.data["detail"]) for o in ops] == \
        [("PLC Stop", "control", "PI service P_PROGRAM")]


def test_szl_reply_in_two_user_data_fragments():
    rec = lambda i, text: struct.pack(">H", i) + text.ljust(32, b"\0")   # noqa: E731
    body = struct.pack(">HHHH", 0x001C, 0, 34, 3) + rec(1, b"LINE-7 PLC") + rec(2, b"CPU 1516-3") + rec(5, b"S V-ABC123")
    def reply(part: bytes, durn: int, more: bool, ref: int) -> bytes:
        param = bytes([0, 1, 0x12, 8, 0x12, 0x84, 0x01, 1, durn, 1 if more else 0, 0, 0])
        data = bytes([0xFF, 0x09]) + struct.pack(">H", len(part)) + part
        return struct.pack(">BBHHHH", 0x32, 7, 0, ref, len(param), len(data)) + param + data
    first, rest = body[:40], body[40:]
    out = _run([(False, _dt(reply(first, 5, True, 1))), (False, _dt(reply(rest, 5, False, 2)))])
    (ident,) = [o for o in out if o.kind == "identity"]
    assert ident.subject == "src" and ident.src == "10.0.0.9"
    assert ident.data == {"name": "LINE-7 PLC", "module": "CPU 1516-3", "serial": "S V-ABC123",
                          "product": "CPU 1516-3", "vendor": "Siemens"}


def test_signature():
    cr = _tpkt(bytes([17, 0xE0, 0, 0, 0, 1, 0]) + b"\xc1\x02\x01\x00\xc2\x02\x01\x02\xc0\x01\x0a")
    assert s7comm.signature(cr)
    assert s7comm.signature(_dt(_job(b"\xf0\x00\x00\x01\x00\x01\x01\xe0")))
    assert s7comm.signature(_dt(b"\x72\x01\x00\x10" + b"\x31" * 16))
    mms_cr = _tpkt(bytes([17, 0xE0, 0, 0, 0, 1, 0]) + b"\xc1\x02\x00\x01\xc2\x02\x00\x01\xc0\x01\x0a")
    assert not s7comm.signature(mms_cr)                               # ISO TSAPs 0001: MMS, not S7
    assert not s7comm.signature(_dt(b"\x0d\x05\x01\x00"))           # ISO session on DT: MMS
    assert not s7comm.signature(b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x01")
    assert registry.classify("tcp", 1100, 102, _dt(_job(b"\x04\x01"))) is s7comm
