"""Merge rules of the inventory: MAC/IP binding, routers, DHCP renumbering, layer-2 devices;
where each identity key came from, on real captures against tshark."""
import shutil
import subprocess

import pytest
from conftest import analyze_shared, shared_path

from plantguard.inventory.build import build_assets, inferred_zone
from plantguard.model import AnalysisResult, Flow, Observation

PLC_MAC = "00:1d:9c:c5:13:dd"      # Rockwell Automation OUI
HMI_MAC = "00:0e:8c:00:00:01"      # Siemens OUI
ROUTER_MAC = "00:19:07:24:3c:ca"   # Cisco OUI


def flow(client, server, port, cmac=HMI_MAC, smac=PLC_MAC, app=None, ops=None, packets=10, vlan=None):
    return Flow("tcp", client, server, 40000, port, vlan, cmac, smac, app, packets, packets * 60,
                packets // 2, packets * 30, 1.0, 2.0, "cap.pcap", 1, dict(ops or {}))


def obs(kind, proto, src=None, dst=None, subject="src", src_mac=None, **data):
    return Observation(kind, proto, "cap.pcap", 1, 1.5, src, dst, src_mac, None, "tcp", 44818, 40000,
                       None, subject, data)


def by_key(assets):
    return {a.key: a for a in assets}


def test_plc_and_hmi_roles_vendor_and_services():
    r = AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 502, app="modbus", ops={"read": 40})])
    a = by_key(build_assets(r))
    plc, hmi = a["10.0.0.10"], a["10.0.0.5"]
    assert plc.mac == PLC_MAC and plc.vendor == "Rockwell Automation"
    assert plc.role == "plc" and "serves modbus" in plc.role_reasons[0]
    assert [(s.proto, s.port, s.name) for s in plc.services.values()] == [("tcp", 502, "modbus")]
    assert hmi.role == "hmi" and hmi.vendor == "Siemens"
    assert plc.peers == {"10.0.0.5"} and hmi.peers == {"10.0.0.10"}


def test_engineering_workstation_from_program_operations():
    r = AnalysisResult(flows=[flow("10.0.0.7", "10.0.0.10", 102, app="s7comm", ops={"program": 3, "read": 5})])
    assert by_key(build_assets(r))["10.0.0.7"].role == "engineering-workstation"


def test_router_mac_fronts_many_addresses_which_keep_no_mac():
    flows = [flow(f"192.0.2.{i}", "10.0.0.10", 443, cmac=ROUTER_MAC) for i in range(1, 6)]
    assets = build_assets(AnalysisResult(flows=flows))
    a = by_key(assets)
    assert all(a[f"192.0.2.{i}"].mac is None for i in range(1, 6))
    routers = [x for x in assets if x.is_router]
    assert len(routers) == 1 and routers[0].mac == ROUTER_MAC and routers[0].role == "router"


def test_dhcp_renumbered_device_is_one_asset_with_both_addresses():
    flows = [flow("10.0.0.5", "10.0.0.10", 502), flow("10.0.0.6", "10.0.0.10", 502)]
    assets = build_assets(AnalysisResult(flows=flows))
    hmi = [x for x in assets if x.mac == HMI_MAC]
    assert len(hmi) == 1 and hmi[0].ips == {"10.0.0.5", "10.0.0.6"}


def test_layer2_identity_joins_ip_asset_by_mac_and_by_announced_address():
    r = AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 502)], observations=[
        obs("identity", "profinet", src_mac=PLC_MAC, name="plc-1"),
        obs("identity", "lldp", src_mac="00:0e:8c:99:99:99", name="sw-1", ip="10.0.0.5"),
        obs("identity", "lldp", src_mac="00:0e:8c:aa:aa:aa", name="lonely"),
    ])
    a = by_key(build_assets(r))
    assert a["10.0.0.10"].identity["name"] == "plc-1"
    assert a["10.0.0.5"].identity["name"] == "sw-1"
    assert a["00:0e:8c:aa:aa:aa"].ip is None and a["00:0e:8c:aa:aa:aa"].identity["name"] == "lonely"


