"""What an asset said or was reached by, every distinct value (bounded, counted): User-Agents,
server banners, TLS server names and certificates, MQTT client ids, HTTP Host names, OPC UA
endpoint URLs; on real captures against tshark, and the bounds on hand-built observations."""
from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict

import pytest
from conftest import shared_path

from plantguard.capture.engine import analyze
from plantguard.inventory.asset import SEEN_CAP
from plantguard.inventory.build import build_assets
from plantguard.model import AnalysisResult, Flow, Observation

H = "pcaps/zeek/http/"


def _tshark(rels: list[str], display_filter: str, fields: list[str], extra: tuple = ()) -> list[list[str]]:
    """Rows (all occurrences of each field, comma-joined) of every capture."""
    if not shutil.which("tshark"):
        pytest.skip("tshark not installed")
    rows = []
    for rel in rels:
        cmd = ["tshark", "-n", "-r", str(shared_path(rel)), "-Y", display_filter, "-T", "fields",
               "-E", "occurrence=a", "-E", "aggregator=\x1f", *extra]
        for f in fields:
            cmd += ["-e", f]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
        rows += [line.split("\t") for line in out.splitlines()]
    return rows


def _assets(rels: list[str]) -> dict:
    return {a.key: a for a in build_assets(analyze([str(shared_path(r)) for r in rels]))}


def _values(asset, name: str) -> set:
    return {e["value"] for e in asset.as_dict()[name]}


def test_every_user_agent_of_a_client_not_only_the_first():
    """127.0.0.1 is the client of three captures, with three User-Agents (tshark http.user_agent):
    all three are kept, the identity keeps the first."""
    rels = [H + "curl_http_09.pcap", H + "http-lower-case.pcap", "pcaps/ICS-Security-Tools/IEC61850/m-send-req.mms.pcap",
            H + "http-filename.pcap"]
    peer = defaultdict(set)
    for src, ua in _tshark(rels, "http.request && tcp", ["ip.src", "http.user_agent"]):
        if ua:
            peer[src].add(ua)
    assert peer["127.0.0.1"] == {"curl/7.74.0", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                                 "Mu Dynamics"}
    assets = _assets(rels)
    for ip, agents in peer.items():
        assert _values(assets[ip], "user_agents") == agents
    local = assets["127.0.0.1"].as_dict()
    assert local["identity"]["user_agent"] == local["user_agents"][0]["value"] == "curl/7.74.0"
    assert local["distinct_values"]["user_agents"] == 3


def test_every_server_banner_with_its_port():
    """methods.pcap: the server answers with two Server headers (tshark http.server), both kept
    with port 80; an FTP greeting is kept with port 21."""
    rels = [H + "methods.pcap"]
    peer = {(src, int(port), server) for src, port, server in
            _tshark(rels, "http.response && http.server", ["ip.src", "tcp.srcport", "http.server"])}
    assert {p[2] for p in peer} == {"GFE/2.0", "gws"}
    server = _assets(rels)["173.194.75.103"].as_dict()
    assert {("173.194.75.103", e["port"], e["value"]) for e in server["banners"]} == peer
    responses = sum(1 for _ in _tshark(rels, "http.response && http.server", ["ip.src"]))
    assert sum(e["count"] for e in server["banners"]) <= responses
    rel = "pcaps/zeek/ftp/ftp-password-pass-command.pcap"
    ((src, port, greeting),) = _tshark([rel], "ftp.response.code == 220", ["ip.src", "tcp.srcport", "ftp.response.arg"])
    (entry,) = _assets([rel])[src].as_dict()["banners"]
    assert (entry["value"], entry["port"], entry["proto"]) == (greeting, int(port), "ftp")


def test_tls_server_names_on_the_server_asked():
    rels = ["pcaps/zeek/tls/tls-conn-with-extensions.pcap", "pcaps/zeek/tls/tls13draft23-chrome67.0.3368.0-canary.pcap",
            "pcaps/zeek/tls/heartbleed-encrypted.pcap"]
    peer = defaultdict(set)
    for dst, port, sni in _tshark(rels, "tls.handshake.extensions_server_name",
                                  ["ip.dst", "tcp.dstport", "tls.handshake.extensions_server_name"]):
        peer[dst].add((sni, int(port)))
    assert {s for names in peer.values() for s, _ in names} == {"ssl.gstatic.com", "tls13.crypto.mozilla.org",
                                                                "www.lilawelt.net"}
    assets = {}
    for rel in rels:
        assets.update(_assets([rel]))
    for dst, names in peer.items():
        assert {(e["value"], e["port"]) for e in assets[dst].as_dict()["tls_server_names"]} == names


