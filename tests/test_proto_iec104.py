"""IEC 60870-5-104 decoder. No peer baseline exists, so tshark (when installed) is the oracle:
frame format, U function, ASDU type id, cause of transmission and common address of every APDU
of the four public captures."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import analyze_shared, shared_path
from support.baselines import ratio
from support.decode import deep_observations, frames

from plantguard.protocols import iec104
from plantguard.protocols.base import StreamBuffer

CAPTURES = ["pcaps/ICS-Security-Tools/IEC60870-5-104/090813_diverse.pcap",
            "pcaps/ICS-Security-Tools/IEC60870-5-104/JavaRMI_and_IEC_Misc.pcap",
            "pcaps/ICS-Security-Tools/IEC60870-5-104/TestDissectIec104.pcap",
            "pcaps/ICS-pcap/IEC 60870/IEC104_SQ/IEC104_SQ.pcapng"]
FORMATS = {0: "I", 1: "S", 3: "U"}
U_TYPES = {1: "STARTDT act", 2: "STARTDT con", 4: "STOPDT act", 8: "STOPDT con",
           16: "TESTFR act", 32: "TESTFR con"}


def _tshark_apdus(path) -> dict[int, tuple]:
    fields = ["frame.number", "iec60870_104.type", "iec60870_104.utype", "iec60870_asdu.typeid",
              "iec60870_asdu.causetx", "iec60870_asdu.addr"]
    cmd = ["tshark", "-r", str(path), "-Y", "iec60870_104", "-T", "fields", "-E", "separator=|"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    per_frame = {}
    for line in out.splitlines():
        frame, ftype, utype, tid, cot, ca = line.split("|")

        def ints(s):
            return [int(x, 0) for x in s.split(",") if x]
        per_frame[int(frame)] = (sorted(FORMATS.get(x, "?") for x in ints(ftype)),
                                 sorted(U_TYPES.get(x, "?") for x in ints(utype)),
                                 sorted(ints(tid)), sorted(ints(cot)), sorted(ints(ca)))
    return per_frame


def _our_apdus(path) -> dict[int, tuple]:
    per_frame, buffers = {}, {}
    for frame, _ts, lay in frames(path):
        if lay.l4 != "tcp" or 2404 not in (lay.sport, lay.dport) or not lay.payload:
            continue
        sb = buffers.setdefault((lay.src, lay.sport, lay.dst, lay.dport), StreamBuffer())
        sb.feed(lay.seq, lay.payload)
        apdus = iec104.split_apdus(sb.data)
        if apdus:
            asdus = [a.asdu for a in apdus if a.asdu]
            per_frame[frame] = (sorted(a.format for a in apdus),
                                sorted(a.u_function for a in apdus if a.u_function),
                                sorted(a.type_id for a in asdus), sorted(a.cause for a in asdus),
                                sorted(a.common_address for a in asdus))
    return per_frame


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_apdu_fields_match_tshark():
    total = matched = 0
    for rel in CAPTURES:
        path = shared_path(rel)
        want, got = _tshark_apdus(path), _our_apdus(path)
        for frame, fields in want.items():
            mine = got.get(frame, ([],) * 5)
            for i in range(5):
                total += 1
                matched += mine[i] == fields[i]
        assert not set(got) - set(want), rel   # no APDU where tshark sees none
    assert total > 1500
    assert ratio(matched, total) >= 0.99, (matched, total)


def test_commands_and_their_categories():
    obs = deep_observations(shared_path(CAPTURES[0]))
    ops = [(o.data["name"], o.data["category"]) for o in obs if o.kind == "operation"]
    assert ("C_SC_TA_1", "write") in ops and ("C_SC_NA_1", "write") in ops
    assert ("C_SE_TC_1", "write") in ops and ("C_IC_NA_1", "read") in ops
    # confirmations mirrored back by the controlled station are not operations
    assert all(o.src == "10.0.0.10" and o.dport == 2404 for o in obs if o.kind == "operation")
    detail = [o.data["detail"] for o in obs if o.kind == "operation" and o.data["code"] == 58][0]
    assert detail == "C_SC_TA_1 single command with time tag, COT act, CA 3 IOA 4501"


def test_clock_sync_negative_confirmations_and_common_address():
    obs = deep_observations(shared_path(CAPTURES[2]))
    cats = {(o.data["name"], o.data["category"]) for o in obs if o.kind == "operation"}
    assert {("C_CS_NA_1", "config"), ("C_DC_NA_1", "write"), ("C_IC_NA_1", "read")} <= cats
    errors = {o.data["name"] for o in obs if o.kind == "error"}
    assert "C_SC_NA_1 negative actcon" in errors and "C_DC_NA_1 negative actcon" in errors
    cas = {(o.subject_ip, o.data["common_address"]) for o in obs if o.kind == "identity"}
    assert cas == {("172.27.248.79", 37133)}


def test_pipeline_service_and_flow_operations():
    res = analyze_shared(CAPTURES[1])
    svc = {(o.subject_ip, o.subject_port) for o in res.observations if o.kind == "service"}
    assert svc == {("10.209.13.145", 2404)}
    flows = [f for f in res.flows if f.port == 2404]
    assert flows and all(f.app == "iec104" for f in flows)
    assert sum(f.operations.get("read", 0) for f in flows) > 0


def test_parse_units():
    u = iec104.parse_apdu(bytes.fromhex("680407000000"))
    assert (u.format, u.u_function) == ("U", "STARTDT act")
    s = iec104.parse_apdu(bytes.fromhex("680401000a00"))
    assert (s.format, s.recv_seq) == ("S", 5)
    i = iec104.parse_apdu(bytes.fromhex("680e02000400" "690106006104" "000000" "01"))
    assert i.format == "I" and (i.send_seq, i.recv_seq) == (1, 2)
    assert (i.asdu.type_id, i.asdu.cause, i.asdu.common_address) == (105, 6, 0x0461)
    assert i.asdu.type_name == "C_RP_NA_1"
    assert iec104.signature(bytes.fromhex("680407000000"))
    assert not iec104.signature(b"\x68\x04\x07\x00")         # truncated
    assert not iec104.signature(b"GET / HTTP/1.0\r\n\r\n")


def test_reset_process_is_control_and_resync_after_garbage():
    reset = bytes.fromhex("680e00000000") + bytes([105, 1, 6, 0, 0x0D, 0x91, 0, 0, 0, 1])
    reset = reset[:1] + bytes([len(reset) - 2]) + reset[2:]
    buf = bytearray(b"\x00\x01\x68\x02" + reset)
    apdus = iec104.split_apdus(buf)
    assert [(a.format, a.asdu.type_id, a.asdu.common_address) for a in apdus] == [("I", 105, 37133)]
    assert iec104.COMMANDS[105][0] == "control" and iec104.COMMANDS[103][0] == "config"
