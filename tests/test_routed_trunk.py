"""A capture from a mirror port on a router trunk sees each routed packet twice, once per VLAN,
with the router's MAC on one side of each leg. Built from real Modbus/TCP traffic (support/trunk.py):
the inventory files each host on its own VLAN only, reports the router as a router, and
segmentation.vlan-mixing stays quiet on a well-separated plant and fires when a sensing device
really sits on the control VLAN."""
from __future__ import annotations

import pytest
from conftest import shared_path
from support.checks import fails, passes, run, site
from support.trunk import CONTROL, ROUTER_MAC, ROUTER_MACS, SENSING, SITE, SOURCE, misplaced_sensor, routed_trunk

from plantguard.capture.engine import analyze
from plantguard.inventory.build import build_assets


def _analyze(tmp_path, pcap: bytes, name: str):
    p = tmp_path / name
    p.write_bytes(pcap)
    return analyze([str(p)])


@pytest.fixture(scope="module")
def source():
    return shared_path(SOURCE)


TRUNKS = {
    "one router MAC, ARP": dict(router_macs=None, with_arp=True),
    "one router MAC, no ARP": dict(router_macs=None, with_arp=False),
    "a router MAC per VLAN, ARP": dict(router_macs=ROUTER_MACS, with_arp=True),
}


@pytest.mark.parametrize("variant", sorted(TRUNKS))
def test_each_host_is_on_its_own_vlan_and_the_router_is_a_router(tmp_path, source, variant):
    r = _analyze(tmp_path, routed_trunk(source, **TRUNKS[variant]), "trunk.pcap")
    # the mirror saw the conversation twice: once per VLAN
    assert {f.vlan for f in r.flows if f.app == "modbus"} == {110, 120}
    assets = build_assets(r)
    by_ip = {a.ip: a for a in assets if a.ip}
    ctl, sen = by_ip[CONTROL.ip], by_ip[SENSING.ip]
    assert (ctl.mac, ctl.vlans, ctl.zone) == (CONTROL.mac, {110}, "vlan-110")
    assert (sen.mac, sen.vlans, sen.zone) == (SENSING.mac, {120}, "vlan-120")
    assert ctl.vendor == "Dell" and sen.vendor.startswith("Moxa")
    routers = [a for a in assets if a.is_router]
    assert routers and all(a.role == "router" for a in routers)
    assert {m for a in routers for m in a.macs} == set(TRUNKS[variant]["router_macs"].values()
                                                      if TRUNKS[variant]["router_macs"] else [ROUTER_MAC])


@pytest.mark.parametrize("variant", sorted(TRUNKS))
def test_well_separated_plant_has_no_vlan_mixing(tmp_path, source, variant):
    r = _analyze(tmp_path, routed_trunk(source, **TRUNKS[variant]), "trunk.pcap")
    findings, reason = run("segmentation.vlan-mixing", r, site(tmp_path, SITE))
    assert reason is None and fails(findings) == []
    assert {p.extra.get("zone") for p in passes(findings)} >= {"control", "sensing"}
    # without a site file the roles decide: the Moxa module serves Modbus (a controller by role),
    # the Dell host polls it; nothing mixes either
    findings, reason = run("segmentation.vlan-mixing", r)
    assert reason is None and fails(findings) == []


def test_sensing_device_on_the_control_vlan_is_found(tmp_path, source):
    r = _analyze(tmp_path, misplaced_sensor(source), "misplaced.pcap")
    by_ip = {a.ip: a for a in build_assets(r) if a.ip}
    assert by_ip[SENSING.ip].vlans == {110} and by_ip[CONTROL.ip].vlans == {110}
    findings, _ = run("segmentation.vlan-mixing", r, site(tmp_path, SITE))
    [mixed] = [f for f in fails(findings) if f.extra.get("sensing_hosts")]
    assert mixed.extra["vlan"] == 110
    assert mixed.extra["sensing_hosts"] == [SENSING.ip] and mixed.extra["control_hosts"] == [CONTROL.ip]
    [stray] = [f for f in fails(findings) if f.extra.get("zone") == "sensing"]
    assert stray.extra["vlan"] == 110 and stray.assets == [SENSING.ip] and stray.severity == "low"
    assert all(e.frame for e in mixed.evidence)


def test_per_vlan_router_macs_without_arp_claim_no_vlan(tmp_path, source):
    """Both legs look alike (each address as often with its own MAC as with a router's, on two
    VLANs) and no ARP says which MAC is whose: no VLAN is claimed, so nothing can mix."""
    r = _analyze(tmp_path, routed_trunk(source, router_macs=ROUTER_MACS, with_arp=False), "trunk.pcap")
    notes: list[str] = []
    by_ip = {a.ip: a for a in build_assets(r, notes=notes) if a.ip}
    assert by_ip[CONTROL.ip].vlans == set() and by_ip[SENSING.ip].vlans == set()
    assert any("their VLAN is left unknown" in n for n in notes)
    findings, reason = run("segmentation.vlan-mixing", r, site(tmp_path, SITE))
    assert findings == [] and "no host was seen on a VLAN with its own MAC" in reason
