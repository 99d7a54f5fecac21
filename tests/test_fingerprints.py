"""The fingerprint set (src/plantguard/data/fingerprints/*.yaml) and its loader: every shipped
fingerprint fires on a minimal evidence record and stays silent on a near miss; a bad entry is one
line naming the file and the fingerprint; PLANTGUARD_FINGERPRINTS adds a user's own files; a
User-Agent can never make a controller."""
from __future__ import annotations

from collections import Counter

import pytest

from plantguard.inventory import fingerprints as F
from plantguard.inventory.asset import Asset, Service
from plantguard.inventory.fingerprints import (
    Evidence,
    FingerprintError,
    parse_text,
    score,
)


def ev(*, ip="10.0.0.5", mac="02:00:00:00:00:05", vendor=None, identity=None, services=(), serves=(),
       uses=(), client_ports=None, client_ops=None, server_ops=None, hints=(), n_ctl=0, public=False,
       is_router=False, protocols=(), peers=(), ips=None) -> Evidence:
    """A minimal evidence record. services: "tcp/502:modbus" or ("tcp/23", "banner text")."""
    a = Asset(ip=ip, mac=mac, vendor=vendor, public=public, is_router=is_router)
    a.ips = set(ips if ips is not None else ([ip] if ip else []))
    a.identity = dict(identity or {})
    for s in services:
        spec, banner = (s, None) if isinstance(s, str) else s
        l4port, _, name = spec.partition(":")
        l4, port = l4port.split("/")
        a.services[(l4, int(port))] = Service(l4, int(port), name or None, banner)
    a.protocols = set(protocols) | set(serves) | set(uses)
    a.peers = set(peers)
    return Evidence(a, Counter(client_ops or {}), Counter(server_ops or {}), set(uses), set(serves),
                    list(hints), n_ctl, set(client_ports) if client_ports is not None else None)


def ops(**kw) -> dict:
    return kw


