"""plc.unauthorized-write, plc.unauthorized-program-change and plc.change-outside-window on real
Modbus, DNP3, EtherNet/IP and S7comm captures (tshark as the counting oracle) and hand-built
operations."""
from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import pytest
from conftest import analyze_shared, shared_path
from support.checks import T0, fails, flow, obs, passes, result, run, site

MB1 = "pcaps/ICS-Security-Tools/ModbusTCP/modbus_test_data_part1.pcap"
MB_SITE = """\
site: T
zones:
  - {name: control, kind: ot-control, networks: [10.0.0.0/24]}
engineering_workstations: [10.0.0.9]
"""


def _tshark_modbus_queries(rel: str) -> Counter:
    """(src, dst, function code) -> query count, from tshark."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    out = subprocess.run(["tshark", "-r", str(shared_path(rel)), "-Y", "modbus.request_frame == 0 || mbtcp && !modbus.request_frame",
                          "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "modbus.func_code", "-e", "tcp.dstport"],
                         capture_output=True, text=True, timeout=120).stdout
    c: Counter = Counter()
    for line in out.splitlines():
        src, dst, fc, dport = (line.split("\t") + ["", "", "", ""])[:4]
        if dport == "502" and fc:
            c[(src, dst, int(fc))] += 1
    return c


def test_writes_from_authorised_station_pass_and_others_fail(tmp_path):
    s = site(tmp_path, MB_SITE)
    findings, reason = run("plc.unauthorized-write", analyze_shared(MB1), s)
    assert reason is None
    [bad] = fails(findings)
    assert bad.assets == ["10.0.0.3", "10.0.0.57"] and bad.severity == "high"
    assert "not an authorised engineering station" in bad.title
    assert bad.extra["operations"] == {"Diagnostics: Clear Counters and Diagnostic Register": 2}
    [good] = passes(findings)
    assert good.assets == ["10.0.0.3"] and good.extra["stations"] == ["10.0.0.9"]
    assert good.title.startswith("All 3 writes to 10.0.0.3")
    assert [e.frame for e in good.evidence] == [60, 63, 66]


def test_write_counts_agree_with_tshark(tmp_path):
    q = _tshark_modbus_queries(MB1)
    writes_from_9 = sum(n for (src, dst, fc), n in q.items() if src == "10.0.0.9" and fc in (5, 6, 15, 16))
    diag_from_57 = sum(n for (src, dst, fc), n in q.items() if src == "10.0.0.57" and dst == "10.0.0.3" and fc == 8)
    s = site(tmp_path, MB_SITE)
    w, _ = run("plc.unauthorized-write", analyze_shared(MB1), s)
    p, _ = run("plc.unauthorized-program-change", analyze_shared(MB1), s)
    assert passes(w)[0].extra["events"] == writes_from_9 == 3
    # Modbus diagnostics (FC 8) split into restarts / listen-only (program change) and counter clears (write)
    assert fails(p)[0].extra["events"] + fails(w)[0].extra["events"] == diag_from_57 == 8


def test_program_changes_from_unauthorised_host_on_real_capture(tmp_path):
    findings, _ = run("plc.unauthorized-program-change", analyze_shared(MB1), site(tmp_path, MB_SITE))
    [f] = fails(findings)
    assert f.severity == "critical" and f.assets == ["10.0.0.3", "10.0.0.57"]
    assert f.extra["operations"] == {"Diagnostics: Force Listen Only Mode": 3,
                                     "Diagnostics: Restart Communications Option": 3}
    assert [e.frame for e in f.evidence] == [8, 15]
    assert "x3" in f.evidence[0].detail                # folded repeats are counted, not dropped
    assert "T0858" in f.attack and "SR 2.1" in f.controls["iec62443-3-3"]


def test_without_stations_every_change_is_unverified():
    findings, _ = run("plc.unauthorized-write", analyze_shared(MB1))
    assert not passes(findings)
    assert {tuple(f.assets) for f in findings} == {("10.0.0.3", "10.0.0.57"), ("10.0.0.3", "10.0.0.9")}
    for f in findings:
        assert f.severity == "medium" and "no authorised engineering stations are declared" in f.title
        assert f.extra["authorised_stations_declared"] is False


def test_dnp3_write_and_operate_on_real_captures(tmp_path):
    s = site(tmp_path, "zones:\n  - {name: c, kind: ot-control, networks: [127.0.0.0/8]}\n"
                       "engineering_workstations: [10.9.9.9]\n")
    [w] = fails(run("plc.unauthorized-write", analyze_shared("pcaps/ICS-Security-Tools/openics/DNP3-Write.pcap"), s)[0])
    assert w.extra["protocol"] == "dnp3" and w.extra["operations"] == {"WRITE": 1}
    [so] = fails(run("plc.unauthorized-write", analyze_shared("pcaps/ICS-Security-Tools/openics/DNP3-SelectOperate.pcap"), s)[0])
    assert so.extra["operations"] == {"SELECT": 1, "OPERATE": 1}


def test_enip_firmware_change_on_real_capture(tmp_path):
    """EIP-FirmwareChange: 192.168.10.105 updates the firmware of the controller at .120."""
    s = site(tmp_path, "zones:\n  - {name: c, kind: ot-control, networks: [192.168.10.0/24]}\n"
                       "engineering_workstations: [192.168.10.200]\n")
    findings, _ = run("plc.unauthorized-program-change",
                      analyze_shared("pcaps/ICS-Security-Tools/openics/EIP-FirmwareChange.pcap"), s)
    bad = [f for f in fails(findings) if f.assets == ["192.168.10.120", "192.168.10.105"]]
    assert bad and bad[0].extra["protocol"] == "enip"


def test_enip_set_attribute_is_a_write(tmp_path):
    """EIP-ChangePortConfigurationAttempt: one CIP Set_Attribute_Single (tshark: service 0x10)
    from .105 to the adapter at .121; the capture's other requests are reads."""
    s = site(tmp_path, "zones:\n  - {name: c, kind: ot-control, networks: [192.168.10.0/24]}\n"
                       "engineering_workstations: [192.168.10.200]\n")
    findings, _ = run("plc.unauthorized-write",
                      analyze_shared("pcaps/ICS-Security-Tools/openics/EIP-ChangePortConfigurationAttempt.pcap"), s)
    [f] = fails(findings)
    assert f.assets == ["192.168.10.121", "192.168.10.105"] and f.extra["protocol"] == "enip"
    assert f.extra["events"] == 1


