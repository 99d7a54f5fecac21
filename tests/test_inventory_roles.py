"""Role inference from the fingerprints: the five wrong roles of the issue (a phone whose
User-Agent says "CPU iPhone OS", a Moxa MGate that says "Modbus gateway", an OPC UA server, an
office laptop that wrote once to a PLC, a sensor speaking MQTT over TLS) and the demo plant, through
infer_role and through build_assets."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from plantguard.inventory.asset import Asset, Service
from plantguard.inventory.build import build_assets
from plantguard.inventory.roles import infer_role
from plantguard.model import AnalysisResult, Flow, Observation

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")


def flow(client, server, port, app=None, ops=None, cmac="02:00:00:00:00:01", smac="02:00:00:00:00:02",
         packets=10, l4="tcp"):
    return Flow(l4, client, server, 40000, port, None, cmac, smac, app, packets, packets * 60,
                packets // 2, packets * 30, 1.0, 2.0, "cap.pcap", 1, dict(ops or {}))


def obs(kind, proto, src, dst=None, src_mac=None, **data):
    return Observation(kind, proto, "cap.pcap", 1, 1.5, src, dst, src_mac, None, "tcp", 0, 0, None, "src", data)


def by_key(assets):
    return {a.key: a for a in assets}


def role_of(asset, client_ops=(), server_ops=(), client_apps=(), server_apps=(), hints=(), n_ctl=0, **kw):
    return infer_role(asset, Counter(dict(client_ops)), Counter(dict(server_ops)), set(client_apps),
                      set(server_apps), list(hints), n_ctl, **kw)


# -- 1. a User-Agent is a browser fact, not a device identity ------------------------------------
def test_a_phone_whose_user_agent_says_cpu_is_no_plc():
    r = AnalysisResult(flows=[flow("10.20.0.88", "10.20.0.10", 80, app="http",
                                   cmac="f0:18:98:00:00:01", smac="00:14:22:00:00:10")],
                       observations=[obs("identity", "http", "10.20.0.88", description=IPHONE, user_agent=IPHONE)])
    phone = by_key(build_assets(r))["10.20.0.88"]
    assert phone.role == "it-host", phone.role_reasons
    assert "user-agent-mobile" in phone.role_reasons[0]
    assert phone.identity["device_class"] == "phone"
    assert not any("plc" in why for why in phone.role_reasons)


@pytest.mark.parametrize("ua", [IPHONE, "SIMATIC S7-1500 CPU 1516-3 PN/DP Modbus gateway", "Modicon M580 PLC"])
def test_no_user_agent_makes_an_ot_role(ua):
    a = Asset(ip="10.0.0.5", protocols={"http"})
    a.identity = {"description": ua, "user_agent": ua, "sources": ["http"]}
    role, why = role_of(a, client_apps={"http"})
    assert role in ("it-host", "workstation"), (role, why)


# -- 2. a Moxa MGate is a gateway (SNMP sysDescr, Telnet banner) ---------------------------------
def test_moxa_mgate_from_snmp_and_telnet_is_a_gateway_with_its_product():
    banner = "Model name       : MGate MB3180\r\nFirmware version : 2.2 Build 18122811\r\nlogin: "
    r = AnalysisResult(
        flows=[flow("10.10.1.20", "10.10.2.5", 161, app="snmp", l4="udp", smac="00:90:e8:6c:2d:11"),
               flow("10.10.1.50", "10.10.2.5", 23, app="telnet", smac="00:90:e8:6c:2d:11")],
        observations=[obs("identity", "snmp", "10.10.2.5", "10.10.1.20", vendor="Moxa",
                          description="Moxa MGate MB3180 Series, Firmware V2.2 Build 18122811"),
                      Observation("service", "telnet", "cap.pcap", 2, 2.0, "10.10.2.5", "10.10.1.50", None, None,
                                  "tcp", 23, 40000, None, "src", {"name": "telnet", "banner": banner})])
    gw = by_key(build_assets(r))["10.10.2.5"]
    assert gw.role == "gateway", gw.role_reasons
    assert "moxa-mgate" in gw.role_reasons[0]
    assert gw.identity["product"] == "MGate MB3180" and gw.identity["family"] == "MGate"
    assert gw.identity["fingerprints"]["product"] == "moxa-mgate"


def test_a_gateway_that_only_says_modbus_gateway():
    a = Asset(ip="10.10.2.6", protocols={"snmp", "telnet"})
    a.identity = {"description": "Modbus TCP to RTU gateway, serial 2 ports", "sources": ["snmp"]}
    a.services[("tcp", 23)] = Service("tcp", 23, "telnet", "Serial to Ethernet gateway\r\nlogin:")
    role, why = role_of(a, server_apps={"snmp", "telnet"})
    assert role == "gateway", why


def test_the_device_says_it_identity_values_are_never_overwritten():
    a = Asset(ip="10.10.2.5")
    a.identity = {"description": "Moxa MGate MB3180 Series", "product": "MB3180 (as the device says)",
                  "sources": ["snmp"]}
    role_of(a)
    assert a.identity["product"] == "MB3180 (as the device says)" and a.identity["family"] == "MGate"
    assert a.identity["fingerprints"] == {"vendor": "moxa-mgate", "family": "moxa-mgate"}


# -- 3. an OPC UA server is a gateway only with gateway evidence ---------------------------------
def test_opc_ua_server_is_a_scada_server_not_a_gateway():
    r = AnalysisResult(flows=[flow("10.0.0.7", "10.0.0.8", 4840, app="opcua", ops={"read": 40})])
    a = by_key(build_assets(r))
    assert a["10.0.0.8"].role == "scada-server", a["10.0.0.8"].role_reasons
    assert a["10.0.0.7"].role == "hmi", a["10.0.0.7"].role_reasons


def test_opc_ua_server_that_reads_field_devices_is_a_gateway():
    r = AnalysisResult(flows=[flow("10.0.0.7", "10.0.0.8", 4840, app="opcua"),
                              flow("10.0.0.8", "10.0.0.9", 502, app="modbus", ops={"read": 50},
                                   cmac="02:00:00:00:00:02", smac="02:00:00:00:00:03")])
    gw = by_key(build_assets(r))["10.0.0.8"]
    assert gw.role == "gateway" and "opcua-gateway" in gw.role_reasons[0], gw.role_reasons


def test_a_plc_with_a_built_in_opc_ua_server_stays_a_plc():
    r = AnalysisResult(flows=[flow("10.0.0.7", "10.0.0.8", 4840, app="opcua"),
                              flow("10.0.0.7", "10.0.0.8", 102, app="s7comm", ops={"read": 5})])
    assert by_key(build_assets(r))["10.0.0.8"].role == "plc"


# -- 4. an office laptop that once wrote to a PLC is no HMI --------------------------------------
def test_office_laptop_that_wrote_once_is_an_it_host():
    r = AnalysisResult(flows=[
        flow("10.20.0.77", "10.20.0.53", 53, app="dns", l4="udp", cmac="3c:d9:2b:71:0e:77", smac="00:14:22:53:00:53"),
        flow("10.20.0.77", "10.10.1.10", 502, app="modbus", ops={"read": 1, "write": 1},
             cmac="3c:d9:2b:71:0e:77", smac="00:80:f4:0b:3a:21")])
    a = by_key(build_assets(r))
    laptop = a["10.20.0.77"]
    assert laptop.role == "it-host", laptop.role_reasons
    assert "occasional-industrial-client" in laptop.role_reasons[0]
    assert a["10.10.1.10"].role == "plc"


def test_a_station_that_polls_is_still_an_hmi_and_one_that_downloads_is_an_ews():
    r = AnalysisResult(flows=[
        flow("10.0.0.20", "10.0.0.10", 502, app="modbus", ops={"read": 900}, cmac="02:00:00:00:00:20"),
        flow("10.0.0.20", "10.0.0.53", 53, app="dns", l4="udp", cmac="02:00:00:00:00:20", smac="02:00:00:00:00:53"),
        flow("10.0.0.50", "10.0.0.11", 102, app="s7comm", ops={"program": 4, "read": 3},
             cmac="02:00:00:00:00:50", smac="02:00:00:00:00:11")])
    a = by_key(build_assets(r))
    assert a["10.0.0.20"].role == "hmi" and "polls-controllers" in a["10.0.0.20"].role_reasons[0]
    assert a["10.0.0.50"].role == "engineering-workstation"


def test_a_visitor_laptop_that_sent_a_stop_is_an_it_host():
    """Apple MAC, a DHCP lease, one S7 STOP: a laptop that strayed (the demo's guest-wifi fault)."""
    r = AnalysisResult(flows=[
        flow("10.30.0.1", "10.30.0.66", 68, app="dhcp", l4="udp", cmac="00:1b:54:3a:10:01", smac="f0:18:98:2a:66:0c"),
        flow("10.30.0.66", "10.10.1.11", 102, app="s7comm", ops={"control": 1}, cmac="f0:18:98:2a:66:0c",
             smac="00:1b:1b:5c:8e:42")])
    assert by_key(build_assets(r))["10.30.0.66"].role == "it-host"


# -- 5. a sensor that speaks MQTT over TLS to the broker's 8883 ----------------------------------
def test_mqtt_over_tls_client_is_a_sensor_with_the_client_ports():
    a = Asset(ip="10.10.2.21", mac="02:00:00:00:00:21", protocols={"tls"})
    role, why = role_of(a, client_apps={"tls"}, client_ports={("tcp", 8883)})
    assert role == "sensor" and "mqtt-client" in why[0], why


def test_iiot_device_that_only_calls_out_over_tls_is_a_sensor():
    """Without the client ports (build.py does not pass them yet): an Advantech device that only
    makes outbound TLS connections and serves nothing."""
    r = AnalysisResult(flows=[flow("10.10.2.21", "10.40.0.10", 8883, app="tls", cmac="00:d0:c9:a1:00:21",
                                   smac="00:14:22:9c:40:10")])
    a = by_key(build_assets(r))
    assert a["10.10.2.21"].role == "sensor", a["10.10.2.21"].role_reasons
    assert a["10.40.0.10"].role == "broker", a["10.40.0.10"].role_reasons


# -- the rest of infer_role ----------------------------------------------------------------------
def test_declared_role_wins():
    a = Asset(ip="10.0.0.5", declared={"role": "historian"})
    assert role_of(a, server_apps={"modbus"}) == ("historian", ["declared in the site file"])


def test_reasons_name_the_fingerprints_and_the_evidence():
    a = Asset(ip="10.0.0.10", mac="00:1d:9c:c5:13:dd", vendor="Rockwell Automation")
    a.peers = {"10.0.0.5"}
    role, why = role_of(a, server_apps={"modbus"})
    assert role == "plc"
    assert why[0] == "serves modbus [fingerprint controller-protocol-server 0.55]"
    assert "[fingerprint plc-maker 0.25]" in why[1] and why[-1].startswith("plc 0.66")


def test_a_protocols_server_role_still_makes_the_role():
    """A protocol declaring server_role (ProtocolSpec) makes its servers that role without a
    fingerprint of its own (docs/development.md: adding a protocol)."""
    a = Asset(ip="10.0.0.2")
    assert role_of(a, server_apps={"dnp3"})[0] == "rtu"
    assert role_of(a, server_apps={"profinet"})[0] == "io-device"


def test_iec_61850_mms_on_tcp_102_is_an_ied_not_a_plc():
    a = Asset(ip="10.101.1.3", mac="00:00:23:06:30:fe", vendor="ABB")
    a.services[("tcp", 102)] = Service("tcp", 102, "s7comm")
    a.peers = {"10.101.1.2"}
    assert role_of(a, server_apps={"s7comm"})[0] == "ied"
    a2 = Asset(ip="10.0.0.11", mac="00:1b:1b:5c:8e:42", vendor="Siemens")
    a2.services[("tcp", 102)] = Service("tcp", 102, "s7comm")
    assert role_of(a2, server_ops={"read": 10}, server_apps={"s7comm"})[0] == "plc"


def test_a_device_with_one_public_address_is_no_router_on_that_alone():
    a = Asset(ip="141.81.0.120", mac="00:1b:1b:33:2b:3f", public=True, is_router=True)
    assert role_of(a, hints=[("router", "its MAC address carries traffic of public addresses")])[0] == "unknown"
    r = Asset(ip=None, mac="00:26:88:e7:8d:81", is_router=True)
    assert role_of(r, hints=[("router", "its MAC address carries traffic of public addresses")])[0] == "router"


# -- the demo plant ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_assets(tmp_path_factory):
    from plantguard.capture.engine import analyze
    from plantguard.demo import build_demo
    pcap, _site = build_demo(tmp_path_factory.mktemp("demo"))
    return by_key(build_assets(analyze([str(pcap)])))


def test_demo_roles_without_the_site_file_match_the_declared_inventory(demo_assets):
    import yaml
    expected = yaml.safe_load((Path(__file__).parent / "data" / "expected_roles.yaml").read_text())
    roles = expected["captures"]["demo"]["roles"]
    wrong = {k: (v, demo_assets[k].role, demo_assets[k].role_reasons[:1]) for k, v in roles.items()
             if demo_assets[k].role != v}
    assert not wrong, wrong
    assert set(roles) == set(demo_assets)