PC = {"peers": {"10.0.0.9"}}      # has a peer, so it "talks"
# fingerprint id -> (a record it must fire on, a record it must not fire on)
CASES = {
    # -- 10-protocols
    "controller-protocol-server": (ev(serves={"modbus"}), ev(uses={"modbus"})),
    "dnp3-outstation": (ev(hints=[("dnp3-outstation", "answers DNP3 requests")]),
                        ev(hints=[("dnp3-master", "sends DNP3 requests")])),
    "dnp3-master": (ev(uses={"dnp3"}, hints=[("dnp3-master", "sends DNP3 requests")]),
                    ev(serves={"dnp3"}, hints=[("dnp3-master", "sends DNP3 requests")])),
    "iec104-controlled-station": (ev(serves={"iec104"}), ev(uses={"iec104"})),
    "iec104-controlling-station": (ev(uses={"iec104"}), ev(uses={"iec104"}, serves={"iec104"})),
    "profinet-io-device": (ev(hints=[("io-device", "profinet says io-device")]),
                           ev(hints=[("io-controller", "profinet says io-controller")])),
    "profinet-io-controller": (ev(hints=[("io-controller", "PROFINET IO-CM Connect")]),
                               ev(hints=[("io-device", "PROFINET IO-CM Connect")])),
    "profinet-io-supervisor": (ev(hints=[("io-supervisor", "DCP")]), ev(hints=[("io-device", "DCP")])),
    "iec61850-publisher": (ev(hints=[("ied", "publishes IEC 61850 GOOSE messages")]),
                           ev(hints=[("io-device", "profinet says io-device")])),
    "mqtt-broker": (ev(services=["tcp/8883:tls"]), ev(uses={"mqtt"})),
    "mqtt-client": (ev(uses={"tls"}, client_ports={("tcp", 8883)}), ev(uses={"tls"}, client_ports={("tcp", 443)})),
    "opcua-server": (ev(serves={"opcua"}), ev(serves={"opcua", "s7comm"})),
    "opcua-gateway": (ev(serves={"opcua"}, uses={"modbus"}), ev(serves={"opcua"}, uses={"opcua"})),
    "opcua-client": (ev(uses={"opcua"}), ev(uses={"opcua"}, serves={"opcua"})),
    "iso-tsap-without-s7": (ev(services=["tcp/102:s7comm"], vendor="ABB"),
                            ev(services=["tcp/102:s7comm"], vendor="Siemens")),
    "mms-server": (ev(serves={"mms"}), ev(serves={"s7comm"})),
    "mms-client": (ev(client_ports={("tcp", 102)}), ev(uses={"s7comm"}, client_ports={("tcp", 102)})),
    "c37118-pmu": (ev(services=["tcp/4712"]), ev(services=["tcp/4713"])),
    "hart-ip-server": (ev(services=["tcp/5094"]), ev(client_ports={("tcp", 5094)})),
    "hart-ip-client": (ev(client_ports={("udp", 5094)}), ev(services=["udp/5094"])),
    "omron-fins-server": (ev(services=["udp/9600"]), ev(services=["udp/9601"])),
    "omron-fins-client": (ev(client_ports={("tcp", 9600)}), ev(client_ports={("tcp", 9600)}, services=["tcp/9600"])),
    "melsoft-server": (ev(services=["tcp/5007"]), ev(services=["tcp/5001"])),
    "melsoft-client": (ev(client_ports={("udp", 5560)}), ev(client_ports={("udp", 5561)})),
    "beckhoff-ads-server": (ev(services=["tcp/48898"]), ev(client_ports={("tcp", 48898)})),
    "beckhoff-ads-client": (ev(client_ports={("tcp", 48898)}), ev(client_ports={("tcp", 48898)}, services=["udp/48899"])),
    "twincat-engineering": (ev(hints=[("twincat-engineering", "ADS discovery search")]),
                            ev(hints=[("twincat-engineering", "ADS discovery search")], services=["tcp/48898"])),
    "niagara-fox-server": (ev(services=["tcp/1911"]), ev(services=["tcp/1912"])),
    "niagara-workbench": (ev(hints=[("engineering-workstation", "fox says engineering-workstation")]),
                          ev(serves={"fox"}, hints=[("engineering-workstation", "fox says engineering-workstation")])),
    "cip-io-scanner": (ev(client_ports={("udp", 2222)}), ev(client_ports={("udp", 2222)}, services=["udp/2222:enip"])),
    # -- 20-behaviour
    "sends-program-changes": (ev(uses={"s7comm"}, client_ops=ops(program=1), n_ctl=1),
                              ev(uses={"s7comm"}, client_ops=ops(program=1), n_ctl=1, serves={"s7comm"})),
    "sends-control": (ev(uses={"enip"}, client_ops=ops(control=1), n_ctl=1), ev(uses={"enip"}, client_ops=ops(control=1))),
    "sends-config": (ev(uses={"enip"}, client_ops=ops(config=1), n_ctl=1), ev(uses={"enip"}, client_ops=ops(write=1), n_ctl=1)),
    "authenticates-to-plc": (ev(uses={"s7comm"}, client_ops=ops(auth=1), n_ctl=1),
                             ev(uses={"dnp3"}, client_ops=ops(auth=1), n_ctl=1)),
    "reads-diagnostics": (ev(uses={"s7comm"}, client_ops=ops(diagnostic=5), n_ctl=1),
                          ev(uses={"s7comm"}, client_ops=ops(diagnostic=4), n_ctl=1)),
    "diagnoses-controllers": (ev(uses={"enip"}, client_ops=ops(diagnostic=60), n_ctl=1),
                              ev(uses={"enip"}, client_ops=ops(diagnostic=60, write=10), n_ctl=1)),
    "polls-controllers": (ev(uses={"modbus"}, client_ops=ops(read=20), n_ctl=1),
                          ev(uses={"modbus"}, client_ops=ops(read=500, config=1), n_ctl=1)),
    "reads-controllers": (ev(uses={"modbus"}, client_ops=ops(read=5), n_ctl=1),
                          ev(uses={"modbus"}, client_ops=ops(read=4), n_ctl=1)),
    "writes-controllers": (ev(uses={"modbus"}, client_ops=ops(write=2), n_ctl=1),
                           ev(uses={"modbus"}, client_ops=ops(write=1), n_ctl=1)),
    "industrial-client": (ev(uses={"bacnet"}, n_ctl=1), ev(uses={"bacnet"})),
    "occasional-industrial-client": (ev(uses={"modbus", "dns"}, client_ops=ops(read=1, write=1), n_ctl=1),
                                     ev(uses={"modbus"}, client_ops=ops(read=1, write=1), n_ctl=1)),
    "public-industrial-client": (ev(ip="198.51.100.7", public=True, uses={"s7comm"}),
                                 ev(ip="198.51.100.7", public=True, uses={"http"})),
    # -- 30-identity
    "cip-plc-device-type": (ev(identity={"device_type": "Programmable Logic Controller", "sources": ["enip"]}),
                            ev(identity={"device_type": "Programmable Logic Controller", "sources": ["http"]})),
    "cip-controllogix-comms-module": (ev(identity={"product": "1756-ENBT/A", "sources": ["enip"]}),
                                      ev(identity={"product": "1756-L61/B LOGIX5561", "sources": ["enip"]})),
    "cip-communications-adapter": (ev(identity={"device_type": "Communications Adapter", "sources": ["enip"]}, serves={"enip"}),
                                   ev(identity={"device_type": "Communications Adapter", "sources": ["enip"]})),
    "s7-cpu-module": (ev(identity={"module": "CPU 315-2 PN/DP", "sources": ["s7comm"]}),
                      ev(identity={"description": "CPU iPhone OS 17_4", "user_agent": "CPU iPhone OS 17_4", "sources": ["http"]})),
    "s7-order-number": (ev(identity={"order_number": "6ES7 315-2EH14-0AB0", "sources": ["s7comm"]}),
                        ev(identity={"order_number": "6GK5 208-0BA10-2AA3", "sources": ["lldp"]})),
    "profinet-dcp-s7": (ev(identity={"product": "S7-300EC", "sources": ["profinet"]}),
                        ev(identity={"product": "S7-300EC", "sources": ["http"]})),
    "modicon-modbus-device-id": (ev(identity={"product": "BMX P34 2020", "sources": ["modbus"]}),
                                 ev(identity={"product": "BMX NOE 0100", "sources": ["modbus"]})),
    "moxa-mgate": (ev(identity={"description": "Moxa MGate MB3180 Series, Firmware V2.2", "sources": ["snmp"]}),
                   ev(identity={"description": "MGate MB3180", "user_agent": "MGate MB3180", "sources": ["http"]})),
    "moxa-mgate-telnet-banner": (ev(services=[("tcp/23:telnet", "Model name       : MGate MB3180\r\nlogin:")]),
                                 ev(services=[("tcp/80:http", "Model name : MGate MB3180")])),
    "moxa-nport": (ev(identity={"description": "NPort 5110", "sources": ["snmp"]}),
                   ev(identity={"description": "NPort 5110", "sources": ["dhcp"]})),
    "moxa-iologik": (ev(identity={"description": "ioLogik E1212", "sources": ["snmp"]}),
                     ev(identity={"description": "Logik E1212", "sources": ["snmp"]})),
    "moxa-eds-switch": (ev(identity={"description": "EDS-408A-MM-SC", "sources": ["snmp"]}),
                        ev(identity={"description": "EDS 408A", "sources": ["snmp"]})),
    "scalance-x-switch": (ev(identity={"product": "SCALANCE X208", "sources": ["lldp"]}),
                          ev(identity={"product": "SCALANCE W788", "sources": ["lldp"]})),
    "scalance-x200-family": (ev(identity={"description": "Siemens AG SIMATIC S7 MULTIPORT SCALANCE X 200 FAM", "sources": ["lldp"]}),
                             ev(identity={"description": "Siemens, SIMATIC NET, SCALANCE X208", "sources": ["lldp"]})),
    "hirschmann-switch": (ev(identity={"description": "Hirschmann MAR - SW: L2P-09.0.00", "sources": ["lldp"]}),
                          ev(identity={"description": "Hirschmann MAR", "sources": ["lldp"]})),
    "smc-switch": (ev(identity={"description": "SMCGS8P-Smart - SMCGS8P-Smart v3.20", "sources": ["lldp"]}),
                   ev(identity={"description": "Smart switch SMC", "sources": ["lldp"]})),
    "cisco-catalyst": (ev(identity={"product": "cisco WS-CE500-24TT", "sources": ["cdp"]}),
                       ev(identity={"product": "cisco 1601", "sources": ["cdp"]})),
    "ruggedcom": (ev(identity={"description": "RUGGEDCOM RSG2100", "sources": ["snmp"]}),
                  ev(identity={"description": "RUGGEDCOM RSG2100", "sources": ["ftp"]})),
    "siemens-pc-station-hmi": (ev(identity={"description": "Dell Inc. OptiPlex 990,01,G22XB2S + HMI", "sources": ["lldp"]}),
                               ev(identity={"description": "Dell Inc. OptiPlex 990,01,G22XB2S", "sources": ["lldp"]})),
    "pc-model-lldp": (ev(identity={"description": "Dell Inc. Vostro 3800,,JSJR542", "sources": ["lldp"]}),
                      ev(identity={"description": "Vostro 3800", "sources": ["lldp"]})),
    "upnp-home-router": (ev(identity={"ssdp_server": "UPnP/1.0 BLR-TX4S/1.0", "sources": ["http"]}),
                         ev(identity={"ssdp_server": "Microsoft-Windows/10.0 UPnP/1.0", "sources": ["http"]})),
    "beckhoff-cx-wince": (ev(vendor="Beckhoff Automation", identity={"ssdp_server": "Microsoft-WinCE/6.00 UPnP/1.0", "sources": ["http"]}),
                          ev(vendor="Dell", identity={"ssdp_server": "Microsoft-WinCE/6.00 UPnP/1.0", "sources": ["http"]})),
    "hmi-panel-product": (ev(identity={"product": "SIMATIC TP1200 Comfort", "sources": ["profinet"]}),
                          ev(identity={"description": "PanelView", "user_agent": "PanelView", "sources": ["http"]})),
    "protocol-gateway-description": (ev(identity={"description": "Modbus TCP to RTU gateway", "sources": ["snmp"]}),
                                     ev(identity={"description": "default gateway 10.0.0.1", "sources": ["snmp"]})),
    "protocol-gateway-banner": (ev(services=[("tcp/23:telnet", "Serial to Ethernet gateway\r\nlogin:")]),
                                ev(services=[("tcp/23:telnet", "Welcome\r\nlogin:")])),
    # -- 40-network
    "lldp-cdp-switch": (ev(hints=[("switch", "lldp says switch")]), ev(hints=[("router", "lldp says router")])),
    "lldp-cdp-router": (ev(hints=[("router", "cdp says router")]),
                        ev(is_router=True, hints=[("router", "one MAC address fronts 5 IP addresses")])),
    "address-binder-router": (ev(is_router=True, hints=[("router", "one MAC address fronts 5 IP addresses")]),
                              ev(is_router=True, serves={"modbus"}, hints=[("router", "one MAC address fronts 5 IP addresses")])),
    "next-hop-of-public-addresses": (ev(ip=None, is_router=True, hints=[("router", "its MAC address carries traffic of public addresses")]),
                                     ev(is_router=True, hints=[("router", "its MAC address carries traffic of public addresses")])),
    "own-public-address": (ev(ip="141.81.0.120", is_router=True, hints=[("router", "its MAC address carries traffic of public addresses")]),
                           ev(ip=None, is_router=True, hints=[("router", "its MAC address carries traffic of public addresses")])),
    "soho-router-dns": (ev(vendor="D-Link International", services=["udp/53:dns"]), ev(vendor="Dell", services=["udp/53:dns"])),
    "mikrotik": (ev(vendor="Routerboard.com"), ev(vendor="Cisco Systems")),
    "dhcp-server": (ev(services=["udp/67:dhcp"]), ev(services=["udp/68:dhcp"])),
    "network-vendor-snmp-agent": (ev(vendor="Cisco Systems", services=["udp/161:snmp"]),
                                  ev(vendor="Cisco Systems", services=["udp/161:snmp"], serves={"enip"})),
    "network-vendor": (ev(vendor="Juniper Networks", **PC), ev(vendor="Juniper Networks")),
    "firewall-vendor": (ev(vendor="Fortinet"), ev(vendor="Siemens")),
    # -- 50-it
    "it-only": (ev(uses={"dns"}), ev(uses={"dns", "modbus"})),
    "dhcp-client": (ev(services=["udp/68:dhcp"]), ev(services=["udp/68:dhcp", "udp/67:dhcp"])),
    "dns-client": (ev(uses={"dns"}), ev(uses={"dns"}, services=["udp/53:dns"])),
    "user-agent-mobile": (ev(identity={"user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)"}),
                          ev(identity={"user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"})),
    "user-agent-desktop-browser": (ev(identity={"user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/115.0"}),
                                   ev(identity={"user_agent": "curl/8.5.0"})),
    "user-agent-tool": (ev(identity={"user_agent": "python-requests/2.31.0"}), ev(identity={"user_agent": "Mozilla/5.0 (X11)"})),
    "printer": (ev(vendor="FUJIFILM Business Innovation", services=["udp/161:snmp"]),
                ev(vendor="Xerox", services=["udp/161:snmp"])),
    "public-address": (ev(ip="203.0.113.9", public=True, **PC), ev(ip="203.0.113.9", public=True, uses={"dhcp"}, **PC)),
    "apple-device": (ev(vendor="Apple", **PC), ev(vendor="Apple")),
    "consumer-device-vendor": (ev(vendor="Samsung Electronics", **PC), ev(vendor="Siemens", **PC)),
    # -- 60-vendors
    "plc-maker": (ev(vendor="Rockwell Automation", **PC), ev(vendor="Rockwell Automation")),
    "mitsubishi-fa": (ev(vendor="Mitsubishi Electric"), ev(vendor="Mitsubishi Motors")),
    "beckhoff": (ev(vendor="Beckhoff Automation"), ev(vendor="Bosch")),
    "ied-maker": (ev(vendor="Schweitzer Engineering", **PC), ev(vendor="Schweitzer Engineering")),
    "io-maker": (ev(vendor="Murrelektronik", **PC), ev(vendor="Murrelektronik")),
    "iiot-sensor-maker": (ev(vendor="Advantech", uses={"tls"}), ev(vendor="Advantech", uses={"tls"}, services=["tcp/80:http"])),
}


