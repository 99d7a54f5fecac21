"""HTTP against Zeek's http.log baselines (method, host, uri, version, user agent, status,
Basic-auth user/password), HTTP/0.9, lower-case keywords, pipelining, SSDP, and tshark."""
from __future__ import annotations

import base64
import json
from urllib.parse import unquote

import pytest
from conftest import analyze_shared, shared_path
from support.baselines import Score, zeek_log
from support.decode import deep_observations, of_kind, packet, stream
from support.peers import need_tshark, tshark_fields, tshark_many

from plantguard.protocols import http, registry

Z = "baselines/zeek/scripts.base.protocols.http."
H = "pcaps/zeek/http/"
LOGS = [
    (H + "basic-auth-with-colon.pcap", Z + "http-basic-auth-colon/http.log"),
    (H + "curl_http_09.pcap", Z + "curl-http-09/http.log"),
    (H + "http-filename.pcap", Z + "http-filename/http.log"),
    (H + "http-lower-case.pcap", Z + "http-lower-case/http.log.standard"),
    (H + "http-lower-case-nonstandard-port.pcap", Z + "http-lower-case/http.log.nonstandard"),
    (H + "methods.pcap", Z + "http-methods/http.log"),
    (H + "no-version.pcap", Z + "no-version/http.log"),
]


def by_connection(obs):
    conns: dict = {}
    for o in obs:
        if o.proto != "http":
            continue
        key = (o.src, o.sport, o.dst, o.dport) if o.kind in ("operation", "credential") or \
            (o.kind == "identity" and o.data.get("user_agent")) else (o.dst, o.dport, o.src, o.sport)
        conns.setdefault(key, []).append(o)
    return conns


def test_requests_match_zeek_http_log():
    score = Score()
    for pcap, log in LOGS:
        conns = by_connection(deep_observations(shared_path(pcap)))
        rows: dict = {}
        for row in zeek_log(shared_path(log)):
            rows.setdefault((row["id.orig_h"], int(row["id.orig_p"]), row["id.resp_h"], int(row["id.resp_p"])), []).append(row)
        for key, txs in rows.items():
            obs = conns.get(key, [])
            ops = [o for o in obs if o.kind == "operation"]
            logged = [r for r in txs if r["method"] != "-"]
            what = f"{pcap} {key[1]}"
            score.check(what + " requests", len(ops), len(logged))
            for op, row in zip(ops, logged):
                score.check(what + " method", op.data["method"], row["method"])
                score.check(what + " host", op.data["host"] or "-", row["host"])
                # Zeek logs the URI %-decoded
                score.check(what + " uri", unquote(op.data["uri"]) or "(empty)", row["uri"])
                # (Zeek's `version` column holds the reply's version; compared with tshark instead)
            agents = [o.data["user_agent"] for o in obs if o.kind == "identity" and o.data.get("user_agent")]
            for row in txs:
                if row["user_agent"] != "-":
                    score.check(what + " user_agent", row["user_agent"] in agents, True)
                status = row["status_code"]
                errors = {o.data["code"] for o in obs if o.kind == "error"}
                if status not in ("-", "0"):
                    score.check(what + " status>=400", int(status) in errors, int(status) >= 400)
                if row["username"] != "-":
                    creds = [(o.data["user"], o.data["password"]) for o in obs if o.kind == "credential"]
                    score.check(what + " credentials", creds, [(row["username"], row["password"])])
    score.assert_agrees(at_least=150)


def test_basic_auth_with_colon_in_password_and_result():
    r = analyze_shared(H + "basic-auth-with-colon.pcap")
    (cred,) = of_kind(r.observations, "credential", "http")
    assert cred.data == {"user": "test", "password": "1:34", "secret_type": "basic", "cleartext": True,
                         "result": "success"}
    assert cred.subject == "dst" and cred.dport == 8000
    (svc,) = [o for o in of_kind(r.observations, "service", "http") if o.data.get("banner")]
    assert svc.data["software"] == "SimpleHTTP/0.6 Python/3.10.6" and svc.subject_port == 8000