def test_identity_first_value_wins_and_sources_recorded():
    r = AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 44818)], observations=[
        obs("identity", "enip", src="10.0.0.10", dst="10.0.0.5", product="1756-ENBT/A", firmware="4.3"),
        obs("identity", "snmp", src="10.0.0.10", dst="10.0.0.5", product="other", serial="0x1"),
    ])
    ident = by_key(build_assets(r))["10.0.0.10"].identity
    assert ident["product"] == "1756-ENBT/A" and ident["serial"] == "0x1" and ident["sources"] == ["enip", "snmp"]


def test_multicast_and_broadcast_are_not_assets_and_public_is_internet():
    flows = [flow("10.0.0.5", "224.0.0.251", 5353), flow("10.0.0.5", "10.0.0.255", 137),
             flow("10.0.0.5", "8.8.8.8", 53, smac=ROUTER_MAC)]
    a = by_key(build_assets(AnalysisResult(flows=flows)))
    assert "224.0.0.251" not in a and "10.0.0.255" not in a
    assert a["8.8.8.8"].public and a["8.8.8.8"].zone == "internet" and a["8.8.8.8"].role == "internet-host"


def test_inferred_zone_prefers_vlan_then_subnet():
    r = AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 502, vlan=110)])
    a = by_key(build_assets(r))
    assert a["10.0.0.10"].zone == "vlan-110"
    r = AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 502)])
    assert inferred_zone(by_key(build_assets(r))["10.0.0.10"]) == "10.0.0.0/24"


def test_no_traffic_no_assets():
    assert build_assets(AnalysisResult()) == []


def test_identity_behind_a_route_is_a_chassis_module_not_the_device():
    r = AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 44818)], observations=[
        obs("identity", "enip", src="10.0.0.10", dst="10.0.0.5", product="1756-ENBT/A", firmware="4.3"),
        obs("identity", "enip", src="10.0.0.10", dst="10.0.0.5", product="1756-L61/B LOGIX5561",
            firmware="16.20", route="1/0"),
    ])
    ident = by_key(build_assets(r))["10.0.0.10"].identity
    assert ident["product"] == "1756-ENBT/A" and ident["firmware"] == "4.3"
    assert ident["modules"] == [{"product": "1756-L61/B LOGIX5561", "firmware": "16.20", "route": "1/0"}]


def test_switch_ports_with_one_chassis_id_are_one_switch():
    r = AnalysisResult(observations=[
        obs("identity", "lldp", src_mac="00:0e:8c:ef:75:c9", chassis_id="x208", port_id="port-004",
            role_hint="switch"),
        obs("identity", "lldp", src_mac="00:0e:8c:ef:75:cd", chassis_id="x208", port_id="port-008"),
    ])
    assets = build_assets(r)
    assert len(assets) == 1
    sw = assets[0]
    assert sw.macs == {"00:0e:8c:ef:75:c9", "00:0e:8c:ef:75:cd"} and sw.role == "switch"
    assert sw.identity["name"] == "x208" and sw.identity["ports"] == ["port-004", "port-008"]


def test_router_interfaces_bound_by_arp_keep_one_asset_per_zone():
    flows = [flow(f"192.0.2.{i}", "10.0.0.10", 443, cmac=ROUTER_MAC) for i in range(1, 6)]
    arp = [obs("address", "arp", ip=ip, mac=ROUTER_MAC, source="arp") for ip in ("10.0.0.1", "10.0.1.1")]
    a = by_key(build_assets(AnalysisResult(flows=flows, observations=arp)))
    for ip in ("10.0.0.1", "10.0.1.1"):
        assert a[ip].mac == ROUTER_MAC and a[ip].role == "router"
    assert a["10.0.0.1"].zone != a["10.0.1.1"].zone


def test_lldp_management_address_gives_the_ip_asset_its_mac():
    r = AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.2", 161, smac=None)], observations=[
        obs("identity", "lldp", src_mac="00:0e:8c:a1:22:30", name="sw-1", ip="10.0.0.2")])
    sw = by_key(build_assets(r))["10.0.0.2"]
    assert sw.mac == "00:0e:8c:a1:22:30" and sw.identity["name"] == "sw-1"