@pytest.fixture(scope="module")
def shipped():
    return {fp.id: fp for fp in F.load("")}


def test_every_shipped_fingerprint_has_a_case(shipped):
    assert set(shipped) == set(CASES), (sorted(set(shipped) - set(CASES)), sorted(set(CASES) - set(shipped)))


@pytest.mark.parametrize("fid", sorted(CASES))
def test_fingerprint_fires_on_its_evidence_and_not_on_a_near_miss(shipped, fid):
    fp = shipped[fid]
    fires, near_miss = CASES[fid]
    assert fp.fire(fires) is not None, fid
    assert fp.fire(near_miss) is None, fid


def test_shipped_files_are_versioned_and_well_formed():
    import yaml
    files = F.shipped_files()
    assert len(files) >= 5
    for name, text in files:
        doc = yaml.safe_load(text)
        assert doc["format"] == F.FORMAT and str(doc.get("version", "")).strip(), name
        for fp in doc["fingerprints"]:
            assert fp.get("description"), f"{name}: {fp['id']} has no description"


def test_roles_are_known_names():
    from plantguard.site.vocabulary import ASSET_ROLES
    for fp in F.load(""):
        assert fp.role is None or fp.role == F.SERVED_ROLE or fp.role in ASSET_ROLES, fp.id