def test_http09_and_lowercase_status_line_do_not_break_the_decode():
    for name in ("curl_http_09.pcap", "no-version.pcap", "http-lower-case.pcap", "methods.pcap"):
        r = analyze_shared(H + name)
        assert r.counters["decode_errors"] == 0
    r = analyze_shared(H + "http-lower-case-nonstandard-port.pcap")     # port 1234: found by signature
    assert [f.app for f in r.flows if f.port == 1234] == ["http"]
    banners = {o.data.get("banner") for o in of_kind(r.observations, "service", "http")}
    assert "nginx/1.18.0 (Ubuntu)" in banners


def test_status_codes_and_servers_agree_with_tshark():
    need_tshark()
    score = Score()
    pcaps = [shared_path(p) for p, _ in LOGS]
    peer = tshark_many(pcaps, "http.response or http.request",
                       ["http.request.method", "http.request.uri", "http.response.code", "http.server",
                        "http.user_agent", "http.host", "http.request.version"])
    for pcap in pcaps:
        ours: dict[int, list] = {}
        for o in deep_observations(pcap):
            ours.setdefault(o.frame, []).append(o)
        servers = {o.data.get("banner") for obs in ours.values() for o in obs if o.kind == "service"}
        for row in peer[pcap]:
            obs = ours.get(row["frame"], [])
            what = f"{pcap.name}#{row['frame']}"
            if row["http.request.method"]:
                ops = [o for o in obs if o.kind == "operation"]
                score.check(what + " methods", [o.data["method"] for o in ops], row["http.request.method"])
                # a request line without a target: tshark takes "HTTP/1.1" as the target, we
                # (like Zeek) take it as the version and leave the target empty
                score.check(what + " uris", [o.data["uri"] or "HTTP/1.1" for o in ops], row["http.request.uri"])
                versions = [v.replace("HTTP/", "") for v in row["http.request.version"]]
                if versions:
                    score.check(what + " version", [o.data["version"] for o in ops], versions)
                if row["http.host"]:
                    score.check(what + " host", [o.data["host"] for o in ops][:1], row["http.host"][:1])
            if row["http.response.code"]:
                code = int(row["http.response.code"][0])
                score.check(what + " error", [o.data["code"] for o in obs if o.kind == "error"][:1],
                            [code] if code >= 400 else [])
            if row["http.server"]:
                score.check(what + " server", row["http.server"][0] in servers, True)
    score.assert_agrees(at_least=100)


def test_identity_evidence_servers_and_agents():
    evidence = json.loads(shared_path("baselines/tshark-derived/identity_evidence.json").read_text())["files"]
    score = Score()
    for rel, kinds in evidence.items():
        if "http_server" not in kinds:
            continue
        r = analyze_shared("pcaps/" + rel[len("pcaps/"):])
        texts = {str(v) for o in r.observations if o.proto == "http"
                 for k, v in o.data.items() if k in ("banner", "software", "user_agent", "ssdp_server", "description")}
        for item in kinds["http_server"]:
            _key, _, value = item.partition("=")
            if value.startswith("Google Chrome") or value.startswith("Mu Dynamics"):
                continue  # tshark-side labels, not header text (see docs/baseline-differences/http.md)
            score.check(f"{rel} {item}", any(t.startswith(value.rstrip()) for t in texts), True)
    score.assert_agrees(at_least=10)


def test_server_header_and_page_title_are_the_servers_identity_user_agent_the_clients():
    """The Server header (tshark http.server) and the page's <title> (in tshark's http.file_data)
    name the server; the User-Agent (tshark http.user_agent) stays the client's user_agent, never
    a product, description or banner. basic-auth-with-colon.pcap serves a page (client and server
    are one host there); http-filename.pcap has them apart."""
    need_tshark()
    import re

    from plantguard.inventory.build import build_assets
    for rel, title in ((H + "basic-auth-with-colon.pcap", "Directory listing for /"), (H + "http-filename.pcap", None)):
        (resp, *_) = tshark_fields(shared_path(rel), "http.response", ["ip.src", "http.server", "http.file_data"])
        (req, *_) = tshark_fields(shared_path(rel), "http.request", ["ip.src", "http.user_agent"])
        m = re.search(r"<title>(.*?)</title>", (resp["http.file_data"] or [""])[0])
        assert (m.group(1) if m else None) == title
        assets = {a.ip: a for a in build_assets(analyze_shared(rel))}
        server, client = assets[resp["ip.src"][0]].identity, assets[req["ip.src"][0]].identity
        assert server["banner"] == server["software"] == resp["http.server"][0]
        assert server.get("title") == title
        assert client["user_agent"] == req["http.user_agent"][0]
        if client is not server:
            assert not {"product", "description", "software", "banner", "title"} & set(client)
    assert assets["54.175.222.246"].identity["software"] == "nginx"
    assert assets["10.1.9.63"].identity["user_agent"] == "curl/7.45.0"