def test_textual_product_code_names_the_product():
    r = AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 502)], observations=[
        obs("identity", "modbus", src="10.0.0.10", dst="10.0.0.5", vendor="Schneider Electric",
            product_code="BMX P34 2020", firmware="v3.10")])
    assert by_key(build_assets(r))["10.0.0.10"].identity["product"] == "BMX P34 2020"


# ---------------------------------------------------------------------------------------------
# VLANs on a mirrored router trunk: only frames with a host's own MAC say where it lives
# ---------------------------------------------------------------------------------------------
CTL_MAC, SEN_MAC = "00:0e:8c:00:01:15", "00:90:e8:00:02:20"


def _routed(router_a=ROUTER_MAC, router_b=ROUTER_MAC, packets=20):
    """10.10.1.21 (VLAN 110) polls 10.10.2.20 (VLAN 120) through a router; the mirror sees each
    packet on both VLANs: on 110 the server is behind the router's MAC, on 120 the client is."""
    return [flow("10.10.1.21", "10.10.2.20", 502, cmac=CTL_MAC, smac=router_a, app="modbus", vlan=110,
                 packets=packets),
            flow("10.10.1.21", "10.10.2.20", 502, cmac=router_b, smac=SEN_MAC, app="modbus", vlan=120,
                 packets=packets)]


def test_routed_legs_do_not_put_a_host_on_the_other_vlan():
    assets = build_assets(AnalysisResult(flows=_routed()))
    a = by_key(assets)
    assert a["10.10.1.21"].vlans == {110} and a["10.10.1.21"].mac == CTL_MAC
    assert a["10.10.2.20"].vlans == {120} and a["10.10.2.20"].mac == SEN_MAC
    [router] = [x for x in assets if x.is_router]
    assert router.mac == ROUTER_MAC and router.role == "router" and router.vlans == {110, 120}
    assert "routed traffic" in router.role_reasons[0]


def test_router_mac_per_vlan_resolved_by_arp_bindings():
    r110, r120 = "00:19:07:24:3c:6e", "00:19:07:24:3c:78"
    arp = [obs("address", "arp", ip="10.10.1.1", mac=r110, source="arp"),
           obs("address", "arp", ip="10.10.2.1", mac=r120, source="arp")]
    a = by_key(build_assets(AnalysisResult(flows=_routed(r110, r120), observations=arp)))
    assert a["10.10.1.21"].vlans == {110} and a["10.10.2.20"].vlans == {120}
    assert a["10.10.1.1"].role == a["10.10.2.1"].role == "router"


def test_router_mac_per_vlan_without_bindings_leaves_the_vlan_unknown():
    """Each address is seen as often with its own MAC as with the router's, on two VLANs, and
    nothing tells which is which: no VLAN is claimed, and a note says why."""
    notes = []
    assets = build_assets(AnalysisResult(flows=_routed("00:19:07:24:3c:6e", "00:19:07:24:3c:78")), notes=notes)
    a = by_key(assets)
    assert a["10.10.1.21"].vlans == set() and a["10.10.2.20"].vlans == set()
    assert any("their VLAN is left unknown" in n and "10.10.1.21" in n for n in notes)


def test_local_traffic_breaks_the_tie_for_the_own_mac():
    flows = _routed("00:19:07:24:3c:6e", "00:19:07:24:3c:78") + [
        flow("10.10.1.21", "10.10.1.30", 502, cmac=CTL_MAC, smac="00:0e:8c:00:01:30", vlan=110)]
    a = by_key(build_assets(AnalysisResult(flows=flows)))
    assert a["10.10.1.21"].mac == CTL_MAC and a["10.10.1.21"].vlans == {110}


def test_observations_put_a_host_on_a_vlan_only_from_its_own_frames():
    # an ARP request the control host sent on VLAN 110; a DNS answer naming it, sent on VLAN 20
    arp = Observation("address", "arp", "cap.pcap", 1, 1.0, "10.10.1.21", "10.10.1.1", CTL_MAC, None, "", 0, 0,
                      110, "src", {"ip": "10.10.1.21", "mac": CTL_MAC, "source": "arp"})
    dns = Observation("hostname", "dns", "cap.pcap", 2, 1.0, "10.20.0.53", "10.20.0.7", "00:14:22:53:00:53",
                      None, "udp", 53, 5353, 20, "src", {"name": "plc-gw", "ip": "10.10.1.21"})
    flows = [flow("10.10.1.21", "10.10.1.30", 502, cmac=CTL_MAC, smac="00:0e:8c:00:01:30")]
    a = by_key(build_assets(AnalysisResult(flows=flows, observations=[arp, dns])))
    assert a["10.10.1.21"].vlans == {110} and a["10.10.1.21"].hostnames == {"plc-gw"}