def test_enip_stop_is_a_program_change_and_reads_are_not_writes(tmp_path):
    s = site(tmp_path, "zones:\n  - {name: c, kind: ot-control, networks: [192.168.10.0/24]}\n"
                       "engineering_workstations: [192.168.10.105]\n")
    r = analyze_shared("pcaps/ICS-Security-Tools/openics/EIP-RemoteModeChangeAttempt.pcap")
    findings, _ = run("plc.unauthorized-program-change", r, s)
    [p] = passes(findings)                               # the station is authorised
    assert p.assets == ["192.168.10.121"] and "Stop" in p.extra["operations"]
    w, _ = run("plc.unauthorized-write", analyze_shared("pcaps/ICS-Security-Tools/openics/EIP-IPAddressChangeAttempt.pcap"), s)
    assert [f.status for f in w] == ["pass"] and w[0].title.startswith("No write to a controller")


def test_s7comm_upload_on_real_capture():
    """snap7.pcap: 134.217.61.131 uploads blocks from the S7 PLC at .211 (icsnpp
    s7comm_upload_download.log); without stations it is reported as unverified."""
    findings, _ = run("plc.unauthorized-program-change", analyze_shared("pcaps/icsnpp-s7comm/snap7.pcap"))
    bad = [f for f in fails(findings) if f.assets == ["134.217.61.211", "134.217.61.131"]]
    assert bad and bad[0].extra["protocol"].startswith("s7comm")


def test_no_writes_in_industrial_traffic_passes():
    r = result([obs("operation", "modbus", "10.0.0.9", "10.0.0.3", dport=502, category="read", name="Read Coils")],
               [flow("10.0.0.9", "10.0.0.3", 502, "modbus")])
    findings, reason = run("plc.unauthorized-write", r, assets=[])
    assert reason is None and [f.status for f in findings] == ["pass"]
    assert "No write to a controller was seen in 1 industrial flow" == findings[0].title


