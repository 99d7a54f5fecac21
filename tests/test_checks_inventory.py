"""inventory.unknown-asset and inventory.unidentified on real captures (the icsnpp cip_identity
log as the identity oracle) and hand-built assets."""
from __future__ import annotations

from conftest import analyze_shared, shared_path
from support.checks import asset, fails, flow, passes, result, run, site

MB1 = "pcaps/ICS-Security-Tools/ModbusTCP/modbus_test_data_part1.pcap"
ENIP = "pcaps/icsnpp-enip/enip_cip_example.pcap"

DECLARED = """\
zones:
  - {name: control, kind: ot-control, networks: [10.0.0.0/24]}
assets:
ASSETS
"""


def test_undeclared_devices_on_real_capture(tmp_path):
    s = site(tmp_path, DECLARED.replace("ASSETS", "  - {ip: 10.0.0.3, name: PLC-3, role: plc}"))
    findings, reason = run("inventory.unknown-asset", analyze_shared(MB1), s)
    assert reason is None
    bad = {f.assets[0]: f for f in fails(findings)}
    # 10.0.0.8 and 10.0.0.9 share one MAC address, so they are one device keyed 10.0.0.8
    assert set(bad) == {"10.0.0.8", "10.0.0.57"}
    f = bad["10.0.0.57"]
    assert "in zone control is not in the declared inventory" in f.title and f.extra["zone"] == "control"
    assert f.severity == "high"                       # an OT device (it speaks Modbus)
    assert f.evidence and f.evidence[0].frame == 1 and "first seen" in f.evidence[0].detail
    [p] = passes(findings)
    assert p.assets == ["10.0.0.3"] and p.extra["matched"] == 1


def test_declared_inventory_passes_and_lists_the_unseen(tmp_path):
    s = site(tmp_path, DECLARED.replace("ASSETS", "  - {ip: 10.0.0.3}\n  - {ip: 10.0.0.9}\n  - {ip: 10.0.0.57}\n"
                                                  "  - {ip: 10.0.0.99, name: spare-plc}"))
    findings, _ = run("inventory.unknown-asset", analyze_shared(MB1), s)
    [p] = findings
    assert p.status == "pass" and p.extra["matched"] == 3 and p.extra["declared_not_seen"] == ["spare-plc"]


def test_declared_by_mac(tmp_path):
    s = site(tmp_path, DECLARED.replace("ASSETS", "  - {mac: '00:80:f4:00:00:10'}"))
    a = asset("10.0.0.20", "plc", mac="00:80:f4:00:00:10")
    b = asset("10.0.0.21", "it-host", mac="00:80:f4:00:00:11")
    findings, _ = run("inventory.unknown-asset", result([], [flow("10.0.0.21", "10.0.0.20", 502, "modbus")]), s, assets=[a, b])
    [f] = fails(findings)
    assert f.assets == ["10.0.0.21"] and f.severity == "high"   # in an OT zone


def test_unknown_asset_needs_declared_assets(tmp_path):
    s = site(tmp_path, "zones:\n  - {name: c, kind: ot-control, networks: [10.0.0.0/24]}\n")
    _, reason = run("inventory.unknown-asset", analyze_shared(MB1), s)
    assert "declares no assets" in reason


def test_identified_device_matches_icsnpp_cip_identity():
    """The pass lists the adapter with the vendor, product and revision in cip_identity.log."""
    base = shared_path("baselines/icsnpp-enip/analyzer.basic/cip_identity.log").read_text().splitlines()
    row = next(ln.split("\t") for ln in base if ln and not ln.startswith("#"))
    # columns (ORACLE_MAP notes): ... vendor_name [15], product_code [18], revision [19], product_name [22]
    host, vendor, revision, product = row[12], row[15], row[19], row[22]
    findings, _ = run("inventory.unidentified", analyze_shared(ENIP))
    [p] = passes(findings)
    dev = next(d for d in p.extra["devices"] if d["asset"] == host)
    assert (dev["vendor"], dev["product"], dev["firmware"]) == (vendor, product, revision)


def test_unidentified_controllers_on_real_capture():
    findings, _ = run("inventory.unidentified", analyze_shared(MB1))
    bad = {f.assets[0]: f for f in fails(findings)}
    assert set(bad) == {"10.0.0.3", "10.0.0.8", "10.0.0.57"}
    assert "product is unknown" in bad["10.0.0.3"].title and bad["10.0.0.3"].severity == "low"
    assert bad["10.0.0.3"].extra["protocols"] == ["modbus"]


def test_declared_product_counts_as_identified():
    a = asset("10.0.0.3", "plc")
    a.declared = {"ip": "10.0.0.3", "vendor": "Wingpath", "product": "ModSim"}
    findings, _ = run("inventory.unidentified", result([], [flow("10.0.0.9", "10.0.0.3", 502, "modbus")]), assets=[a])
    assert [f.status for f in findings] == ["pass"]


def test_no_industrial_server_is_not_run():
    _, reason = run("inventory.unidentified", analyze_shared("pcaps/zeek/ftp/ipv4.pcap"))
    assert "no device served an industrial protocol" in reason