def test_directed_broadcast_to_a_group_mac_is_not_an_asset(tmp_path):
    """10.0.0.127 is the broadcast of a /25: its text does not say so, its frames' MAC does."""
    from plantguard.site import load_site
    flows = [flow("10.0.0.5", "10.0.0.127", 137, smac="ff:ff:ff:ff:ff:ff"),
             flow("10.0.0.5", "10.0.0.10", 502)]
    flows[0].packets_to_server = flows[0].packets
    assert "10.0.0.127" not in by_key(build_assets(AnalysisResult(flows=flows)))
    # without MACs (a raw-IP capture) the site file's networks say it
    bare = [flow("10.0.0.5", "10.0.0.63", 137, cmac=None, smac=None), flow("10.0.0.5", "10.0.0.10", 502)]
    bare[0].packets_to_server = bare[0].packets
    p = tmp_path / "site.yaml"
    p.write_text("zones:\n  - {name: c, kind: ot-control, networks: [10.0.0.0/26]}\n")
    assert "10.0.0.63" in by_key(build_assets(AnalysisResult(flows=bare)))
    assert "10.0.0.63" not in by_key(build_assets(AnalysisResult(flows=bare), load_site(p)))


def test_public_address_is_internet_even_on_an_ot_vlan(tmp_path):
    from plantguard.site import load_site
    p = tmp_path / "site.yaml"
    p.write_text("zones:\n  - {name: sensing, kind: ot-sensing, networks: [10.10.2.0/24], vlans: [120]}\n"
                 "  - {name: plant-public, kind: ot-control, networks: [198.51.100.0/24]}\n")
    flows = [flow("10.10.2.22", "20.50.2.14", 443, cmac=SEN_MAC, smac=ROUTER_MAC, vlan=120),
             flow("10.10.2.22", "198.51.100.7", 502, cmac=SEN_MAC, smac=ROUTER_MAC, vlan=120)]
    a = by_key(build_assets(AnalysisResult(flows=flows), load_site(p)))
    assert a["20.50.2.14"].zone == "internet" and a["20.50.2.14"].vlans == set()
    assert a["10.10.2.22"].zone == "sensing"
    # a network the site file declares does hold a public address
    assert a["198.51.100.7"].zone == "plant-public"
    a = by_key(build_assets(AnalysisResult(flows=flows)))
    assert a["20.50.2.14"].zone == "internet"


def test_declared_name_and_fields_show_in_the_asset_output(tmp_path):
    from plantguard.site import load_site
    p = tmp_path / "site.yaml"
    p.write_text("zones:\n  - {name: c, kind: ot-control, networks: [10.0.0.0/24]}\n"
                 "assets:\n"
                 "  - {ip: 10.0.0.10, name: plc-line1, role: plc, criticality: high, notes: owner Jo}\n"
                 "  - {ip: 10.0.0.6, name: hmi-1, role: hmi}\n")
    r = AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 502, app="modbus"),
                              flow("10.0.0.6", "10.0.0.10", 502, app="modbus")], observations=[
        obs("identity", "modbus", src="10.0.0.10", dst="10.0.0.5", name="CPU-A", vendor="Schneider Electric")])
    a = by_key(build_assets(r, load_site(p)))
    plc = a["10.0.0.10"].as_dict()
    assert plc["declared"] == {"ip": "10.0.0.10", "name": "plc-line1", "role": "plc", "criticality": "high",
                               "notes": "owner Jo"}
    assert plc["identity"]["name"] == "CPU-A"          # the device's own name stays
    # the HMI was renumbered (10.0.0.5 -> .6, one MAC): the declaration of its second address names it
    hmi = [x for x in a.values() if x.mac == HMI_MAC][0].as_dict()
    assert hmi["declared"]["name"] == "hmi-1" and hmi["identity"]["name"] == "hmi-1"
    assert hmi["identity"]["sources"] == ["site file"] and hmi["role"] == "hmi"
    assert hmi["identity_sources"]["name"] == {"via": "site file"}
    assert by_key(build_assets(r))["10.0.0.10"].as_dict()["declared"] is None


