"""The bundled demo plant: its capture must be byte-for-byte reproducible, dissect cleanly in
tshark (a second, independent decoder) with the identities the scenario claims, be read by our
engine without warnings, and its site file must describe exactly the network in the capture."""
from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import shutil
import subprocess
import sys
from functools import lru_cache

import pytest
import yaml
from cryptography import x509

from plantguard.demo import build_demo, site_text
from plantguard.demo import hosts as P
from plantguard.demo.frames import inet_checksum
from plantguard.demo.plant import build_capture

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
CHECKSUMS = ["-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
             "-o", "ip.check_checksum:TRUE"]
FIELDS = ["frame.number", "frame.protocols", "vlan.id", "eth.src", "ip.src", "ip.dst", "ip.ttl",
          "tcp.dstport", "modbus.func_code", "s7comm.param.func", "mqtt.msgtype", "mqtt.username",
          "mqtt.passwd", "snmp.community", "snmp.version", "tls.handshake.type",
          "tls.handshake.version", "tls.handshake.extensions.supported_version",
          "tls.handshake.certificate", "telnet.data", "arp.src.proto_ipv4", "arp.dst.proto_ipv4",
          "arp.src.hw_mac",
          # identities
          "enip.lir.name", "enip.lir.revision", "enip.lir.vendor", "enip.lir.prodcode",
          "enip.lir.serial", "modbus.object_str_value", "s7comm.szl.xy11.0001.anz",
          "s7comm.szl.xy11.0001.ausbg", "s7comm.szl.xy11.0001.ausbe", "s7comm.szl.001c.0001.name",
          "s7comm.szl.001c.0002.name", "s7comm.szl.001c.0005.serialn", "lldp.tlv.system.desc",
          "snmp.name", "snmp.value.octets",
          # anything tshark objects to
          "_ws.malformed", "_ws.expert.severity", "tcp.analysis.flags", "tcp.checksum.status",
          "udp.checksum.status", "ip.checksum.status"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    pcap, site = build_demo(out)
    return pcap, site


@pytest.fixture(scope="module")
def capture():
    return build_capture()


@lru_cache(maxsize=8)
def _tshark(pcap: str, *args: str) -> str:
    return subprocess.run([TSHARK, "-r", pcap, *args], capture_output=True, text=True,
                          check=True, timeout=120).stdout


@pytest.fixture(scope="module")
def rows(demo):
    """Per frame: field name -> value (multiple occurrences joined by '|')."""
    if TSHARK is None:
        pytest.skip("tshark not installed")
    args = [*CHECKSUMS, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
            "-E", "aggregator=|"]
    for f in FIELDS:
        args += ["-e", f]
    out = _tshark(str(demo[0]), *args)
    table = {}
    for line in out.splitlines():
        vals = line.split("\t")
        rec = dict(zip(FIELDS, vals))
        table[int(rec["frame.number"])] = rec
    return table


# ---------------------------------------------------------------- determinism and size

def test_same_bytes_every_run(demo, tmp_path):
    pcap, site = demo
    again_pcap, again_site = build_demo(tmp_path / "again")
    assert pcap.read_bytes() == again_pcap.read_bytes()
    assert site.read_text() == again_site.read_text()
    # a fresh interpreter (no cached key material) writes the same bytes too
    code = ("import sys; from plantguard.demo import build_demo; build_demo(sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "fresh")], check=True, timeout=120)
    assert (tmp_path / "fresh" / pcap.name).read_bytes() == pcap.read_bytes()


def test_size_and_span(capture):
    assert 2_000 <= len(capture.frames) <= 20_000
    times = [t for t, _ in capture.frames]
    assert times == sorted(times)
    span = (times[-1] - times[0]) / 1e6
    assert 120 <= span <= 600                      # a few minutes of plant time
    start = dt.datetime.fromtimestamp(times[0] / 1e6, dt.timezone.utc)
    assert (start.strftime("%a"), start.hour) == ("Sun", 2)


def test_checksum_helper():
    # RFC 1071 example: words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d
    assert inet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_every_deliberate_fault_is_marked(capture):
    expected = {"fault:office-modbus-write-request", "fault:guest-s7-stop-request",
                "fault:mqtt-default-cleartext", "fault:telnet-login", "fault:sensor-internet",
                "fault:hmi-weak-tls", "fault:snmp-public", "fault:sensor-on-control-vlan",
                "fault:unknown-device", "fault:mqtt-cleartext-telemetry",
                "pass:ews-write", "pass:ews-download", "pass:mqtt-tls-sensing-to-dmz",
                "pass:conduit-control-to-sensing", "pass:ews-plc-restart"}
    assert expected <= set(capture.marks)
    assert len(capture.marks["fault:office-modbus-write-request"]) == 1
    assert len(capture.marks["fault:guest-s7-stop-request"]) == 1
    assert len(capture.marks["fault:mqtt-default-cleartext"]) == 1


# ---------------------------------------------------------------- our own engine reads it

def test_engine_reads_without_warnings(demo, capture):
    from plantguard.capture.engine import analyze
    result = analyze([str(demo[0])])
    (cap,) = result.captures
    assert cap.warnings == []
    assert cap.packets == len(capture.frames)
    assert result.counters.get("undecoded_link", 0) == 0
    assert result.counters.get("fragments", 0) == 0


# ---------------------------------------------------------------- tshark as the second decoder

@needs_tshark
def test_tshark_finds_nothing_malformed(demo, rows):
    expert = _tshark(str(demo[0]), *CHECKSUMS, "-q", "-z", "expert")
    assert "Malformed" not in expert
    assert "Errors (" not in expert and "Warnings (" not in expert, expert
    for n, r in rows.items():
        assert not r["_ws.malformed"] and not r["tcp.analysis.flags"], n
        severities = [int(v, 0) for v in r["_ws.expert.severity"].split("|") if v]
        assert all(v < 0x00600000 for v in severities), n           # below "warning"
        for f in ("tcp.checksum.status", "udp.checksum.status", "ip.checksum.status"):
            assert r[f] in ("", "1") and "0" not in r[f].split("|"), (n, f)   # 1 = good


@needs_tshark
def test_tshark_sees_every_protocol(demo):
    hierarchy = _tshark(str(demo[0]), "-q", "-z", "io,phs")
    names = {line.split()[0] for line in hierarchy.splitlines() if "frames:" in line}
    for proto in ("modbus", "s7comm", "enip", "cip", "mqtt", "tls", "telnet", "snmp", "dhcp",
                  "arp", "lldp", "dns", "http", "icmp", "cotp"):
        assert proto in names, proto


def _only(rows, field):
    """The values of a field over the frames that carry it."""
    return [r[field] for r in rows.values() if r[field]]


@needs_tshark
def test_tshark_identity_values(rows):
    enip = [tuple(r[f] for f in ("enip.lir.name", "enip.lir.revision", "enip.lir.vendor",
                                 "enip.lir.prodcode", "enip.lir.serial"))
            for r in rows.values() if r["enip.lir.name"]]
    assert enip == [("1756-ENBT/A", str(0x0403), "0x0001", "58", "0x0061b3c2")]   # rev. 4.3
    assert _only(rows, "modbus.object_str_value") == ["Schneider Electric|BMX P34 2020|v3.10"]
    (szl11,) = [r for r in rows.values() if r["s7comm.szl.xy11.0001.anz"]]
    orders = [o.strip() for o in szl11["s7comm.szl.xy11.0001.anz"].split("|")]
    assert orders[:2] == ["6ES7 315-2EH14-0AB0"] * 2
    ausbg = int(szl11["s7comm.szl.xy11.0001.ausbg"].split("|")[2])
    ausbe = int(szl11["s7comm.szl.xy11.0001.ausbe"].split("|")[2])
    assert (chr(ausbg >> 8), ausbg & 0xFF, ausbe >> 8, ausbe & 0xFF) == ("V", 3, 2, 6)  # V3.2.6
    (szl1c,) = [r for r in rows.values() if r["s7comm.szl.001c.0005.serialn"]]
    assert [szl1c[f] for f in ("s7comm.szl.001c.0001.name", "s7comm.szl.001c.0002.name",
                               "s7comm.szl.001c.0005.serialn")] == \
        ["PLANT-A-S7-300", "CPU 315-2 PN/DP", "S C-D4TB71352918"]
    lldp = _only(rows, "lldp.tlv.system.desc")
    assert len(lldp) == 10 and set(lldp) == {P.SWITCH_SYSDESCR}
    described = {bytes.fromhex(r["snmp.value.octets"].split("|")[0]).decode()
                 for r in rows.values() if r["snmp.value.octets"]}
    assert described == {P.GATEWAY_SYSDESCR}


# ---------------------------------------------------------------- each fault is where we say

def _frames(capture, mark):
    return capture.marks[mark]


@needs_tshark
def test_office_laptop_writes_a_register(capture, rows):
    (n,) = _frames(capture, "fault:office-modbus-write-request")
    r = rows[n]
    assert (r["ip.src"], r["ip.dst"], r["vlan.id"], r["modbus.func_code"]) == \
        (P.LAPTOP.ip, P.M340.ip, "20", "6")


@needs_tshark
def test_guest_host_stops_the_s7(capture, rows):
    (n,) = _frames(capture, "fault:guest-s7-stop-request")
    r = rows[n]
    assert (r["ip.src"], r["ip.dst"], r["vlan.id"], r["s7comm.param.func"]) == \
        (P.VISITOR.ip, P.S7.ip, "30", "0x29")


def _default_pairs():
    from conftest import shared_path   # skips cleanly without the shared data
    pairs = set()
    with open(shared_path("creds/DefaultCreds-Cheat-Sheet.csv"), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            pairs.add((row["username"], row["password"]))
    return pairs


@needs_tshark
def test_mqtt_default_login_in_clear(capture, rows):
    (n,) = _frames(capture, "fault:mqtt-default-cleartext")
    r = rows[n]
    assert (r["mqtt.msgtype"], r["mqtt.username"], r["mqtt.passwd"], r["tcp.dstport"]) == \
        ("1", "admin", "admin", "1883")
    assert (r["ip.src"], r["ip.dst"]) == (P.SENSOR_31.ip, P.BROKER.ip)
    # the only MQTT logins readable on the wire are this one
    assert [k for k, v in rows.items() if v["mqtt.msgtype"] == "1"] == [n]


def test_mqtt_pair_is_a_known_default():
    from conftest import shared_path
    pairs = _default_pairs()
    assert (P.MQTT_DEFAULT_USER, P.MQTT_DEFAULT_PASSWORD) in pairs
    # the Telnet login is cleartext but not a default: its password is in none of the lists
    assert (P.TELNET_USER, P.TELNET_PASSWORD) not in pairs
    for name in ("DefaultCreds-Cheat-Sheet.csv", "ics-default-passwords.csv", "scadapass.csv"):
        assert P.TELNET_PASSWORD not in shared_path("creds/" + name).read_text(errors="replace")


@needs_tshark
def test_telnet_login_in_clear(capture, rows):
    typed = "".join(rows[n]["telnet.data"].replace("\\r\\n", "\r\n")
                    for n in _frames(capture, "fault:telnet-login"))
    assert typed == f"{P.TELNET_USER}\r\n{P.TELNET_PASSWORD}\r\n"
    assert {rows[n]["ip.src"] for n in _frames(capture, "fault:telnet-login")} == {P.EWS.ip}


@needs_tshark
def test_snmp_community_public(capture, rows):
    for n in _frames(capture, "fault:snmp-public"):
        assert (rows[n]["snmp.community"], rows[n]["snmp.version"]) == ("public", "1")  # v2c


@needs_tshark
def test_hmi_serves_tls10_with_expired_self_signed_cert(capture, rows):
    frames = _frames(capture, "fault:hmi-weak-tls")
    hello = [rows[n] for n in frames if "2" in rows[n]["tls.handshake.type"].split("|")]
    assert hello and hello[0]["ip.src"] == P.HMI.ip
    assert hello[0]["tls.handshake.version"].split("|")[0] == "0x0301"
    der = next(bytes.fromhex(rows[n]["tls.handshake.certificate"].replace(":", "").split("|")[0])
               for n in frames if rows[n]["tls.handshake.certificate"])
    cert = x509.load_der_x509_certificate(der)
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    capture_time = dt.datetime.fromtimestamp(capture.frames[0][0] / 1e6, dt.timezone.utc)
    assert cert.not_valid_after_utc < capture_time


@needs_tshark
def test_broker_tls_passes(capture, rows):
    frames = _frames(capture, "pass:mqtt-tls-sensing-to-dmz")
    versions = {rows[n]["tls.handshake.version"].split("|")[0] for n in frames
                if rows[n]["tls.handshake.type"].split("|")[0] == "2"}
    assert versions == {"0x0303"}
    certs = next(rows[n]["tls.handshake.certificate"] for n in frames
                 if rows[n]["tls.handshake.certificate"])
    leaf, issuing = (x509.load_der_x509_certificate(bytes.fromhex(c.replace(":", "")))
                     for c in certs.split("|"))
    leaf.verify_directly_issued_by(issuing)
    assert leaf.issuer != leaf.subject and issuing.issuer != issuing.subject  # no self-signed
    capture_time = dt.datetime.fromtimestamp(capture.frames[0][0] / 1e6, dt.timezone.utc)
    assert leaf.not_valid_before_utc < capture_time < leaf.not_valid_after_utc
    assert {rows[n]["tcp.dstport"] for n in frames if rows[n]["ip.src"] != P.BROKER.ip} == {"8883"}


@needs_tshark
def test_sensor_reaches_a_public_address(capture, rows):
    frames = _frames(capture, "fault:sensor-internet")
    ends = {(rows[n]["ip.src"], rows[n]["ip.dst"]) for n in frames}
    assert ends == {(P.SENSOR_22.ip, P.CLOUD.ip), (P.CLOUD.ip, P.SENSOR_22.ip)}
    assert ipaddress.ip_address(P.CLOUD.ip).is_global
    assert {rows[n]["vlan.id"] for n in frames} == {"120"}
    # nothing else leaves the private address space
    public = {a for r in rows.values() for a in (r["ip.src"], r["ip.dst"])
              if a and ipaddress.ip_address(a).is_global}
    assert public == {P.CLOUD.ip}


@needs_tshark
def test_sensor_on_the_control_vlan(capture, rows):
    frames = _frames(capture, "fault:sensor-on-control-vlan")
    for n in frames:
        r = rows[n]
        assert r["vlan.id"] == "110"
        assert P.MISPLACED.ip in (r["arp.src.proto_ipv4"], r["arp.dst.proto_ipv4"], r["ip.src"],
                                  r["ip.dst"]), n
    # it sends from its own MAC (ARP and its own TCP/TLS session to the broker), not routed in
    own = [rows[n] for n in frames if rows[n]["eth.src"] == P.MISPLACED.mac]
    assert any(r["arp.src.proto_ipv4"] for r in own) and any(r["tcp.dstport"] == "8883" for r in own)
    # every other device sends from its own MAC only on its own zone's VLAN
    own = {h.mac: h for h in P.HOSTS if h is not P.MISPLACED}
    for r in rows.values():
        h = own.get(r["eth.src"])
        if h is not None and r["vlan.id"]:
            assert r["vlan.id"] == str(h.vlan), (r["frame.number"], h.name)


@needs_tshark
def test_writes_and_download_come_from_the_engineering_workstation(capture, rows):
    for mark in ("pass:ews-write", "pass:ews-plc-restart"):
        senders = {rows[n]["ip.src"] for n in _frames(capture, mark)}
        assert senders <= {P.EWS.ip, P.M340.ip, P.S7.ip, P.ENBT.ip}
    writes = [r for r in rows.values() if r["modbus.func_code"] in ("5", "6", "15", "16")
              and r["ip.dst"] == P.M340.ip]
    assert {r["ip.src"] for r in writes} == {P.EWS.ip, P.LAPTOP.ip}
    download = [rows[n]["s7comm.param.func"] for n in _frames(capture, "pass:ews-download")]
    assert {"0x1a", "0x1b", "0x1c", "0x28"} <= set(download)


# ---------------------------------------------------------------- the site file matches

@pytest.fixture(scope="module")
def site():
    return yaml.safe_load(site_text())


def test_site_zones_conduits_egress(site):
    zones = {z["name"]: z for z in site["zones"]}
    assert {n: (z["kind"], z["vlans"]) for n, z in zones.items()} == {
        "control": ("ot-control", [110]), "sensing": ("ot-sensing", [120]),
        "office": ("it", [20]), "guest-wifi": ("guest", [30]), "dmz": ("dmz", [40])}
    assert site["egress"] == [{"zone": "sensing", "allow": [f"{P.BROKER.ip}/32"]}]
    assert site["engineering_workstations"] == [P.EWS.ip]
    assert {"from": "sensing", "to": "dmz", "allow": ["tcp/8883", "tcp/1883"]} in site["conduits"]
    for host in P.HOSTS:
        net = next(z for z in site["zones"]
                   if ipaddress.ip_address(host.ip) in ipaddress.ip_network(z["networks"][0]))
        if host is not P.MISPLACED:
            assert host.vlan in net["vlans"], host.name
    assert P.MISPLACED.vlan not in zones["sensing"]["vlans"]


def test_site_declares_all_but_the_unknown_device(site, rows):
    declared = {a["ip"]: a for a in site["assets"]}
    for host in P.HOSTS:
        if host is P.ROGUE_PI:
            assert host.ip not in declared and all(a.get("mac") != host.mac for a in site["assets"])
        else:
            assert declared[host.ip]["mac"] == host.mac, host.name
    seen = {a for r in rows.values() for a in (r["ip.src"], r["ip.dst"], r["arp.src.proto_ipv4"])
            if a and ipaddress.ip_address(a).is_private
            and a not in ("0.0.0.0", "255.255.255.255")}
    assert seen - set(declared) == {P.ROGUE_PI.ip}


def test_site_window_and_attestations(site, capture):
    (win,) = site["maintenance_windows"]
    assert win["days"] == ["sun"] and win["start"] == "02:00" and win["hours"] == 4
    start = dt.datetime.fromtimestamp(capture.frames[0][0] / 1e6, dt.timezone.utc)
    end = dt.datetime.fromtimestamp(capture.frames[-1][0] / 1e6, dt.timezone.utc)
    assert 2 <= start.hour and end.hour < 6 and start.date() == end.date()
    known = {"usb_ports_disabled", "unused_ethernet_ports_disabled", "secure_boot",
             "hardware_root_of_trust", "incident_response_plan", "patch_schedule",
             "sbom_procurement_clause", "mssp_or_soc", "backups_tested", "security_training",
             "remote_access_mfa"}
    att = site["attestations"]
    assert set(att) < known                                  # one left unanswered
    statuses = {a["status"] for a in att.values()}
    assert statuses == {"yes", "no", "partial"}              # strings, not YAML booleans


def test_site_loads_with_the_product_loader(demo):
    site_mod = pytest.importorskip("plantguard.site")
    s = site_mod.load_site(str(demo[1]))
    assert s.zone_of(P.M340.ip).name == "control"
    assert s.is_engineering_workstation(P.EWS.ip)
    assert not s.is_engineering_workstation(P.LAPTOP.ip)
    assert s.egress_allows("sensing", P.BROKER.ip) is True
    assert s.egress_allows("sensing", P.CLOUD.ip) is False
    assert s.declared_asset(ip=P.ROGUE_PI.ip) is None
    assert s.declared_asset(ip=P.S7.ip) is not None


# ---------------------------------------------------------------- the expected-findings table

def test_expected_table_points_at_real_frames(capture):
    from plantguard.demo.expected import BY_DEFINITION, FAULTS, MUST_NOT_FAIL
    known = {h.ip for h in P.HOSTS} | {P.CLOUD.ip}
    for fault in FAULTS:
        assert capture.marks.get(fault.mark), fault.name
        for check, ips in fault.findings:
            assert check.count(".") == 1 and ips and ips <= known, (fault.name, check)
    for check, ips in BY_DEFINITION:
        assert ips <= known, check
    for check, ip in MUST_NOT_FAIL:
        assert ip in known, check
    # a fault never expects what the must-pass list forbids
    expected = {(c, ip) for f in FAULTS for c, ips in f.findings for ip in ips}
    assert not expected & set(MUST_NOT_FAIL)
