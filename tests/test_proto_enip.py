"""EtherNet/IP + CIP decoder against the icsnpp-enip baselines (enip.log, cip.log, cip_io.log,
cip_identity.log; headerless, columns from the upstream README), tshark on the ITI / openics
captures, and hand-built packets for Unconnected Send, PCCC and discovery over UDP."""
from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from conftest import analyze_shared, shared_path
from support.baselines import agreement, sequence_agreement, zeek_log
from support.decode import of_kind, replay

from plantguard.model import Packet
from plantguard.protocols import enip, registry
from plantguard.protocols.enip import cip as enip_cip
from plantguard.protocols.enip import io as enip_io

B = "baselines/icsnpp-enip/"
P = "pcaps/icsnpp-enip/"
OPENICS = "pcaps/ICS-Security-Tools/openics/"
ITI = "pcaps/ICS-Security-Tools/EthernetIP/"
EXAMPLE = P + "enip_cip_example.pcap"
CASES = [("analyzer.basic", "enip_cip_example.pcap"),
         ("analyzer.multiple_service_request", "multiple_service_packet_cip.pcapng"),
         ("analyzer.set_attr_single_service", "set_attribute_single_service_cip.pcapng")]

CONN = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "is_orig", "source_h", "source_p",
        "destination_h", "destination_p"]
ENIP_COLS = CONN + ["command_code", "command", "length", "session_handle", "status", "sender_context", "options"]
CIP_COLS = CONN + ["cip_sequence_count", "direction", "cip_service_code", "cip_service", "cip_status_code",
                   "cip_status", "cip_extended_status_code", "cip_extended_status", "class_id", "class_name",
                   "instance_id", "attribute_id"]
IO_COLS = CONN + ["connection_id", "sequence_number", "data_length", "io_data"]
IDENTITY_COLS = CONN + ["encapsulation_version", "socket_address", "socket_port", "vendor_id", "vendor_name",
                        "device_type_id", "device_type_name", "product_code", "revision", "device_status",
                        "serial_number", "product_name", "device_state"]


def _h(v: str) -> int | None:
    return None if v == "-" else int(v, 16)


# Where the decoder looks each tapped function up (the tap replaces that module's attribute):
# decode() calls _observe per encapsulation PDU, which calls cip._observe_cip per CIP message;
# decode() calls io._observe_io per implicit I/O packet.
TAPPED_IN = {"_observe": enip, "_observe_cip": enip_cip, "_observe_io": enip_io}


def _tap(rel: str, tap: str):
    obs, seen = replay(shared_path(rel), TAPPED_IN[tap], tap)
    return obs, seen


# --- icsnpp-enip: every encapsulation PDU, CIP message and I/O packet ---------------------------

@pytest.mark.parametrize("test,pcap", CASES)
def test_enip_log_matches_icsnpp(test, pcap):
    rows = zeek_log(shared_path(f"{B}{test}/enip.log"), ENIP_COLS)
    theirs = [(r["source_h"], int(r["source_p"]), r["is_orig"] == "T", _h(r["command_code"]), int(r["length"]),
               _h(r["session_handle"]), r["status"], r["sender_context"], _h(r["options"])) for r in rows]
    _obs, seen = _tap(P + pcap, "_observe")
    ours = [(src, sport, e.request, e.command, e.length, e.session, enip.ENCAP_STATUS.get(e.status),
             "0x" + e.context.hex(), e.options) for _f, _c, src, sport, _d, _dp, e in seen]
    ratio, only_ours, only_theirs = sequence_agreement(ours, theirs)
    assert ratio == 1.0, (only_ours[:3], only_theirs[:3])
    # same commands by name (ours are written without spaces)
    assert all(enip.COMMANDS[_h(r["command_code"])][0] == r["command"].replace(" ", "") for r in rows)