def test_every_identity_key_records_its_source():
    r = AnalysisResult(flows=[flow("10.0.0.5", "10.0.0.10", 502)], observations=[
        Observation("identity", "modbus", "a.pcap", 7, 1.5, "10.0.0.10", "10.0.0.5", None, None, "tcp", 502,
                    40000, None, "src", {"model": "BMX P34 2020", "vendor": "Schneider Electric"}),
        Observation("identity", "snmp", "b.pcap", 3, 1.6, "10.0.0.10", "10.0.0.5", None, None, "udp", 161,
                    40000, None, "src", {"vendor": "Other", "location": "Hall 3"}),
    ])
    plc = by_key(build_assets(r))["10.0.0.10"]
    src = plc.identity_sources
    assert src["model"] == {"via": "observation", "proto": "modbus", "capture": "a.pcap", "frame": 7}
    assert src["vendor"]["proto"] == "modbus"                 # the first statement wins, and its source
    assert src["location"] == {"via": "observation", "proto": "snmp", "capture": "b.pcap", "frame": 3}
    assert plc.identity["product"] == "BMX P34 2020"
    assert src["product"] == {"via": "derived", "derived_from": "model", "proto": "modbus", "capture": "a.pcap",
                              "frame": 7}
    assert "field_sources" not in plc.identity                # lent to the fingerprints only
    meta = {"sources", "fingerprints"}
    assert set(plc.identity) - meta == set(src)


def _tshark_first(rel: str, display_filter: str, field: str) -> tuple[int, str, str]:
    """(frame, ip.src, value) of the first frame tshark shows `field` in."""
    if not shutil.which("tshark"):
        pytest.skip("tshark not installed")
    out = subprocess.run(["tshark", "-n", "-r", str(shared_path(rel)), "-Y", display_filter, "-T", "fields",
                          "-E", "occurrence=f", "-e", "frame.number", "-e", "ip.src", "-e", field],
                         capture_output=True, text=True, timeout=120).stdout.splitlines()
    frame, ip, value = out[0].split("\t")
    return int(frame), ip, value


@pytest.mark.parametrize("rel,key,display_filter,field,proto", [
    ("pcaps/icsnpp-s7comm/s7ident.pcap", "order_number", "s7comm.szl.xy11.0001.anz", "s7comm.szl.xy11.0001.anz",
     "s7comm"),
    ("pcaps/icsnpp-s7comm/s7ident.pcap", "serial", "s7comm.szl.001c.0005.serialn", "s7comm.szl.001c.0005.serialn",
     "s7comm"),
    ("pcaps/zeek/snmp/snmpv1_get.pcap", "location", "snmp.get_response_element && snmp.name == 1.3.6.1.2.1.1.6.0",
     "snmp.name", "snmp"),
    ("pcaps/zeek/ftp/ftp-password-pass-command.pcap", "banner", "ftp.response.code == 220", "ftp.response.arg", "ftp"),
    ("pcaps/zeek/mqtt.pcap", "mqtt_client_id", "mqtt.msgtype == 1", "mqtt.clientid", "mqtt"),
])
def test_identity_source_is_the_frame_tshark_shows_the_value_in(rel, key, display_filter, field, proto):
    frame, ip, value = _tshark_first(rel, display_filter, field)
    asset = {a.ip: a for a in build_assets(analyze_shared(rel))}[ip]
    assert asset.identity_sources[key] == {"via": "observation", "proto": proto, "capture": str(shared_path(rel)),
                                           "frame": frame}
    if not field.startswith("snmp."):
        assert asset.identity[key] == value.strip()


