"""segmentation.zone-violation, .it-ot-bridge, .vlan-mixing and .unzoned-host: real captures
placed in zones by a site file written here, and hand-built flows for the VLAN cases."""
from __future__ import annotations

from conftest import analyze_shared
from support.checks import asset, fails, flow, passes, result, run, site

MB1 = "pcaps/ICS-Security-Tools/ModbusTCP/modbus_test_data_part1.pcap"
CIP_VLAN = "pcaps/icsnpp-enip/set_attribute_single_service_cip.pcapng"   # one CIP write on VLAN 90

# 10.0.0.3/.8/.9 are Modbus servers and a master in the control zone; 10.0.0.57 (which restarts
# and clears the PLC at .3) is put in the office zone.
SEG_SITE = """\
site: seg
zones:
  - {name: control, kind: ot-control, networks: [10.0.0.0/28]}
  - {name: office, kind: it, networks: [10.0.0.48/28]}
"""


def test_zone_violation_on_real_capture(tmp_path):
    findings, reason = run("segmentation.zone-violation", analyze_shared(MB1), site(tmp_path, SEG_SITE))
    assert reason is None
    bad = {tuple(f.assets): f for f in fails(findings)}
    assert set(bad) == {("10.0.0.57", "10.0.0.3"), ("10.0.0.57", "10.0.0.8"), ("10.0.0.8", "10.0.0.57")}
    f = bad[("10.0.0.57", "10.0.0.3")]
    assert f.severity == "high" and f.extra["src_zone"] == "office" and f.extra["dst_zone"] == "control"
    assert f.extra["services"] == ["tcp/502", "tcp/502 (modbus)"]
    assert f.extra["packets"] == 36 and f.extra["events"] == 36
    assert [e.frame for e in f.evidence] == [1, 5]
    assert "SR 5.1" in f.controls["iec62443-3-3"] and "SC-7" in f.controls["nist-800-53r5"]


def test_conduit_makes_the_same_traffic_pass(tmp_path):
    s = site(tmp_path, SEG_SITE + "conduits:\n  - {from: office, to: control, allow: [modbus, tcp/502]}\n"
                                  "  - {from: control, to: office, allow: [modbus]}\n")
    findings, _ = run("segmentation.zone-violation", analyze_shared(MB1), s)
    assert not fails(findings)
    titles = [p.title for p in passes(findings)]
    assert any(t.startswith("Traffic office -> control stays within its conduit") for t in titles)
    assert any(t.startswith("All 5 flows between zones are allowed by conduits (1 flow stayed") for t in titles)


def test_it_ot_bridge_on_real_capture(tmp_path):
    findings, _ = run("segmentation.it-ot-bridge", analyze_shared(MB1), site(tmp_path, SEG_SITE))
    pairs = {tuple(f.assets): f for f in fails(findings)}
    assert set(pairs) == {("10.0.0.57", "10.0.0.3"), ("10.0.0.57", "10.0.0.8")}
    f = pairs[("10.0.0.57", "10.0.0.3")]
    assert f.extra["it_zone"] == "office" and f.extra["ot_zone"] == "control"
    assert f.extra["allowed_by_conduit"] is False and f.severity == "high"
    # with a conduit the path is still a bridge, and the finding says the conduit bypasses the DMZ
    s = site(tmp_path, SEG_SITE + "conduits:\n  - {from: office, to: control, allow: [tcp/502]}\n"
                                  "  - {from: control, to: office, allow: [tcp/4446]}\n")
    f2 = {tuple(f.assets): f for f in fails(run("segmentation.it-ot-bridge", analyze_shared(MB1), s)[0])}
    assert f2[("10.0.0.57", "10.0.0.3")].extra["allowed_by_conduit"] is True
    assert "bypasses the DMZ" in f2[("10.0.0.57", "10.0.0.3")].title