def test_no_industrial_traffic_is_not_run():
    findings, reason = run("plc.unauthorized-program-change", result([], [flow("10.0.0.9", "10.0.0.3", 80, "http")]),
                           assets=[])
    assert findings == [] and "no industrial protocol traffic" in reason


def test_evidence_is_capped_but_counted():
    ops = [obs("operation", "modbus", "10.0.0.50", "10.0.0.3", dport=502, frame=i, ts=T0 + i, category="write",
               name="Write Single Register", code=6, detail=f"register {i}") for i in range(1, 101)]
    [f] = run("plc.unauthorized-write", result(ops, [flow("10.0.0.50", "10.0.0.3", 502, "modbus")]), assets=[])[0]
    assert len(f.evidence) == 20 and f.extra["events"] == 100
    d = f.as_dict()
    assert len(d["evidence"]) == 20 and d["detail"]["events"] == 100


WINDOW_SITE = """\
zones:
  - {name: control, kind: ot-control, networks: [10.0.0.0/24]}
engineering_workstations: [10.0.0.9]
maintenance_windows:
  - {name: WIN, days: DAYS, start: "START", hours: 2, zones: [control]}
"""


def test_program_change_outside_window_fails_inside_passes(tmp_path):
    # T0 is Tuesday 2023-11-14 22:13:20 UTC
    op = obs("operation", "modbus", "10.0.0.9", "10.0.0.3", dport=502, category="program", name="download")
    r = result([op], [flow("10.0.0.9", "10.0.0.3", 502, "modbus")])
    outside = site(tmp_path, WINDOW_SITE.replace("DAYS", "[sun]").replace("START", "02:00"))
    [f] = run("plc.change-outside-window", r, outside, assets=[])[0]
    assert f.status == "fail" and f.assets == ["10.0.0.3", "10.0.0.9"] and f.extra["zone"] == "control"
    inside = site(tmp_path, WINDOW_SITE.replace("DAYS", "[tue]").replace("START", "22:00"))
    [p] = run("plc.change-outside-window", r, inside, assets=[])[0]
    assert p.status == "pass" and p.extra["events"] == 1


def test_change_outside_window_needs_windows(tmp_path):
    _, reason = run("plc.change-outside-window", result(), site(tmp_path, MB_SITE), assets=[])
    assert "no maintenance windows" in reason
    _, reason = run("plc.change-outside-window", result(), None, assets=[])
    assert "needs a site file" in reason


# ---------------------------------------------------------------------------------------------
# Without a site file: the probable engineering station, inferred
# ---------------------------------------------------------------------------------------------
EWS, EWS_MAC = "10.10.1.50", "90:e6:ba:84:5e:41"
S7_PLC, MODICON = "10.10.1.11", "10.10.1.10"


def _station_capture(tmp_path):
    """Real engineering sessions from one station to two controllers: the S7 block download of
    s7comm_downloading_block_db1.pcap (192.168.1.10 -> S7-300 .40) and the Unity program traffic
    of modicon_test.pcap (192.168.63.100 -> Modicon .253), readdressed onto one station
    (10.10.1.50, the S7 session's MAC) and two PLCs; then the Digital Bond Modbus capture (MB1),
    where 10.0.0.57 restarts the PLC at 10.0.0.3 and 10.0.0.9 writes to it."""
    from support.packets import pcap_bytes, read_pcap
    from support.trunk import readdressed_frames
    s7 = readdressed_frames(shared_path("pcaps/ICS-Security-Tools/s7/s7comm_downloading_block_db1.pcap"),
                {"192.168.1.10": EWS, "192.168.1.40": S7_PLC}, start=T0)
    modicon = readdressed_frames(shared_path("pcaps/ICS-Security-Tools/modicon/modicon_test.pcap"),
                     {"192.168.63.100": EWS, "192.168.63.253": MODICON}, {"3c:97:0e:91:54:ab": EWS_MAC},
                     start=T0 + 600)
    mb1 = read_pcap(shared_path(MB1))
    mb1 = [(T0 + 1200 + ts - mb1[0][0], f) for ts, f in mb1]
    p = tmp_path / "stations.pcap"
    p.write_bytes(pcap_bytes(s7 + modicon + mb1))
    from plantguard.capture.engine import analyze
    return analyze([str(p)])