@pytest.mark.parametrize("test,pcap", CASES)
def test_cip_log_matches_icsnpp(test, pcap):
    """Service, status, extended status, class, instance and attribute of every CIP message,
    wrappers (Multiple Service Packet) first, then the services they carry."""
    rows = zeek_log(shared_path(f"{B}{test}/cip.log"), CIP_COLS)
    theirs = [(r["source_h"], r["is_orig"] == "T", int(r["cip_sequence_count"]), r["direction"],
               _h(r["cip_service_code"]), _h(r["cip_status_code"]), _h(r["cip_extended_status_code"]),
               _h(r["class_id"]), _h(r["instance_id"]), _h(r["attribute_id"])) for r in rows]
    _obs, seen = _tap(P + pcap, "_observe_cip")
    ours = [(src, not m.response, m.seq, "response" if m.response else "request", m.service, m.status,
             m.ext_status, m.class_id, m.instance_id, m.attribute_id) for _f, _c, src, _sp, _d, _dp, m in seen]
    ratio, only_ours, only_theirs = sequence_agreement(ours, theirs)
    assert ratio == 1.0, (only_ours[:3], only_theirs[:3])
    # names from the shipped tables agree where the baseline knows the name
    for r in rows:
        if r["class_name"] not in ("-", "unknown"):
            assert enip.class_name(_h(r["class_id"])) == r["class_name"]
        if r["cip_status"] != "-":
            assert enip.status_name(_h(r["cip_status_code"])) == r["cip_status"]


def test_cip_io_log_matches_icsnpp():
    rows = zeek_log(shared_path(f"{B}analyzer.basic/cip_io.log"), IO_COLS)
    theirs = [(r["source_h"], int(r["source_p"]), _h(r["connection_id"]), int(r["sequence_number"]),
               int(r["data_length"]), r["io_data"]) for r in rows]
    obs, seen = _tap(EXAMPLE, "_observe_io")
    ours = [(src, sport, io.connection_id, io.sequence, len(io.data), io.data.hex())
            for _f, _c, src, sport, _d, _dp, io in seen]
    assert sequence_agreement(ours, theirs)[0] == 1.0
    io_ops = [o for o in obs if o.kind == "operation" and o.data["name"] == "Implicit I/O"]
    assert len(io_ops) == len(rows) == 398 and {o.data["category"] for o in io_ops} == {"read"}


def test_cip_identity_log_matches_icsnpp_field_by_field():
    (row,) = zeek_log(shared_path(f"{B}analyzer.basic/cip_identity.log"), IDENTITY_COLS)
    obs, _ = replay(shared_path(EXAMPLE))
    ids = [o for o in of_kind(obs, "identity", "enip") if "ip" in o.data]
    assert len(ids) == 1
    o = ids[0]
    assert (o.src, str(o.sport), o.subject) == (row["source_h"], row["source_p"], "src")
    d = o.data
    assert d["encapsulation_version"] == int(row["encapsulation_version"])
    assert (d["ip"], d["port"]) == (row["socket_address"], int(row["socket_port"]))
    assert (d["vendor_id"], d["vendor"]) == (int(row["vendor_id"]), row["vendor_name"])
    assert (d["device_type_id"], d["device_type"]) == (int(row["device_type_id"]), row["device_type_name"])
    assert d["product_code"] == int(row["product_code"])
    assert d["firmware"] == row["revision"] == "4.3"
    assert d["status"] == row["device_status"]
    assert d["serial"] == row["serial_number"] == "0x00524d8e"
    assert d["product"] == row["product_name"] == "1756-ENBT/A"
    assert int(d["state"], 16) == int(row["device_state"], 16)


def test_pipeline_yields_the_enbt_identity():
    res = analyze_shared(EXAMPLE)
    ids = [o for o in res.observations if o.kind == "identity" and o.proto == "enip"]
    enbt = [o for o in ids if o.data.get("product") == "1756-ENBT/A"]
    assert enbt and enbt[0].subject_ip == "10.1.1.164"
    assert enbt[0].data["firmware"] == "4.3" and enbt[0].data["serial"] == "0x00524d8e"
    assert enbt[0].data["vendor"] == "Rockwell Automation/Allen-Bradley"
    apps = {f.port: f.app for f in res.flows if f.app}
    assert apps.get(44818) == "enip" and apps.get(2222) == "enip"


# --- tshark as second oracle ---------------------------------------------------------------------