def test_page_title_from_chunked_and_gzip_bodies_2xx_only():
    import gzip
    page = b"<html><head><title>SIMATIC S7-1200 &amp; HMI</title></head><body>" + b"x" * 20000 + b"</body></html>"
    packed = gzip.compress(page)
    responses = (b"HTTP/1.1 200 OK\r\nServer: Allegro-Software-RomPager/4.07\r\nContent-Type: text/html\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % 30 + page[:30] + b"\r\n"
                 + b"%x\r\n" % (len(page) - 30) + page[30:] + b"\r\n0\r\n\r\n"
                 b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: "
                 + str(len(packed)).encode() + b"\r\n\r\n" + packed
                 + b"HTTP/1.1 404 Not Found\r\nContent-Length: 39\r\n\r\n<html><title>404 Not Found</title></html>")
    requests = b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n" * 3
    chunks = [(True, requests)] + [(False, responses[i:i + 700]) for i in range(0, len(responses), 700)]
    obs = stream(chunks, http)
    titles = [o.data for o in of_kind(obs, "identity") if "title" in o.data]
    assert titles == [{"title": "SIMATIC S7-1200 & HMI", "product": "SIMATIC S7-1200", "model": "SIMATIC S7-1200",
                       "vendor": "Siemens"}]
    assert http.page_title(packed, "gzip") == "SIMATIC S7-1200 & HMI"