def test_no_shipped_fingerprint_concludes_a_role_from_a_user_agent_alone():
    for fp in F.load(""):
        conds = fp.when + fp.any
        if fp.role and conds and all(c.kind == "user_agent" for c in conds):
            assert fp.role in F.USER_AGENT_ROLES, fp.id


# -- scoring -------------------------------------------------------------------------------------
def test_score_combines_fingerprints_and_keeps_the_reasons():
    v = score(ev(vendor="Rockwell Automation", serves={"enip"}, peers={"10.0.0.9"},
                 identity={"product": "1756-ENBT/A", "device_type": "Communications Adapter", "sources": ["enip"]}))
    assert v.role == "plc"
    assert v.scores["plc"] == pytest.approx(F.combine([0.75, 0.55, 0.5, 0.25]))
    assert "cip-controllogix-comms-module" in v.reasons[0] and "product '1756-ENBT/A'" in v.reasons[0]
    assert any("controller-protocol-server" in r for r in v.reasons)
    assert v.reasons[-1].startswith("plc 0.")
    assert v.identity["family"] == ("ControlLogix", "cip-controllogix-comms-module")


def test_nothing_to_go_on_is_unknown():
    v = score(ev())
    assert (v.role, v.reasons) == ("unknown", ["not enough traffic to tell"])