def test_identity_sources_in_the_json_contract():
    from plantguard.assess import run_assessment
    contract = run_assessment(analyze_shared("pcaps/icsnpp-s7comm/s7ident.pcap"), None, db=None)
    (plc,) = [a for a in contract["assets"] if a["identity"]]
    assert set(plc["identity"]) - {"sources", "fingerprints"} == set(plc["identity_sources"])
    assert plc["identity_sources"]["serial"]["proto"] == "s7comm" and plc["identity_sources"]["serial"]["frame"] == 13


@pytest.mark.parametrize("identity,family,key", [
    ({"order_number": "6ES7 315-2EH14-0AB0"}, "SIMATIC S7-300", "order_number"),
    ({"order_number": "6ES7 214-1HE30-0XB0"}, "SIMATIC S7-1200", "order_number"),
    ({"order_number": "6ES7 151-8AB01-0AB0", "module": "IM151-8 PN/DP CPU"}, "SIMATIC ET 200S", "order_number"),
    ({"product": "1769-L33ER/A LOGIX5333ER"}, "CompactLogix 5370", "product"),
    ({"product": "1769-L18ER-BB1B"}, "CompactLogix 5370", "product"),
    ({"product": "1769-L36ERMS"}, "Compact GuardLogix 5370", "product"),
    ({"product": "1769-L35E Ethernet Port"}, "CompactLogix", "product"),      # the older L3x: no 5370
    ({"product": "5069-L320ER"}, "CompactLogix 5380", "product"),
    ({"product": "1756-L61/B LOGIX5561"}, "ControlLogix 5560", "product"),
    ({"model": "CPU 315-2 PN/DP"}, "SIMATIC S7-300", "model"),
    ({"description": "Siemens, SIMATIC NET, SCALANCE X212-2, 6GK5 212-2BB00-2AA3, HW: 4"}, "SCALANCE X-200",
     "description"),
    ({"product": "cMT3090", "vendor": "Weintek"}, None, None),
])
def test_family_from_order_number_or_name(identity, family, key):
    from plantguard.knowledge.families import identity_family
    assert identity_family(identity) == ((family, key) if family else None)


@pytest.mark.parametrize("rel,ip,display_filter,field,number,family", [
    ("pcaps/icsnpp-s7comm/s7ident.pcap", "172.17.0.2", "s7comm.szl.xy11.0001.anz", "s7comm.szl.xy11.0001.anz",
     "6ES7 315-2EH14-0AB0", "SIMATIC S7-300"),
    ("pcaps/ICS-Security-Tools/s7/s7comm_reading_plc_status.pcap", "192.168.1.40", "s7comm.szl.xy11.0001.anz",
     "s7comm.szl.xy11.0001.anz", "6ES7 151-8AB01-0AB0", "SIMATIC ET 200S"),
    ("pcaps/ICS-Security-Tools/openics/EIP-RebootorRestart.pcap", "192.168.10.120", "cip.id.product_name",
     "cip.id.product_name", "1756-L61/B LOGIX5561", "ControlLogix 5560"),
    ("pcaps/icsnpp-enip/enip_cip_example.pcap", "10.1.1.164", "enip.lir.name", "enip.lir.name", "1756-ENBT/A",
     "ControlLogix"),
])
def test_family_on_real_captures_from_the_number_tshark_reads(rel, ip, display_filter, field, number, family):
    _frame, src, value = _tshark_first(rel, display_filter, field)
    assert (src, value.strip()) == (ip, number)
    asset = {a.ip: a for a in build_assets(analyze_shared(rel))}[ip]
    assert asset.identity["family"] == family
    key = asset.identity_sources["family"]["derived_from"]
    assert asset.identity[key].strip() == number
    assert asset.identity_sources["family"]["via"] == "derived"


def test_family_of_s7_1200_and_1500_seen_over_s7comm_plus_only():
    for rel, family in (("pcaps/ICS-Security-Tools/s7/S7-1200-Uploading-OB1-TIAV12.pcap", "SIMATIC S7-1200"),
                        ("pcaps/ICS-Security-Tools/s7/S7-1511_db2_var1_HMI.pcap", "SIMATIC S7-1500")):
        (plc,) = [a for a in build_assets(analyze_shared(rel)) if a.identity.get("order_number")]
        assert plc.identity["family"] == family