def test_it_ot_bridge_passes_through_a_dmz(tmp_path):
    s = site(tmp_path, "zones:\n  - {name: control, kind: ot-control, networks: [10.0.0.0/28]}\n"
                       "  - {name: dmz, kind: dmz, networks: [10.0.0.48/28]}\n")
    findings, _ = run("segmentation.it-ot-bridge", analyze_shared(MB1), s)
    [p] = findings
    assert p.status == "pass" and p.extra["crossing_flows"] == 5


def test_guest_bridge_is_critical_and_dual_homed_host_is_found(tmp_path):
    s = site(tmp_path, "zones:\n  - {name: sensing, kind: ot-sensing, networks: [10.10.2.0/24]}\n"
                       "  - {name: guest, kind: guest, networks: [10.30.0.0/24]}\n"
                       "  - {name: office, kind: it, networks: [10.20.0.0/24]}\n")
    r = result([], [flow("10.30.0.7", "10.10.2.30", 80, "http")])
    dual = asset("10.20.0.9", "workstation", mac="00:11:22:33:44:55", ips=["10.10.2.99"])
    findings, _ = run("segmentation.it-ot-bridge", r, s, assets=[dual])
    guest = next(f for f in findings if f.assets == ["10.30.0.7", "10.10.2.30"])
    assert guest.severity == "critical" and guest.title.startswith("Guest host 10.30.0.7")
    dh = next(f for f in findings if f.extra.get("dual_homed"))
    assert dh.assets == ["10.10.2.99", "10.20.0.9"] and "dual-homed" in dh.title


def test_unzoned_hosts(tmp_path):
    s = site(tmp_path, "zones:\n  - {name: control, kind: ot-control, networks: [10.0.0.0/28]}\n")
    findings, _ = run("segmentation.unzoned-host", analyze_shared(MB1), s)
    [f] = fails(findings)
    assert f.assets == ["10.0.0.57"] and f.extra["network"] == "10.0.0.0/24" and f.severity == "low"
    [p] = run("segmentation.unzoned-host", analyze_shared(MB1), site(tmp_path, SEG_SITE))[0]
    assert p.status == "pass" and p.extra["hosts"] == 4


def test_segmentation_checks_need_a_site():
    for cid in ("segmentation.zone-violation", "segmentation.it-ot-bridge", "segmentation.unzoned-host"):
        findings, reason = run(cid, analyze_shared(MB1))
        assert findings == [] and reason.startswith("needs a site file")


# ---------------------------------------------------------------------------------------------
# VLANs
# ---------------------------------------------------------------------------------------------

VLAN_SITE = """\
zones:
  - {name: sensing, kind: ot-sensing, networks: [10.100.90.0/24], vlans: [90]}
  - {name: control, kind: ot-control, networks: [10.100.40.0/24], vlans: [CONTROL_VLAN]}
"""


def test_vlan_mixing_on_real_capture_declared_and_observed(tmp_path):
    s = site(tmp_path, VLAN_SITE.replace("CONTROL_VLAN", "90"))
    findings, reason = run("segmentation.vlan-mixing", analyze_shared(CIP_VLAN), s)
    assert reason is None
    declared = [f for f in fails(findings) if f.extra.get("source") == "site file"]
    assert len(declared) == 1 and declared[0].extra["vlan"] == 90
    observed = [f for f in fails(findings) if f.extra.get("sensing_hosts")]
    assert observed and observed[0].extra["sensing_hosts"] == ["10.100.90.51"]
    assert observed[0].extra["control_hosts"] == ["10.100.40.11"]
    assert observed[0].evidence[0].frame == 1