def test_without_site_the_station_that_changes_several_controllers_is_one_inferred_finding(tmp_path):
    r = _station_capture(tmp_path)
    findings, _ = run("plc.unauthorized-program-change", r)
    [station] = [f for f in findings if f.extra.get("inferred_station")]
    assert station.status == "fail" and station.severity == "low"
    assert station.assets == [MODICON, S7_PLC, EWS] and station.extra["controllers_changed"] == [MODICON, S7_PLC]
    assert "probably the engineering station (inferred)" in station.title
    assert f"engineering_workstations: [{EWS}]" in station.title and "site file" in station.extra["confirm"]
    assert set(station.extra["protocols"]) == {"modbus", "s7comm"} and station.extra["events"] >= 2
    assert all(e.frame for e in station.evidence)
    # no finding blames the station pair by pair; the restart from 10.0.0.57 (one controller) stays
    assert not [f for f in findings if f.assets[-1:] == [EWS] and not f.extra.get("inferred_station")]
    [other] = [f for f in fails(findings) if f.assets == ["10.0.0.3", "10.0.0.57"]]
    assert other.severity == "medium" and "cannot be verified" in other.title
    assert other.extra["inferred_stations"] == [EWS]
    # the writes of 10.0.0.9 and .57 each reach one controller: unverified, not a station
    w, _ = run("plc.unauthorized-write", r)
    assert not [f for f in w if f.extra.get("inferred_station")]
    assert {tuple(f.assets) for f in fails(w)} == {("10.0.0.3", "10.0.0.57"), ("10.0.0.3", "10.0.0.9")}


def test_with_a_site_file_nothing_is_inferred(tmp_path):
    r = _station_capture(tmp_path)
    zones = "zones:\n  - {name: c, kind: ot-control, networks: [10.10.1.0/24, 10.0.0.0/24]}\n"
    findings, _ = run("plc.unauthorized-program-change", r, site(tmp_path, zones))
    assert not [f for f in findings if f.extra.get("inferred_station") or f.extra.get("inferred_stations")]
    assert {tuple(f.assets) for f in fails(findings)} >= {(MODICON, EWS), (S7_PLC, EWS)}
    findings, _ = run("plc.unauthorized-program-change", r, site(tmp_path, zones + f"engineering_workstations: [{EWS}]\n"))
    assert {tuple(f.assets) for f in passes(findings)} == {(MODICON,), (S7_PLC,)}
    assert [f.assets for f in fails(findings)] == [["10.0.0.3", "10.0.0.57"]]


def _ops_from(src, dsts, category, name, proto="modbus"):
    return [obs("operation", proto, src, d, dport=502, frame=i + 1, category=category, name=name)
            for i, d in enumerate(dsts)]


def test_an_hmi_writing_set_points_to_several_controllers_is_no_station():
    plcs = ["10.0.0.3", "10.0.0.4", "10.0.0.5"]
    r = result(_ops_from("10.0.0.20", plcs, "write", "Write Single Register"),
               [flow("10.0.0.20", p, 502, "modbus") for p in plcs])
    findings, _ = run("plc.unauthorized-write", r, assets=[])
    assert len(fails(findings)) == 3 and not [f for f in findings if f.extra.get("inferred_station")]


def test_a_changer_that_also_talks_to_the_internet_is_no_station():
    plcs = ["10.0.0.3", "10.0.0.4"]
    ops = _ops_from("10.0.0.66", plcs, "program", "download")
    flows = [flow("10.0.0.66", p, 502, "modbus") for p in plcs] + [flow("10.0.0.66", "20.50.2.14", 443, "tls")]
    findings, _ = run("plc.unauthorized-program-change", result(ops, flows), assets=[])
    assert len(fails(findings)) == 2 and not [f for f in findings if f.extra.get("inferred_station")]
    # the same host without the internet traffic is the probable station
    findings, _ = run("plc.unauthorized-program-change", result(ops, flows[:2]), assets=[])
    [f] = findings
    assert f.extra["inferred_station"] == "10.0.0.66" and f.assets == plcs + ["10.0.0.66"]
