"""egress.not-allowlisted, egress.internet and zerotrust.unauthenticated-control on real captures
(MQTT to a public broker, Modbus across zones, CIP across VLANs) and hand-built flows."""
from __future__ import annotations

from conftest import analyze_shared
from support.checks import asset, fails, flow, obs, passes, result, run, site

MQTT = "pcaps/zeek/mqtt.pcap"                 # 10.0.1.4 publishes to 198.41.30.241:1883
MB1 = "pcaps/ICS-Security-Tools/ModbusTCP/modbus_test_data_part1.pcap"
CIP_VLAN = "pcaps/icsnpp-enip/set_attribute_single_service_cip.pcapng"

SENSING = """\
zones:
  - {name: sensing, kind: ot-sensing, networks: [10.0.1.0/24]}
  - {name: dmz, kind: dmz, networks: [10.40.0.0/24]}
egress:
  - {zone: sensing, allow: [ALLOW]}
"""


# ---------------------------------------------------------------------------------------------
# egress.not-allowlisted
# ---------------------------------------------------------------------------------------------

def test_egress_to_unlisted_public_broker_on_real_capture(tmp_path):
    findings, reason = run("egress.not-allowlisted", analyze_shared(MQTT), site(tmp_path, SENSING.replace("ALLOW", "10.40.0.10")))
    assert reason is None
    [f] = fails(findings)
    assert f.assets == ["10.0.1.4", "198.41.30.241"] and f.severity == "high"
    assert "(a public address)" in f.title and f.extra["services"] == ["tcp/1883 (mqtt)"]
    assert f.extra["zone"] == "sensing" and len(f.evidence) == 2


def test_egress_to_listed_destination_passes(tmp_path):
    findings, _ = run("egress.not-allowlisted", analyze_shared(MQTT), site(tmp_path, SENSING.replace("ALLOW", "198.41.30.0/24")))
    [p] = findings
    assert p.status == "pass" and p.extra["outbound_flows"] == 2 and p.extra["destinations"] == ["198.41.30.241"]


def test_egress_to_another_zone_is_medium_and_quiet_zone_passes(tmp_path):
    s = site(tmp_path, SENSING.replace("ALLOW", "10.40.0.10") + "  - {zone: dmz, allow: []}\n")
    r = result([], [flow("10.0.1.5", "10.40.0.11", 8883, "tls"), flow("10.0.1.5", "10.0.1.6", 502, "modbus"),
                    flow("10.0.1.5", "10.40.0.10", 8883, "tls")])
    findings, _ = run("egress.not-allowlisted", r, s, assets=[])
    [f] = fails(findings)
    assert f.assets == ["10.0.1.5", "10.40.0.11"] and f.severity == "medium" and "zone dmz" in f.title
    assert any(p.title == "No outbound traffic from deny-all zone dmz was seen" for p in passes(findings))


def test_egress_without_rules_is_not_run(tmp_path):
    _, reason = run("egress.not-allowlisted", analyze_shared(MQTT),
                    site(tmp_path, "zones:\n  - {name: s, kind: ot-sensing, networks: [10.0.1.0/24]}\n"))
    assert reason == "the site file declares no egress rules"


# ---------------------------------------------------------------------------------------------
# egress.internet
# ---------------------------------------------------------------------------------------------

def test_ot_device_talks_to_internet_on_real_capture(tmp_path):
    s = site(tmp_path, SENSING.replace("ALLOW", "10.40.0.10"))
    findings, reason = run("egress.internet", analyze_shared(MQTT), s)
    assert reason is None
    [f] = fails(findings)
    assert f.assets == ["10.0.1.4", "198.41.30.241"] and f.extra["direction"] == "outbound"
    assert f.severity == "high" and f.extra["public_peers"] == ["198.41.30.241"]
    assert "T0883" in f.attack


def test_isolated_ot_devices_pass_on_real_capture():
    findings, reason = run("egress.internet", analyze_shared(MB1))
    assert reason is None
    [p] = findings
    assert p.status == "pass" and p.extra["ot_devices"] == 3


def test_inbound_from_internet_is_critical_and_declared_path_is_reported_apart(tmp_path):
    s = site(tmp_path, "zones:\n  - {name: control, kind: ot-control, networks: [10.10.1.0/24]}\n"
                       "remote_access:\n  - {name: vendor, host: 10.10.1.20, peers: [151.101.0.0/16], mfa: true}\n")
    r = result([], [flow("185.220.101.9", "10.10.1.10", 502, "modbus"), flow("10.10.1.20", "151.101.1.7", 443, "tls")])
    findings, _ = run("egress.internet", r, s, assets=[asset("10.10.1.10", "plc"), asset("10.10.1.20", "gateway")])
    [f] = fails(findings)
    assert f.severity == "critical" and f.extra["direction"] == "inbound" and f.assets[0] == "10.10.1.10"
    [p] = passes(findings)
    assert p.extra["remote_access"] == "vendor" and "with MFA" in p.title