def test_zone_on_unexpected_vlan(tmp_path):
    s = site(tmp_path, VLAN_SITE.replace("CONTROL_VLAN", "40"))
    r = result([], [flow("10.100.90.51", "10.100.90.52", 502, "modbus", vlan=90, client_mac="00:00:00:00:00:51",
                         server_mac="00:00:00:00:00:52"),
                    flow("10.100.40.11", "10.100.40.12", 502, "modbus", vlan=90, client_mac="00:00:00:00:00:11",
                         server_mac="00:00:00:00:00:12")])
    findings, _ = run("segmentation.vlan-mixing", r, s, assets=[])
    stray = [f for f in fails(findings) if f.extra.get("zone") == "control"]
    assert stray and stray[0].extra["vlan"] == 90 and stray[0].assets == ["10.100.40.11", "10.100.40.12"]
    assert any(f.status == "fail" and f.extra.get("control_hosts") for f in findings)
    assert any(p.extra.get("zone") == "sensing" for p in passes(findings))


def test_routed_traffic_does_not_put_a_host_on_the_vlan(tmp_path):
    """Frames to 10.100.40.11 on VLAN 90 that carry the router's MAC (which fronts several
    addresses) do not make the control host a member of VLAN 90."""
    s = site(tmp_path, VLAN_SITE.replace("CONTROL_VLAN", "40"))
    router = "00:00:5e:00:01:01"
    r = result([], [flow("10.100.90.51", "10.100.40.11", 502, "modbus", vlan=90, client_mac="00:00:00:00:00:51",
                         server_mac=router),
                    flow("10.100.90.52", "10.100.40.12", 502, "modbus", vlan=90, client_mac="00:00:00:00:00:52",
                         server_mac=router),
                    flow("10.100.40.11", "10.100.40.12", 502, "modbus", vlan=40, client_mac="00:00:00:00:00:11",
                         server_mac="00:00:00:00:00:12")])
    findings, _ = run("segmentation.vlan-mixing", r, s, assets=[])
    assert not fails(findings)
    assert {p.extra.get("zone") for p in passes(findings)} >= {"sensing", "control"}


def test_vlan_mixing_without_site_uses_roles():
    r = result([], [flow("10.1.1.5", "10.1.1.10", 502, "modbus", vlan=7), flow("10.1.1.6", "10.1.1.11", 80, "http", vlan=8)])
    assets = [asset("10.1.1.5", "sensor", vlans=[7]), asset("10.1.1.10", "plc", vlans=[7]),
              asset("10.1.1.6", "sensor", vlans=[8]), asset("10.1.1.11", "hmi", vlans=[8])]
    findings, reason = run("segmentation.vlan-mixing", r, None, assets=assets)
    assert reason is None
    [f] = fails(findings)
    assert f.extra["vlan"] == 7 and "roles inferred" in f.title
    r2 = result([], [flow("10.1.1.6", "10.1.1.11", 80, "http", vlan=8)])
    [p] = run("segmentation.vlan-mixing", r2, None, assets=assets)[0]
    assert p.status == "pass"


def test_vlan_mixing_without_tags_is_not_run(tmp_path):
    findings, reason = run("segmentation.vlan-mixing", analyze_shared(MB1), site(tmp_path, SEG_SITE))
    assert findings == [] and "no 802.1Q VLAN tags" in reason


def test_public_address_is_not_in_the_zone_of_the_vlan_it_was_routed_from(tmp_path):
    """A sensing host reaching the internet: on VLAN 90 the public server sits behind the router,
    not in the sensing zone, so the flow neither stays inside the zone nor crosses to another."""
    s = site(tmp_path, VLAN_SITE.replace("CONTROL_VLAN", "40"))
    r = result([], [flow("10.100.90.51", "20.50.2.14", 443, "tls", vlan=90, client_mac="00:00:00:00:00:51",
                         server_mac="00:00:5e:00:01:01")])
    findings, reason = run("segmentation.zone-violation", r, s)
    assert findings == [] and reason == "no flow had both ends in declared zones"
    from plantguard.inventory.build import build_assets
    assert {a.ip: a.zone for a in build_assets(r, s) if a.ip}["20.50.2.14"] == "internet"