def test_weak_evidence_alone_stays_unknown():
    assert score(ev(ip="141.81.0.120", is_router=True,
                    hints=[("router", "its MAC address carries traffic of public addresses")])).role == "unknown"


# -- the loader ----------------------------------------------------------------------------------
GOOD = """format: plantguard-fingerprints/1
version: 1
fingerprints:
  - id: acme-widget
    description: an Acme widget controller
    when:
      - identity: {field: product, protocol: modbus, regex: '^Widget (?P<model>\\d+)'}
    then: {role: plc, identity: {vendor: Acme, product: 'Widget {model}'}}
    confidence: 0.9
"""

BAD = {
    "unknown evidence": ("      - identity:", "      - smell:", "unknown evidence 'smell'"),
    "unknown role": ("role: plc", "role: toaster", "role 'toaster' is not one of"),
    "confidence above 1": ("confidence: 0.9", "confidence: 1.5", "confidence must be a number in (0, 1]"),
    "confidence missing": ("    confidence: 0.9\n", "", "confidence must be a number"),
    "bad regex": ("'^Widget (?P<model>\\d+)'", "'^Widget (?P<model>\\d+'", "bad regular expression"),
    "missing group": ("'Widget {model}'", "'Widget {serial}'", "refers to {serial}"),
    "no evidence": ("    when:\n      - identity: {field: product, protocol: modbus, regex: '^Widget (?P<model>\\d+)'}\n",
                    "", "must name at least one evidence"),
    "unknown key": ("    description:", "    describe:", "unknown key(s) describe"),
    "bad id": ("id: acme-widget", "id: Acme Widget", "id must be lower-case"),
    "user agent makes a plc": ("identity: {field: product, protocol: modbus, regex: '^Widget (?P<model>\\d+)'}",
                               "user_agent: 'CPU iPhone OS (?P<model>\\d+)'", "may conclude only it-host, workstation"),
    "identity reads user_agent": ("field: product,", "field: user_agent,", "use the user_agent condition"),
    "bad port": ("      - identity: {field: product, protocol: modbus, regex: '^Widget (?P<model>\\d+)'}",
                 "      - serves: [tcp/http]\n      - identity: {field: product, protocol: modbus, regex: '^Widget (?P<model>\\d+)'}",
                 "neither a protocol name nor tcp/N"),
    "bad category": ("      - identity:", "      - sends: {categories: [reboot]}\n      - identity:", "unknown operation categories reboot"),
    "concludes nothing": ("then: {role: plc, identity: {vendor: Acme, product: 'Widget {model}'}}", "then: {}",
                          "'then' must conclude"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_entry_is_one_line_naming_the_file_and_the_fingerprint(case):
    old, new, msg = BAD[case]
    assert old in GOOD, case
    with pytest.raises(FingerprintError) as e:
        parse_text(GOOD.replace(old, new), "/etc/plantguard/mine.yaml")
    text = str(e.value)
    assert "\n" not in text and text.startswith("/etc/plantguard/mine.yaml: fingerprint "), text
    assert ("'acme-widget'" in text or "'Acme Widget'" in text) and msg in text, text


def test_bad_files():
    with pytest.raises(FingerprintError, match=r"^x.yaml: not a fingerprint file"):
        parse_text("fingerprints: []\n", "x.yaml")
    with pytest.raises(FingerprintError, match=r"^x.yaml: line 3 not valid YAML"):
        parse_text("format: plantguard-fingerprints/1\nfingerprints: [\n", "x.yaml")
    with pytest.raises(FingerprintError, match="id used twice"):
        parse_text(GOOD + GOOD.split("fingerprints:\n")[1], "x.yaml")


def test_user_fingerprints_from_the_environment(tmp_path, monkeypatch):
    a = tmp_path / "a.yaml"
    a.write_text(GOOD)
    b = tmp_path / "b.yaml"      # replaces a shipped fingerprint: MAC vendor priors off for Beckhoff
    b.write_text("format: plantguard-fingerprints/1\nfingerprints:\n  - id: beckhoff\n    description: switched off\n"
                 "    when:\n      - oui: [Beckhoff]\n    then: {role: it-host}\n    confidence: 0.01\n")
    monkeypatch.setenv(F.ENV, f"{a}:{b}")
    fps = {fp.id: fp for fp in F.load()}
    assert fps["acme-widget"].source == str(a) and fps["beckhoff"].confidence == 0.01
    assert len(fps) == len(F.load("")) + 1
    v = score(ev(identity={"product": "Widget 3000", "sources": ["modbus"]}))
    assert v.role == "plc" and v.identity["product"] == ("Widget 3000", "acme-widget")
    monkeypatch.setenv(F.ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(FingerprintError, match=r"^PLANTGUARD_FINGERPRINTS: .*missing.yaml: no such file$"):
        F.load()


def test_a_folder_in_the_environment_means_its_yaml_files(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "notes.txt").write_text("not a fingerprint")
    monkeypatch.setenv(F.ENV, str(tmp_path))
    assert "acme-widget" in {fp.id for fp in F.load()}


def test_a_user_file_may_not_reuse_another_user_files_id(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    monkeypatch.setenv(F.ENV, f"{tmp_path / 'a.yaml'}:{tmp_path / 'b.yaml'}")
    with pytest.raises(FingerprintError, match=r"b.yaml: fingerprint 'acme-widget': id already used in .*a.yaml"):
        F.load()