def test_pipelined_requests_chunked_bodies_and_auth_results():
    basic = base64.b64encode(b"admin:admin").decode()
    requests = (b"GET /a HTTP/1.1\r\nHost: plc\r\nAuthorization: Basic " + basic.encode() + b"\r\n\r\n"
                b"POST /b HTTP/1.1\r\nhost: plc\r\ncontent-length: 5\r\nauthorization: Basic "
                + base64.b64encode(b"admin:wrong") + b"\r\n\r\nhello"
                b"HEAD /c HTTP/1.1\r\nHost: plc\r\nUser-Agent: Scanner/1.0\r\n\r\n")
    responses = (b"HTTP/1.1 200 OK\r\nServer: Allegro-Software-RomPager/4.07\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"4\r\nabcd\r\n0\r\n\r\n"
                 b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"PLC web\"\r\nContent-Length: 3\r\n\r\nno!"
                 b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n")
    obs = stream([(True, requests[:70]), (True, requests[70:]), (False, responses[:50]), (False, responses[50:])], http)
    ops = of_kind(obs, "operation")
    assert [(o.data["method"], o.data["uri"], o.data["category"]) for o in ops] == \
        [("GET", "/a", "read"), ("POST", "/b", "write"), ("HEAD", "/c", "read")]
    creds = of_kind(obs, "credential")
    assert [(c.data["password"], c.data["result"]) for c in creds] == [("admin", "success"), ("wrong", "failure")]
    assert all(c.src == "10.0.0.1" and c.dst == "10.0.0.2" and c.subject == "dst" for c in creds)
    svc = [o.data for o in of_kind(obs, "service")]
    assert {"name": "http", "banner": "Allegro-Software-RomPager/4.07",
            "software": "Allegro-Software-RomPager/4.07", "version": "4.07"} in svc
    assert {"name": "http", "auth_scheme": "Basic", "realm": "PLC web"} in svc
    assert [o.data["code"] for o in of_kind(obs, "error")] == [401]
    assert of_kind(obs, "identity")[0].data["user_agent"] == "Scanner/1.0"


def test_ssdp_server_header_is_identity():
    msg = (b"NOTIFY * HTTP/1.1 \r\nHOST: 239.255.255.250:1900\r\nSERVER: Microsoft-WinCE/6.00 UPnP/1.0 "
           b"UPnP-Device-Host/1.0\r\nNTS: ssdp:alive\r\n\r\n")
    assert http.signature(msg) and registry.classify("udp", 1900, 1900, msg) is http
    (ident,) = http.decode(packet(msg, l4="udp", sport=1900, dport=1900, dst="239.255.255.250"))
    assert ident.kind == "identity" and ident.data["ssdp_server"].startswith("Microsoft-WinCE/6.00")


@pytest.mark.parametrize("payload,expected", [
    (b"GET / HTTP/1.1\r\n", True), (b"get /index.html http/1.1\r\n", True), (b"GET /x\r\n", True),
    (b"HTTP/1.0 200 OK\r\n", True), (b"CCM_POST / HTTP/1.1\r\n", True), (b"GETX\r\n", False),
    (b"\x16\x03\x01\x00", False), (b"SSH-2.0-OpenSSH\r\n", False), (b"220 FTP ready\r\n", False),
    (b"Hello world\r\n", False), (b"FOO bar\r\n", False),
    # a PMU discovery protocol (C37.118 capture, udp/4988) borrows SEARCH: not HTTP without HTTP/x.y
    (b"SEARCH * OMFIND/1.2\nPC_PORT: 4987\n", False), (b"SEARCH /index\r\n", True)])
def test_signature(payload, expected):
    assert http.signature(payload) is expected


def test_resynchronises_after_lost_segments():
    """A gap in the client stream (a lost segment mid-body) must not end the decode."""
    st: dict = {}
    obs = []
    first = b"POST /upload HTTP/1.1\r\nHost: hmi\r\nContent-Length: 5000\r\n\r\n" + b"x" * 1000
    obs += http.decode(packet(first, state=st, seq=100))
    later = b"y" * 700 + b"\r\nGET /status HTTP/1.1\r\nHost: hmi\r\nAuthorization: Basic " \
        + base64.b64encode(b"operator:1234") + b"\r\n\r\n"
    obs += http.decode(packet(later, state=st, seq=100 + len(first) + 3000))      # 3000 bytes never seen
    replies = b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    obs += http.decode(packet(replies, state=st, sport=80, dport=40000, from_client=False, seq=7000))
    assert [o.data["uri"] for o in of_kind(obs, "operation")] == ["/upload", "/status"]
    (cred,) = of_kind(obs, "credential")
    assert (cred.data["user"], cred.data["password"], cred.data["result"]) == ("operator", "1234", "success")


def test_tls_inside_an_accepted_connect_tunnel_is_decoded():
    """CONNECT plc.example:443, the proxy's 200, then a real TLS handshake (the bytes of
    zeek/tls/tls-conn-with-extensions.pcap): the ClientHello's SNI and the server's certificate are read through
    the tunnel, as tshark reads them from the original capture. A refused CONNECT opens nothing."""
    need_tshark()
    path = shared_path("pcaps/zeek/tls/tls-conn-with-extensions.pcap")
    rows = tshark_fields(path, "tcp.len > 0", ["tcp.srcport", "tcp.payload", "tls.handshake.extensions_server_name",
                                               "x509sat.printableString"])
    handshake = [(r["tcp.srcport"][0] != "443", bytes.fromhex(r["tcp.payload"][0])) for r in rows[:4]]
    sni = next(v for r in rows for v in r["tls.handshake.extensions_server_name"])
    connect = [(True, b"CONNECT plc.example:443 HTTP/1.1\r\nHost: plc.example:443\r\n\r\n"),
               (False, b"HTTP/1.1 200 Connection established\r\n\r\n")]
    obs = stream(connect + handshake, http, dport=3128)
    hello = [o for o in of_kind(obs, "tls") if o.data.get("sni")]
    assert {o.data["sni"] for o in hello} == {sni} and {o.proto for o in hello} == {"tls"}
    assert of_kind(obs, "certificate")
    refused = [(True, connect[0][1]), (False, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")]
    assert not of_kind(stream(refused + handshake, http, dport=3128), "tls")