def _tshark_services(rel: str, *options: str) -> list[tuple[int, int]]:
    if not shutil.which("tshark"):
        pytest.skip("tshark not installed")
    out = subprocess.run(["tshark", "-r", str(shared_path(rel)), *options, "-Y", "cip", "-T", "fields",
                          "-e", "frame.number", "-e", "cip.sc"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        frame, codes = line.split("\t")
        rows.extend((int(frame), int(c, 16) & 0x7F) for c in codes.split(","))
    return rows


@pytest.mark.parametrize("rel,options", [
    (OPENICS + "EIP-RebootorRestart.pcap", ()), (OPENICS + "EIP-SoftwareUpload.pcap", ()),
    (OPENICS + "EIP-IPAddressChangeAttempt.pcap", ()), (OPENICS + "EIP-FirmwareChangeFailure.pcap", ()),
    (OPENICS + "EIP-LockPLCAttempt.pcap", ()), (OPENICS + "EIP-ChangeTimeAttempt.pcap", ()),
    # no SYN in this capture: tshark needs telling which side speaks EtherNet/IP
    (OPENICS + "EIP-ControlProtocolChangeAttempt.pcap", ("-d", "tcp.port==1102,enip")),
    (ITI + "cip-multiple-2.pcap", ()), (ITI + "cip_start_plc.pcap", ()), (ITI + "cip_unlock_cpu.pcap", ()),
])
def test_every_cip_service_agrees_with_tshark(rel, options):
    _obs, seen = _tap(rel, "_observe_cip")
    ours = [(f, m.service) for f, *_rest, m in seen]
    ratio, only_ours, only_tshark = agreement(ours, _tshark_services(rel, *options))
    assert ratio == 1.0 and ours, (list(only_ours.items())[:3], list(only_tshark.items())[:3])


def _identities(rel: str) -> list[dict]:
    obs, _ = replay(shared_path(rel))
    return [o.data for o in of_kind(obs, "identity", "enip")]


def test_get_attributes_all_identity_of_the_controller_agrees_with_tshark():
    """tshark-derived identity_evidence.json: 1756-L61/B LOGIX5561, vendor 0x0001, rev 16.20."""
    for rel in ("EIP-RebootorRestart.pcap", "EIP-SoftwareUpload.pcap"):
        l61 = [d for d in _identities(OPENICS + rel) if d.get("product") == "1756-L61/B LOGIX5561"]
        assert l61, rel
        assert {(d["vendor_id"], d["firmware"], d["device_type"]) for d in l61} == \
            {(1, "16.20", "Programmable Logic Controller")}
        assert all(d.get("route") == "port 1, link 0" for d in l61 if "route" in d)


def test_routed_identities_of_a_chassis():
    ids = _identities(OPENICS + "EIP-IPAddressChangeAttempt.pcap")
    products = {(d.get("product"), d.get("vendor_id")) for d in ids}
    # the three names and both vendor ids tshark lists for this capture
    assert {("MVI56 ProSoft Technology, Inc.", 0x0135), ("1756-ENBT/A", 1), ("1756-L61/B LOGIX5561", 1)} <= products
    assert any(d.get("route", "").startswith("port 1, link") for d in ids)
    enbt = [d for d in ids if d.get("product") == "1756-ENBT/A" and "ip" in d]   # ListIdentity over UDP
    assert enbt and enbt[0]["firmware"] == "4.7"     # revision 1031 = 0x0407


def test_list_identity_in_the_iti_capture():
    ids = _identities(ITI + "enip_test.pcap")
    assert [(d["product"], d["vendor_id"], d["product_code"], d["firmware"]) for d in ids] == \
        [("1756-ENBT/A", 1, 58, "4.3")]


# --- categories a defender needs ----------------------------------------------------------------

def _ops(rel: str) -> list:
    obs, _ = replay(shared_path(rel))
    return [o for o in obs if o.kind == "operation" and o.proto == "enip"]


@pytest.mark.parametrize("rel,name,category", [
    (ITI + "cip_start_plc.pcap", "Start", "control"),
    (ITI + "cip_stop_plc.pcap", "Stop", "control"),
    (ITI + "cip_unlock_cpu.pcap", "Controller Service 0x4C", "control"),
    (OPENICS + "EIP-RemoteModeChangeAttempt.pcap", "Stop", "control"),
    (OPENICS + "EIP-FirmwareChange.pcap", "Update Transfer", "firmware"),
    (OPENICS + "EIP-FirmwareChange.pcap", "Reset", "control"),
    (OPENICS + "EIP-ChangeDateAttempt.pcap", "Set Attribute List", "config"),
    (OPENICS + "EIP-ChangePortConfigurationAttempt.pcap", "Set Attribute Single", "config"),
    (OPENICS + "EIP-RebootorRestart.pcap", "Create", "program"),
    (OPENICS + "EIP-SoftwareUpload.pcap", "Forward Open", "other"),
    (EXAMPLE, "Get Attribute List", "read"),
    (EXAMPLE, "ListIdentity", "diagnostic"),
])
def test_operation_categories(rel, name, category):
    ops = [o for o in _ops(rel) if o.data["name"] == name]
    assert ops and {o.data["category"] for o in ops} == {category}
    assert all(o.subject == "dst" and isinstance(o.data["code"], int) for o in ops)


def test_details_say_what_was_touched():
    ops = _ops(OPENICS + "EIP-ChangePortConfigurationAttempt.pcap")
    sets = [o.data["detail"] for o in ops if o.data["name"] == "Set Attribute Single"]
    assert sets == ["class 0xf6 (Ethernet Link) instance 0x01 attribute 0x06; sets Ethernet link attributes"]
    fw = [o for o in _ops(OPENICS + "EIP-FirmwareChange.pcap") if o.data["category"] == "firmware"]
    assert sum(1 for _ in fw) == 5245


def test_errors_carry_the_general_status():
    obs, _ = replay(shared_path(OPENICS + "EIP-IPAddressChangeAttempt.pcap"))
    errs = of_kind(obs, "error", "enip")
    assert {(o.data["code"], o.data["name"]) for o in errs} >= {(0x05, "Path destination unknown"),
                                                               (0x01, "Connection failure")}
    assert all(o.subject == "src" for o in errs)


# --- hand-built packets ----------------------------------------------------------------------

def _encap(command: int, data: bytes = b"", session: int = 0x1234, status: int = 0, ctx: bytes = b"ctx00001") -> bytes:
    return struct.pack("<HHII8sI", command, len(data), session, status, ctx, 0) + data


def _rr(cip: bytes) -> bytes:
    """SendRRData: interface handle, timeout, null address item + unconnected data item."""
    return _encap(0x6F, struct.pack("<IHH", 0, 5, 2) + struct.pack("<HH", 0, 0)
                  + struct.pack("<HH", 0xB2, len(cip)) + cip)


def _run(segments, l4="tcp", sport=50000, dport=44818, state=None):
    state = {} if state is None else state
    seq = {True: 100, False: 7000}
    out = []
    for frame, (from_client, payload) in enumerate(segments, 1):
        src, dst = ("10.0.0.5", "10.0.0.9") if from_client else ("10.0.0.9", "10.0.0.5")
        sp, dp = (sport, dport) if from_client else (dport, sport)
        pkt = Packet("t", frame, float(frame), payload, src=src, dst=dst, l4=l4, sport=sp, dport=dp,
                     seq=seq[from_client], from_client=from_client, state=state)
        seq[from_client] += len(payload)
        out.extend(enip.decode(pkt))
    return out


IDENTITY_BODY = struct.pack("<HHHBBHI", 1, 14, 54, 20, 11, 0x3060, 0xC0FFEE) + bytes([7]) + b"L85E/B "


def test_unconnected_send_is_unwrapped_and_its_reply_gives_a_routed_identity():
    inner = bytes([0x01, 0x02, 0x20, 0x01, 0x24, 0x01])                 # Get_Attributes_All Identity/1
    route = bytes([0x01, 0x03])                                          # port 1 (backplane), slot 3
    ucs = bytes([0x52, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0A, 0xF0]) + struct.pack("<H", len(inner)) + inner \
        + bytes([len(route) // 2, 0]) + route
    reply = bytes([0x81, 0x00, 0x00, 0x00]) + IDENTITY_BODY
    out = _run([(True, _rr(ucs)), (False, _rr(reply))])
    ops = [o for o in out if o.kind == "operation"]
    assert [(o.data["code"], o.data["category"]) for o in ops] == [(0x01, "read")]
    assert ops[0].data["detail"].endswith("routed via port 1, link 3")
    ident = [o for o in out if o.kind == "identity"]
    assert len(ident) == 1 and ident[0].subject == "src"
    assert ident[0].data == {"vendor_id": 1, "device_type_id": 14, "vendor": "Rockwell Automation/Allen-Bradley",
                             "device_type": "Programmable Logic Controller", "product_code": 54,
                             "firmware": "20.11", "status": "0x3060", "serial": "0x00c0ffee",
                             "product": "L85E/B", "route": "port 1, link 3"}


def test_multiple_service_packet_each_inner_service_counts_once():
    a = bytes([0x4C, 0x03, 0x91, 0x03]) + b"Tag\x00" + b"\x01\x00"                          # Read Tag "Tag"
    b = bytes([0x4D, 0x03, 0x91, 0x03]) + b"Tag\x00" + b"\xc4\x00\x01\x00\x2a\x00\x00\x00"  # Write DINT 42
    offsets = struct.pack("<HHH", 2, 6, 6 + len(a))
    msp = bytes([0x0A, 0x02, 0x20, 0x02, 0x24, 0x01]) + offsets + a + b
    out = _run([(True, _rr(msp))])
    ops = [(o.data["name"], o.data["category"], o.data["detail"]) for o in out if o.kind == "operation"]
    assert ops == [("Read Tag", "read", "tag Tag"), ("Write Tag", "write", "tag Tag")]


@pytest.mark.parametrize("cmd,fnc,name,category", [(0x0F, 0x80, "PCCC Change Mode", "control"),
                                                    (0x0F, 0xAA, "PCCC Protected Typed Logical Write (3 address fields)", "write"),
                                                    (0x0F, 0xA2, "PCCC Protected Typed Logical Read (3 address fields)", "read"),
                                                    (0x0F, 0x11, "PCCC Get Edit Resource", "program")])
def test_pccc_inside_execute_pccc(cmd, fnc, name, category):
    requestor = bytes([7]) + struct.pack("<HI", 1, 0x1234)
    pccc = bytes([cmd, 0, 0x01, 0x00, fnc, 0x02])
    msg = bytes([0x4B, 0x02, 0x20, 0x67, 0x24, 0x01]) + requestor + pccc
    op = [o for o in _run([(True, _rr(msg))]) if o.kind == "operation"][0]
    assert (op.data["name"], op.data["category"]) == (name, category)


def test_list_identity_over_udp_and_pdus_across_segments():
    item = struct.pack("<H", 1) + struct.pack(">HH4s8s", 2, 44818, bytes([10, 0, 0, 9]), b"\0" * 8) + IDENTITY_BODY + b"\x03"
    reply = _encap(0x63, struct.pack("<H", 1) + struct.pack("<HH", 0x0C, len(item)) + item)
    out = _run([(True, _encap(0x63)), (False, reply)], l4="udp", sport=2000)
    ident = [o.data for o in out if o.kind == "identity"]
    assert ident and ident[0]["ip"] == "10.0.0.9" and ident[0]["state"] == "0x03" and ident[0]["firmware"] == "20.11"
    # the same reply over TCP in three pieces, after a register session
    out = _run([(True, _encap(0x65, b"\x01\x00\x00\x00")), (False, reply[:10]), (False, reply[10:40]),
                (False, reply[40:])])
    assert [o.data["product"] for o in out if o.kind == "identity"] == ["L85E/B"]


def test_failed_command_is_an_error():
    out = _run([(True, _encap(0x6F, b"")), (False, _encap(0x6F, b"", status=0x64))])
    err = [o for o in out if o.kind == "error"][0]
    assert (err.data["code"], err.data["name"], err.subject) == (0x64, "Invalid session handle", "src")


def test_signature():
    assert enip.signature(_encap(0x63)) and enip.signature(_encap(0x65, b"\x01\x00\x00\x00"))
    assert enip.signature(_rr(b"\x0e\x02\x20\x01\x24\x01"))
    assert not enip.signature(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\0" * 20)
    assert not enip.signature(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not enip.signature(_encap(0x63)[:20])
    io = struct.pack("<HHHII", 2, 0x8002, 8, 0x4B0603, 7) + struct.pack("<HH", 0xB1, 2) + b"\x01\x02"
    assert enip.signature(io) and registry.classify("udp", 2222, 2222, io) is enip
    assert not enip.signature(io[:-1])


def test_shipped_tables_say_where_they_come_from():
    from importlib import resources
    for name in ("cip_vendors.csv", "cip_device_types.csv", "cip_status.csv", "cip_classes.csv"):
        head = resources.files("plantguard.data").joinpath(name).read_text(encoding="utf-8").splitlines()[:3]
        assert head[0].startswith("#") and "tools/build_data/cip_tables.py" in head[0]
        assert "tshark -G values" in head[1]
    rows = enip._table("cip_vendors.csv")
    assert len(rows) > 1000 and rows[1] == "Rockwell Automation/Allen-Bradley" and rows[0x0135] == "Prosoft Technology"
    assert enip.device_type_name(12) == "Communications Adapter"