def test_no_ot_device_is_not_run():
    findings, reason = run("egress.internet", analyze_shared("pcaps/zeek/ftp/ipv4.pcap"))
    assert findings == [] and "no OT device" in reason


# ---------------------------------------------------------------------------------------------
# zerotrust.unauthenticated-control
# ---------------------------------------------------------------------------------------------

SEG_SITE = """\
zones:
  - {name: control, kind: ot-control, networks: [10.0.0.0/28]}
  - {name: office, kind: it, networks: [10.0.0.48/28]}
"""


def test_modbus_across_zones_on_real_capture(tmp_path):
    findings, reason = run("zerotrust.unauthenticated-control", analyze_shared(MB1), site(tmp_path, SEG_SITE))
    assert reason is None
    bad = {tuple(f.assets): f for f in fails(findings)}
    assert ("10.0.0.3", "10.0.0.57") in bad and ("10.0.0.8", "10.0.0.57") in bad
    f = bad[("10.0.0.3", "10.0.0.57")]
    assert f.severity == "high" and f.extra["reason"] == "modbus has no authentication"
    assert f.extra["src_zone"] == "office" and f.extra["dst_zone"] == "control"
    assert "outside any conduit" in f.title


def test_allowed_conduit_lowers_severity_and_inside_traffic_passes(tmp_path):
    s = site(tmp_path, SEG_SITE + "conduits:\n  - {from: office, to: control, allow: [modbus]}\n")
    findings, _ = run("zerotrust.unauthenticated-control", analyze_shared(MB1), s)
    f = next(f for f in fails(findings) if f.assets == ["10.0.0.3", "10.0.0.57"])
    assert f.severity == "medium" and f.extra["allowed_by_conduit"] is True
    s_all = site(tmp_path, "zones:\n  - {name: control, kind: ot-control, networks: [10.0.0.0/24]}\n")
    [p] = run("zerotrust.unauthenticated-control", analyze_shared(MB1), s_all)[0]
    assert p.status == "pass" and p.extra["inside_flows"] == 4


def test_cip_across_vlans_on_real_capture(tmp_path):
    s = site(tmp_path, "zones:\n  - {name: hmi, kind: ot-supervisory, networks: [10.100.90.0/24]}\n"
                       "  - {name: cell, kind: ot-control, networks: [10.100.40.0/24]}\n")
    [f] = fails(run("zerotrust.unauthenticated-control", analyze_shared(CIP_VLAN), s)[0])
    assert f.assets == ["10.100.40.11", "10.100.90.51"] and f.extra["protocol"] == "enip"


def test_dnp3_with_secure_authentication_and_opcua_sessions(tmp_path):
    s = site(tmp_path, "zones:\n  - {name: scada, kind: ot-supervisory, networks: [10.10.9.0/24]}\n"
                       "  - {name: field, kind: ot-control, networks: [10.10.1.0/24]}\n")
    r = result([obs("operation", "dnp3", "10.10.9.5", "10.10.1.30", dport=20000, category="auth", name="AUTHENTICATE_REQ"),
                obs("session", "opcua", "10.10.9.5", "10.10.1.40", dport=4840, subject="dst", security_mode="SignAndEncrypt",
                    auth="username"),
                obs("session", "opcua", "10.10.9.6", "10.10.1.40", dport=4840, subject="dst", security_mode="None",
                    auth="anonymous")],
               [flow("10.10.9.5", "10.10.1.30", 20000, "dnp3"), flow("10.10.9.7", "10.10.1.31", 20000, "dnp3"),
                flow("10.10.9.5", "10.10.1.40", 4840, "opcua"), flow("10.10.9.6", "10.10.1.40", 4840, "opcua"),
                flow("10.10.9.8", "10.10.1.40", 4840, "opcua")])
    findings, _ = run("zerotrust.unauthenticated-control", r, s, assets=[])
    bad = {tuple(f.assets): f.extra["reason"] for f in fails(findings)}
    assert bad == {("10.10.1.31", "10.10.9.7"): "DNP3 without Secure Authentication",
                   ("10.10.1.40", "10.10.9.6"): "OPC UA with SecurityMode None"}
    assert {p.extra["protocol"] for p in passes(findings)} == {"dnp3", "opcua"}


def test_no_control_traffic_is_not_run(tmp_path):
    _, reason = run("zerotrust.unauthenticated-control", analyze_shared(MQTT), site(tmp_path, SENSING.replace("ALLOW", "10.40.0.10")))
    assert "no industrial control protocol traffic" in reason


def test_control_traffic_between_unzoned_hosts_is_not_judged(tmp_path):
    s = site(tmp_path, "zones:\n  - {name: other, kind: it, networks: [192.168.0.0/16]}\n")
    findings, reason = run("zerotrust.unauthenticated-control", analyze_shared(MB1), s)
    assert findings == [] and "neither end in a declared zone" in reason
