"""plantguard probe against real SNMP, OPC UA and HTTP(S) stacks in a device network namespace:
Net-SNMP's snmpd (v2c community and a v3 user), an asyncua server, and Python's http.server in
the clear and behind TLS with a self-signed certificate. The identities the probe reports must
be the configured values, equal what the passive decoders read from tcpdump's capture of the
same exchange, and agree with nmap's NSE scripts where one exists (snmp-sysdescr, snmp-info,
http-headers, ssl-cert)."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from support.probe import DEVICE_IP, namespace_pair, passive_identity, probe_json, site_file, stop

SNMPD = "/usr/sbin/snmpd"
COMMUNITY = "pg-cell-a-ro"
SYS = {"description": "PlantGuard test RTU 4.2 (Net-SNMP agent)", "name": "rtu-cell-a-07",
       "location": "Hall 3, cabinet 12", "contact": "ot-engineering@example.org"}
ENGINE_TEXT = "pgtest-engine"
NET_SNMP_ENTERPRISE = 8072
OPCUA = {"product": "PlantGuard Test OPC UA Server", "application_uri": "urn:plantguard:test:opcua-server",
         "product_uri": "urn:plantguard:test:product", "manufacturer": "PlantGuard Test Works"}
SERVER_HEADER = "PGTestWeb/1.2"
CERT_CN, CERT_ORG = "rtu-cell-a-07.example.org", "PlantGuard Test"


@pytest.fixture(scope="module")
def pair():
    with namespace_pair() as p:
        yield p


def run_probe(pair, tmp: Path, protocol: str, *extra: str) -> tuple[dict, Path]:
    """`plantguard probe --send` for one protocol, captured: (its JSON, tcpdump's pcap)."""
    site = site_file(tmp, [protocol])
    pcap = tmp / f"{protocol}-wire.pcap"
    with pair.capture(pcap):
        result = pair.plantguard("probe", "--site", str(site), "--targets", DEVICE_IP, "--protocols", protocol,
                                 "--send", "--format", "json", "--evidence", str(tmp / "evidence"),
                                 "--db", str(tmp / "probe.db"), *extra)
    return probe_json(result), pcap


def target_record(report: dict) -> dict:
    (rec,) = [t for t in report["targets"] if t["ip"] == DEVICE_IP]
    return rec


def statuses(rec: dict) -> dict:
    return {q["query"]: q["status"] for q in rec["queries"]}


def nmap(pair, *args: str) -> ET.Element:
    if shutil.which("nmap") is None:
        pytest.skip("needs nmap") if not os.environ.get("CI") else pytest.fail("needs nmap in CI")
    r = subprocess.run(["ip", "netns", "exec", pair.probe, "nmap", "-n", "-Pn", "-oX", "-", *args, DEVICE_IP],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    return ET.fromstring(r.stdout)


def script(root: ET.Element, sid: str) -> ET.Element:
    found = root.find(f".//script[@id='{sid}']")
    assert found is not None, f"nmap {sid} gave no output"
    return found


def packets(pcap: Path, bpf: str) -> int:
    """How many packets of a capture match a tcpdump filter."""
    r = subprocess.run(["tcpdump", "-r", str(pcap), "-n", bpf], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return len(r.stdout.splitlines())


def evidence_assets(report: dict):
    """The probe's evidence pcap as the passive pipeline reads it (assets, with their seen lists)."""
    from plantguard.capture.engine import analyze
    from plantguard.inventory.build import build_assets
    return {a.ip: a for a in build_assets(analyze([report["evidence"]]), None, [])}


# --- SNMP ------------------------------------------------------------------------------------

def snmpd_conf(tmp: Path) -> Path:
    conf = tmp / "snmpd.conf"
    conf.write_text(f"""engineID {ENGINE_TEXT}
rocommunity {COMMUNITY} 10.77.0.0/24
sysDescr {SYS['description']}
sysName {SYS['name']}
sysLocation {SYS['location']}
sysContact {SYS['contact']}
sysObjectID .1.3.6.1.4.1.{NET_SNMP_ENTERPRISE}.3.2.10
createUser pgtest SHA "pgtest-auth-secret" AES "pgtest-priv-secret"
rouser pgtest priv
""", encoding="utf-8")
    (tmp / "snmp-state").mkdir()
    return conf


def start_snmpd(pair, tmp: Path):
    if not Path(SNMPD).exists():
        pytest.skip("needs Debian's snmpd") if not os.environ.get("CI") else pytest.fail("needs snmpd in CI")
    conf = snmpd_conf(tmp)
    return pair.start(pair.device, ["env", f"SNMP_PERSISTENT_DIR={tmp / 'snmp-state'}", SNMPD, "-f", "-Lo", "-C",
                                    "-c", str(conf), "-M", str(tmp), "-m", "", f"udp:{DEVICE_IP}:161"])


@pytest.mark.slow
def test_snmp_system_group_and_engine_id(pair, tmp_path, monkeypatch):
    monkeypatch.setenv("PLANTGUARD_PROBE_COMMUNITY", COMMUNITY)
    agent = start_snmpd(pair, tmp_path)
    try:
        report, pcap = run_probe(pair, tmp_path, "snmp")
        # a community the agent does not accept: no answer (the credential test failed), while
        # engine discovery, which needs no credential, still names the agent
        monkeypatch.setenv("PLANTGUARD_PROBE_COMMUNITY", "public")
        (tmp_path / "wrong").mkdir()
        refused, _ = run_probe(pair, tmp_path / "wrong", "snmp", "--timeout", "1")
        sysdescr = nmap(pair, "-sU", "-p", "161", "--script", "snmp-sysdescr,snmp-info",
                        "--script-args", f"creds.snmp=:{COMMUNITY}")
    finally:
        stop(agent)
    rec = target_record(report)
    assert statuses(rec) == {"snmp.system": "answered", "snmp.engine-id": "answered"}
    ident = rec["identity"]
    for key, value in SYS.items():
        assert ident[key] == value, key
    assert ident["sys_object_id"] == f"1.3.6.1.4.1.{NET_SNMP_ENTERPRISE}.3.2.10"
    assert ident["enterprise"] == NET_SNMP_ENTERPRISE
    # RFC 3411 text engine id: enterprise with the top bit set, format 4, the configured text
    engine = (0x80000000 | NET_SNMP_ENTERPRISE).to_bytes(4, "big") + b"\x04" + ENGINE_TEXT.encode()
    assert ident["snmp_engine_id"] == engine.hex()
    # the wire, read by the passive decoders, says the same as the probe's own evidence
    assert passive_identity(pcap, DEVICE_IP) == ident
    wrong = target_record(refused)
    assert statuses(wrong) == {"snmp.system": "no answer", "snmp.engine-id": "answered"}
    assert wrong["identity"] == {"snmp_engine_id": engine.hex(), "enterprise": NET_SNMP_ENTERPRISE}
    # nmap: sysDescr from snmp-sysdescr, the engine id's enterprise and text from snmp-info
    descr = script(sysdescr, "snmp-sysdescr").get("output").strip().splitlines()[0].strip()
    assert descr == ident["description"]
    info = {e.get("key"): (e.text or "").strip() for e in script(sysdescr, "snmp-info").iter("elem")}
    assert info["engineIDData"] == ENGINE_TEXT
    assert info["enterprise"].lower().startswith("net-snmp")


def test_dry_run_sends_nothing_and_names_the_community_test(pair, tmp_path, monkeypatch):
    """Without --send every frame of the three protocols is built and validated, none leaves; the
    SNMP query says that sending a community is a credential test, and sends the environment's."""
    monkeypatch.setenv("PLANTGUARD_PROBE_COMMUNITY", COMMUNITY)
    site = site_file(tmp_path, ["snmp", "opcua", "http"])
    before = pair.tx_packets()
    args = ("probe", "--site", str(site), "--targets", DEVICE_IP, "--protocols", "snmp,opcua,http")
    text, js = pair.plantguard(*args), pair.plantguard(*args, "--format", "json")
    assert pair.tx_packets() == before
    assert text.returncode == 0 and js.returncode == 0, text.stderr + js.stderr
    assert "sending a community is itself a credential test" in text.stdout
    plan = {q["query"]: q for q in json.loads(js.stdout)["frames"]}
    assert set(plan) == {"snmp.system", "snmp.engine-id", "opcua.endpoints", "http.head", "http.head-tls"}
    assert all(q["status"] == "planned" for q in plan.values())
    ops = {qid: [op for f in q["frames"] for op in f["operations"]] for qid, q in plan.items()}
    assert ops == {"snmp.system": ["get"], "snmp.engine-id": ["get"], "http.head": ["HEAD"],
                   "http.head-tls": ["HEAD"],
                   "opcua.endpoints": ["connection set-up", "OpenSecureChannel", "GetEndpoints", "CloseSecureChannel"]}
    from plantguard.protocols.snmp import parse_message
    msg = parse_message(bytes.fromhex(plan["snmp.system"]["frames"][0]["hex"]))
    assert msg.version == 1 and msg.community == COMMUNITY.encode()
    assert [v[0] for v in msg.varbinds] == ["1.3.6.1.2.1.1.%d.0" % i for i in range(1, 7)]
    discovery = parse_message(bytes.fromhex(plan["snmp.engine-id"]["frames"][0]["hex"]))
    assert discovery.version == 3 and discovery.flags == 0x04 and discovery.engine_id == b"" and not discovery.varbinds


# --- OPC UA ----------------------------------------------------------------------------------

OPCUA_SERVER = """
import asyncio, datetime, sys
from asyncua import Server, ua

async def main(ip, name, app_uri, product_uri, manufacturer):
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://{ip}:4840")
    server.set_server_name(name)
    await server.set_application_uri(app_uri)
    server.product_uri, server.manufacturer_name = product_uri, manufacturer
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    await server.set_build_info(product_uri, manufacturer, name, "2.1.0", "1", datetime.datetime.now())
    async with server:
        while True:
            await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:]))
"""


# nmap has no OPC UA script: asyncua's own client is the second opinion
OPCUA_CLIENT = """
import asyncio, json, sys
from asyncua import Client

async def main(url):
    eps = await Client(url).connect_and_get_server_endpoints()
    # asyncua spells the mode None as None_ (None is a Python keyword)
    print(json.dumps([{"url": e.EndpointUrl, "product": e.Server.ApplicationName.Text,
                       "application_uri": e.Server.ApplicationUri, "product_uri": e.Server.ProductUri,
                       "security_mode": e.SecurityMode.name.rstrip("_"), "policy": e.SecurityPolicyUri} for e in eps]))

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.slow
def test_opcua_get_endpoints(pair, tmp_path):
    pytest.importorskip("asyncua")
    (tmp_path / "ua_server.py").write_text(OPCUA_SERVER, encoding="utf-8")
    server = pair.start(pair.device, [sys.executable, str(tmp_path / "ua_server.py"), DEVICE_IP, OPCUA["product"],
                                      OPCUA["application_uri"], OPCUA["product_uri"], OPCUA["manufacturer"]],
                        ready=6.0)
    try:
        report, pcap = run_probe(pair, tmp_path, "opcua")
        (tmp_path / "ua_client.py").write_text(OPCUA_CLIENT, encoding="utf-8")
        client = subprocess.run(["ip", "netns", "exec", pair.probe, sys.executable, str(tmp_path / "ua_client.py"),
                                 f"opc.tcp://{DEVICE_IP}:4840"], capture_output=True, text=True, timeout=60)
    finally:
        stop(server)
    assert client.returncode == 0, client.stderr
    rec = target_record(report)
    assert statuses(rec) == {"opcua.endpoints": "answered"}
    (q,) = rec["queries"]
    assert q["frames_sent"] == 4 and q["frames_answered"] == 3      # HEL, OPN, GetEndpoints answered; CLO not
    ident = rec["identity"]
    for key in ("product", "application_uri", "product_uri"):
        assert ident[key] == OPCUA[key], key
    (endpoint,) = ident["endpoints"]
    assert endpoint["url"] == f"opc.tcp://{DEVICE_IP}:4840" and endpoint["security_mode"] == "None"
    assert endpoint["policy"].endswith("#None") and "anonymous" in endpoint["user_tokens"]
    assert passive_identity(pcap, DEVICE_IP) == ident
    (theirs,) = json.loads(client.stdout)
    assert {k: ident[k] for k in ("product", "application_uri", "product_uri")} == \
        {k: theirs[k] for k in ("product", "application_uri", "product_uri")}
    assert (endpoint["url"], endpoint["security_mode"], endpoint["policy"]) == \
        (theirs["url"], theirs["security_mode"], theirs["policy"])


# --- HTTP and HTTPS --------------------------------------------------------------------------

WEB_SERVER = """
import http.server, ssl, sys, threading

class Handler(http.server.BaseHTTPRequestHandler):
    server_version, sys_version = sys.argv[2], ""
    page = b"<html><head><title>RTU web</title></head><body>ok</body></html>"

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()

    def do_GET(self):
        self.do_HEAD()
        self.wfile.write(self.page)

    def log_message(self, *args):
        pass

class KeepOpen(Handler):
    # like many embedded servers: HTTP/1.1 kept open whatever the client asks (its close ends it)
    protocol_version = "HTTP/1.1"

    def do_HEAD(self):
        super().do_HEAD()
        self.close_connection = False

plain = http.server.ThreadingHTTPServer((sys.argv[1], 80), Handler)
tls = http.server.ThreadingHTTPServer((sys.argv[1], 443), KeepOpen)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=plain.serve_forever, daemon=True).start()
tls.serve_forever()
"""


def self_signed(tmp: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate and key, and its SHA-256 fingerprint (hex)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERT_CN),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, CERT_ORG)])
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(CERT_CN)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "web.crt", tmp / "web.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert.fingerprint(hashes.SHA256()).hex()


@pytest.mark.slow
def test_http_head_and_https_certificate(pair, tmp_path):
    cert, key, fingerprint = self_signed(tmp_path)
    (tmp_path / "web.py").write_text(WEB_SERVER, encoding="utf-8")
    web = pair.start(pair.device, [sys.executable, str(tmp_path / "web.py"), DEVICE_IP, SERVER_HEADER,
                                   str(cert), str(key)])
    try:
        report, pcap = run_probe(pair, tmp_path, "http")
        scan = nmap(pair, "-sT", "-p", "80,443", "--script", "http-headers,ssl-cert")
    finally:
        stop(web)
    rec = target_record(report)
    assert statuses(rec) == {"http.head": "answered", "http.head-tls": "answered"}
    ident = rec["identity"]
    assert ident["banner"] == SERVER_HEADER and ident["software"] == SERVER_HEADER
    assert passive_identity(pcap, DEVICE_IP) == ident
    # both connections closed without a reset: port 80 by the server (HTTP/1.0), 443 by our
    # close_notify and FIN (the server keeps it open)
    assert packets(pcap, "tcp[tcpflags] & tcp-rst != 0") == 0
    assert packets(pcap, "src host 10.77.0.1 and tcp dst port 443 and tcp[((tcp[12] >> 4) * 4)] = 21") == 1
    # HTTPS: the certificate, in clear in the evidence (TLS 1.2) and on the wire alike
    assets = evidence_assets(report)
    (presented,) = [c for c in assets[DEVICE_IP].seen["certificates"].as_list() if c.get("port") == 443]
    assert presented["fingerprint"] == fingerprint and presented["self_signed"] is True
    assert f"CN={CERT_CN}" in presented["subject"] and f"O={CERT_ORG}" in presented["subject"]
    from plantguard.capture.engine import analyze
    from plantguard.inventory.build import build_assets
    (wire,) = [a for a in build_assets(analyze([str(pcap)]), None, []) if a.ip == DEVICE_IP]
    assert [c["fingerprint"] for c in wire.seen["certificates"].as_list()] == [fingerprint]
    # nmap: the Server header (http-headers on port 80) and the certificate (ssl-cert on 443)
    ports = {p.get("portid"): p for p in scan.iter("port")}
    headers = script(ports["80"], "http-headers").get("output")
    assert f"Server: {SERVER_HEADER}" in headers
    nse_cert = script(ports["443"], "ssl-cert")
    subject = {e.get("key"): e.text for e in nse_cert.find("table[@key='subject']")}
    assert subject["commonName"] == CERT_CN and subject["organizationName"] == CERT_ORG
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    nse_pem = x509.load_pem_x509_certificate(nse_cert.find("elem[@key='pem']").text.encode())
    assert nse_pem.fingerprint(hashes.SHA256()).hex() == presented["fingerprint"]
    validity = {e.get("key"): e.text for e in nse_cert.find("table[@key='validity']")}
    assert presented["not_before"].startswith(validity["notBefore"])
    assert presented["not_after"].startswith(validity["notAfter"])