def test_certificates_subject_issuer_validity_per_server():
    """tls1.2.pcap: the server's chain of three (tshark x509af.serialNumber and the validity
    times), each with subject, issuer, not_before, not_after."""
    rel = "pcaps/zeek/tls/tls1.2.pcap"
    ((src, port, serials, times),) = _tshark([rel], "tls.handshake.certificate",
                                             ["ip.src", "tcp.srcport", "x509af.serialNumber", "x509af.utcTime"])
    serials = [s.lstrip("0").upper() for s in serials.split("\x1f")]
    times = [t.replace(" (UTC)", "").replace(" ", "T") + "Z" for t in times.split("\x1f")]
    certs = _assets([rel])[src].as_dict()["certificates"]
    assert [c["serial"].lstrip("0").upper() for c in certs] == serials
    assert [t for c in certs for t in (c["not_before"], c["not_after"])] == times
    assert [c["position"] for c in certs] == [0, 1, 2] and all(c["port"] == int(port) for c in certs)
    assert certs[0]["subject"].startswith("CN=*.taleo.net") and certs[0]["issuer"] == certs[1]["subject"]


def test_mqtt_client_ids_of_the_client():
    rel = "pcaps/zeek/mqtt.pcap"
    peer = [(src, cid) for src, cid in _tshark([rel], "mqtt.msgtype == 1", ["ip.src", "mqtt.clientid"])]
    client = _assets([rel])[peer[0][0]].as_dict()
    assert [e["value"] for e in client["mqtt_client_ids"]] == [cid for _, cid in peer]
    assert client["identity"]["mqtt_client_id"] == peer[0][1]


def test_http_host_names_the_server_is_reached_by():
    rels = [H + "methods.pcap", H + "http-filename.pcap", H + "basic-auth-with-colon.pcap"]
    peer = defaultdict(set)
    for dst, port, host in _tshark(rels, "http.request && http.host", ["ip.dst", "tcp.dstport", "http.host"]):
        peer[dst].add((host, int(port)))
    assets = {}
    for rel in rels:
        assets.update(_assets([rel]))
    for dst, hosts in peer.items():
        assert {(e["value"], e["port"]) for e in assets[dst].as_dict()["http_hosts"]} == hosts


@pytest.mark.parametrize("rel", ["pcaps/icsnpp-opcua-binary/opcua_with-gap.pcap",
                                 "pcaps/icsnpp-opcua-binary/open62541_client-server_mainloop.pcap",
                                 "pcaps/icsnpp-opcua-binary/opcua_with-gap_with-handshake.pcap"])
def test_opcua_endpoint_urls_per_server(rel):
    """The endpoint URLs of a connection (tshark: opcua.transport.endpoint of the Hello,
    opcua.EndpointUrl of GetEndpoints / CreateSession and of the answers) are the server's (the
    side on port 4840). (In the last capture the three addresses share one MAC, so one asset.)"""
    peer = defaultdict(set)
    for src, src6, sport, dst, dst6, hello, urls in _tshark(
            [rel], "opcua.transport.endpoint || opcua.EndpointUrl",
            ["ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "opcua.transport.endpoint", "opcua.EndpointUrl"],
            ("-d", "tcp.port==4840,opcua")):
        server = (src or src6) if sport == "4840" else (dst or dst6)
        peer[server] |= set(filter(None, [hello, *urls.split("\x1f")]))
    assert peer
    assets = build_assets(analyze([str(shared_path(rel))]))
    by_server = defaultdict(set)
    for server, urls in peer.items():
        (asset,) = [a for a in assets if server in a.ips]
        by_server[asset.key] |= urls
    for a in assets:
        assert _values(a, "opcua_endpoints") == by_server.get(a.key, set())


def test_lists_are_bounded_and_counted():
    flows = [Flow("tcp", "10.0.0.5", "10.0.0.10", 40000, 80, None, None, None, "http", 10, 600, 5, 300, 1.0, 2.0,
                  "c.pcap", 1, {})]
    obs = []
    for i in range(SEEN_CAP + 4):
        o = Observation("identity", "http", "c.pcap", i + 1, 1.5, "10.0.0.5", "10.0.0.10", None, None, "tcp", 40000,
                        80, None, "src", {"user_agent": f"agent/{i}"})
        o.count = 3                                   # each folded from three sightings
        obs.append(o)
    obs.append(Observation("identity", "http", "c.pcap", 99, 1.6, "10.0.0.5", "10.0.0.10", None, None, "tcp", 40001,
                           80, None, "src", {"user_agent": "agent/0"}))
    client = {a.key: a for a in build_assets(AnalysisResult(flows=flows, observations=obs))}["10.0.0.5"].as_dict()
    assert len(client["user_agents"]) == SEEN_CAP
    assert client["distinct_values"] == {"user_agents": SEEN_CAP + 4}
    first = client["user_agents"][0]
    assert (first["value"], first["count"], first["frame"]) == ("agent/0", 4, 1)
