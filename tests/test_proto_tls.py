"""TLS against Zeek's ssl.log / x509.log / notice.log baselines (version, cipher, curve, SNI,
alerts, every certificate of every chain, expired and weak-key notices) and tshark."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

import pytest
from conftest import analyze_shared, shared_path
from support.baselines import Score, zeek_log
from support.decode import deep_observations, of_kind, packet, stream
from support.packets import pcap_bytes, read_pcap
from support.peers import need_tshark, tshark_fields, tshark_many

from plantguard.capture.engine import analyze
from plantguard.protocols import ftp, registry, tls
from plantguard.protocols.tls.ciphers import CIPHER_SUITES, is_weak

Z = "baselines/zeek/"
T = "pcaps/zeek/tls/"
SSL_LOGS = [
    (T + "tls-conn-with-extensions.pcap", "scripts.base.protocols.ssl.basic"),
    (T + "CVE-2015-3194.pcap", "scripts.base.protocols.ssl.cve-2015-3194"),
    (T + "dhe.pcap", "scripts.base.protocols.ssl.dhe"),
    (T + "ecdhe.pcap", "scripts.base.protocols.ssl.ecdhe"),
    (T + "ecdsa-cert.pcap", "scripts.base.protocols.ssl.ecdsa"),
    (T + "tls1.2.pcap", "scripts.base.protocols.ssl.tls-1.2"),
    (T + "tls-1.2-handshake-failure.pcap", "scripts.base.protocols.ssl.tls-1.2-handshake-failure"),
    (T + "tls13draft23-chrome67.0.3368.0-canary.pcap", "scripts.base.protocols.ssl.tls13-version"),
    (T + "tls1_1.pcap", "scripts.base.protocols.ssl.tls1_1"),
    ("pcaps/zeek/ftp/ftp-auth-tls.pcap", "scripts.base.protocols.ftp.ftp-auth-tls"),
]
X509_LOGS = [SSL_LOGS[i] for i in (0, 3, 4, 5, 8)]   # the tests that also wrote x509.log


def zeek_version(v: str) -> str:
    """Our version names in Zeek's spelling: TLSv1.2 -> TLSv12, TLSv1.3-draft23 -> TLSv13-draft23."""
    return v.replace("TLSv1.", "TLSv1")


def per_connection(obs):
    """Observations grouped by connection (client ip, client port, server ip, server port)."""
    conns: dict = {}
    for o in obs:
        if o.proto != "tls":
            continue
        if o.subject == "dst":     # client -> server
            key = (o.src, o.sport, o.dst, o.dport)
        else:                      # server -> client
            key = (o.dst, o.dport, o.src, o.sport)
        conns.setdefault(key, []).append(o)
    return conns


def summary(obs) -> dict:
    out: dict = {}
    for o in obs:
        if o.kind == "tls" and o.subject == "src":
            for k in ("version", "cipher", "curve", "dh_bits"):
                if o.data.get(k) is not None:
                    out.setdefault(k, o.data[k])
        elif o.kind == "tls" and o.data.get("sni"):
            out.setdefault("sni", o.data["sni"])
        elif o.kind == "error":
            out["last_alert"] = o.data["name"]
        elif o.kind == "certificate":
            out.setdefault("fps", []).append(o.data["fingerprint"])
    return out


def test_connections_match_zeek_ssl_log():
    score = Score()
    for pcap, test in SSL_LOGS:
        conns = per_connection(deep_observations(shared_path(pcap)))
        for row in zeek_log(shared_path(Z + test + "/ssl.log")):
            key = (row["id.orig_h"], int(row["id.orig_p"]), row["id.resp_h"], int(row["id.resp_p"]))
            what = f"{pcap} {key}"
            if not score.check(what + " seen", key in conns, True):
                continue
            s = summary(conns[key])
            dash = lambda v: "-" if v is None else v   # noqa: E731
            score.check(what + " version", zeek_version(s["version"]) if "version" in s else "-", row["version"])
            score.check(what + " cipher", dash(s.get("cipher")), row["cipher"])
            score.check(what + " curve", dash(s.get("curve")), row["curve"])
            score.check(what + " server_name", dash(s.get("sni")), row["server_name"])
            score.check(what + " last_alert", dash(s.get("last_alert")), row["last_alert"])
            fps = row["cert_chain_fps"]
            if fps not in ("-", "(empty)"):
                score.check(what + " chain", s.get("fps"), fps.split(","))
    score.assert_agrees(1.0, at_least=50)


def test_certificates_match_zeek_x509_log():
    score = Score()
    for pcap, test in X509_LOGS:
        certs = {o.data["fingerprint"]: o.data for o in deep_observations(shared_path(pcap)) if o.kind == "certificate"}
        rows = zeek_log(shared_path(Z + test + "/x509.log"))
        assert rows
        for row in rows:
            c = certs.get(row["fingerprint"])
            what = f"{pcap} {row['certificate.subject'][:30]}"
            if not score.check(what + " seen", c is not None, True):
                continue
            epoch = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()  # noqa: E731
            score.check(what + " serial", c["serial"], row["certificate.serial"])
            score.check(what + " subject", c["subject"], row["certificate.subject"])
            score.check(what + " issuer", c["issuer"], row["certificate.issuer"])
            score.check(what + " not_before", epoch(c["not_before"]), float(row["certificate.not_valid_before"]))
            score.check(what + " not_after", epoch(c["not_after"]), float(row["certificate.not_valid_after"]))
            score.check(what + " sig_alg", c["sig_alg"], row["certificate.sig_alg"])
            score.check(what + " key_type", c["key_type"], row["certificate.key_type"])
            score.check(what + " key_bits", str(c["key_bits"]), row["certificate.key_length"])
            if row["certificate.curve"] != "-":
                # Zeek uses the OpenSSL short name for P-256 (prime256v1 == secp256r1)
                score.check(what + " curve", {"secp256r1": "prime256v1"}.get(c["curve"], c["curve"]),
                            row["certificate.curve"])
            san = row["san.dns"]
            score.check(what + " san", ",".join(c["san_dns"]) or "-", san)
            ca = row["basic_constraints.ca"]
            score.check(what + " is_ca", "-" if c["is_ca"] is None else ("T" if c["is_ca"] else "F"), ca)
            score.check(what + " self_signed", c["self_signed"], row["certificate.subject"] == row["certificate.issuer"])
    score.assert_agrees(1.0, at_least=100)


def test_expired_and_expiring_certificates_match_zeek_notices():
    rows = zeek_log(shared_path(Z + "scripts.policy.protocols.ssl.expiring-certs/notice.log"))
    obs = deep_observations(shared_path(T + "tls-expired-cert.pcap"))
    leaves = {o.data["subject"]: o for o in obs if o.kind == "certificate" and o.data["position"] == 0}
    assert len(rows) == 2
    for row in rows:
        subject = re.match(r"Certificate (.*?) (?:expired at|is going to expire at) ", row["msg"]).group(1)
        cert = leaves[subject.replace("\\\\", "\\")]
        when = re.search(r"(\d{4}-\d\d-\d\d)-(\d\d:\d\d:\d\d)", row["msg"])
        assert cert.data["not_after"] == f"{when.group(1)}T{when.group(2)}Z"
        not_after = datetime.fromisoformat(cert.data["not_after"].replace("Z", "+00:00")).timestamp()
        assert cert.src == row["id.resp_h"] and cert.dst == row["id.orig_h"]
        if row["note"] == "SSL::Certificate_Expired":
            assert not_after < cert.ts
        else:
            assert cert.ts <= not_after < cert.ts + 30 * 86400


def test_weak_keys_old_versions_and_weak_ciphers_match_zeek_notices():
    text = shared_path(Z + "scripts.policy.protocols.ssl.weak-keys/notice-out.log").read_text()
    assert "weak DH parameters with 1024 key bits" in text
    dhe = deep_observations(shared_path(T + "dhe.pcap"))
    assert [o.data["dh_bits"] for o in dhe if o.kind == "tls" and "dh_bits" in o.data] == [1024]
    assert shared_path(Z + "scripts.base.protocols.ssl.dhe/.stdout").read_text().strip().endswith("1024")
    leaf = [o for o in dhe if o.kind == "certificate" and o.data["position"] == 0][0]
    assert leaf.data["subject"] == "emailAddress=denicadmmail@arcor.de,CN=www.lilawelt.net,C=US"
    assert leaf.data["key_bits"] == 2048          # "weak certificate with 2048 bit key" at Zeek's test threshold
    assert "protocol version SSLv2" in text
    v2 = deep_observations(shared_path(T + "ssl-v2.pcap"))
    assert {o.data.get("version") for o in v2 if o.kind == "tls" and o.subject == "src"} == {"SSLv2"}
    assert all(o.data["weak_cipher"] for o in v2 if o.kind == "tls" and "weak_cipher" in o.data)
    assert "unsafe cipher suite TLS_RSA_WITH_RC4_128_MD5" in text
    v3 = deep_observations(shared_path(T + "ssl.v3.pcap"))
    hellos = [o for o in v3 if o.kind == "tls" and o.subject == "src" and o.data.get("cipher")]
    assert hellos and all(o.data["cipher"] == "TLS_RSA_WITH_RC4_128_MD5" and o.data["weak_cipher"] for o in hellos)
    weak = [o for o in v3 if o.kind == "certificate" and "dresdner-privat" in (o.data.get("subject") or "")]
    assert weak and weak[0].data["key_bits"] == 1024


def test_client_hello_versions_and_tls13_draft():
    lines = shared_path(Z + "scripts.base.protocols.ssl.tls-1.2/.stdout").read_text().splitlines()
    client = [ln.split(", ") for ln in lines if ln.startswith("client")][0]
    obs = deep_observations(shared_path(T + "tls1.2.pcap"))
    ch = [o for o in obs if o.kind == "tls" and o.subject == "dst"][0]
    assert zeek_version(ch.data["client_version"]) == client[2]
    obs = deep_observations(shared_path(T + "tls13draft23-chrome67.0.3368.0-canary.pcap"))
    ch = [o for o in obs if o.kind == "tls" and o.subject == "dst"][0]
    assert ch.data["offered_versions"][0] == "TLSv1.3-draft23" and ch.data["sni"] == "tls13.crypto.mozilla.org"
    sh = [o for o in obs if o.kind == "tls" and o.subject == "src"][0]
    assert sh.data["version_code"] == 0x7F17 and not sh.data["weak_cipher"]
    assert not of_kind(obs, "certificate")        # TLS 1.3 certificates travel encrypted


def test_ftp_auth_tls_hands_over_to_tls():
    r = analyze_shared("pcaps/zeek/ftp/ftp-auth-tls.pcap")
    (sess,) = of_kind(r.observations, "session", "ftp")
    assert sess.data["encrypted"] is True
    sh = [o for o in of_kind(r.observations, "tls", "tls") if o.subject == "src"]
    assert sh[0].data["version"] == "TLSv1.3" and sh[0].data["cipher"] == "TLS_AES_256_GCM_SHA384"
    assert registry.by_name("ftp") is ftp


def test_agrees_with_tshark_on_handshakes_and_certificates():
    need_tshark()
    score = Score()
    fields = ["tls.handshake.type", "tls.handshake.version", "tls.handshake.ciphersuite",
              "tls.handshake.extensions.supported_version", "tls.handshake.extensions_server_name",
              "tls.handshake.certificate", "tls.alert_message.desc"]
    pcaps = sorted(shared_path(T).glob("*.pcap"))
    peer = tshark_many(pcaps, "tls.handshake or tls.alert_message", fields)
    for pcap in pcaps:
        ours: dict[int, list] = {}
        for o in deep_observations(pcap):
            ours.setdefault(o.frame, []).append(o)
        for row in peer[pcap]:
            obs = ours.get(row["frame"], [])
            what = f"{pcap.name}#{row['frame']}"
            types = row["tls.handshake.type"]
            if "2" in types:
                sh = [o for o in obs if o.kind == "tls" and o.subject == "src" and "cipher_code" in o.data]
                if not score.check(what + " server hello", len(sh), 1):
                    continue
                versions = row["tls.handshake.extensions.supported_version"] or row["tls.handshake.version"][types.index("2"):]
                score.check(what + " version", sh[0].data["version_code"], int(versions[-1] if row[
                    "tls.handshake.extensions.supported_version"] else versions[0], 16))
                suites = row["tls.handshake.ciphersuite"]
                score.check(what + " cipher", sh[0].data["cipher_code"], int(suites[-1], 16))
            if "1" in types:
                ch = [o for o in obs if o.kind == "tls" and o.subject == "dst" and "cipher_count" in o.data]
                if score.check(what + " client hello", len(ch), 1):
                    sni = row["tls.handshake.extensions_server_name"]
                    score.check(what + " sni", ch[0].data.get("sni"), sni[0] if sni else None)
            if row["tls.handshake.certificate"]:
                fps = [hashlib.sha256(bytes.fromhex(c.replace(":", ""))).hexdigest()
                       for c in row["tls.handshake.certificate"]]
                score.check(what + " certificates", [o.data["fingerprint"] for o in obs if o.kind == "certificate"], fps)
            if row["tls.alert_message.desc"]:
                score.check(what + " alert", [o.data["code"] for o in obs if o.kind == "error"],
                            [int(v) for v in row["tls.alert_message.desc"]])
    score.assert_agrees(at_least=60)


def test_cipher_table_and_weak_flags():
    assert CIPHER_SUITES[0x0004] == "TLS_RSA_WITH_RC4_128_MD5" and CIPHER_SUITES[0x1301] == "TLS_AES_128_GCM_SHA256"
    weak = {n for n in CIPHER_SUITES.values() if is_weak(n)}
    assert "TLS_RSA_EXPORT_WITH_RC4_40_MD5" in weak and "TLS_DH_anon_WITH_AES_128_CBC_SHA" in weak
    assert "TLS_RSA_WITH_3DES_EDE_CBC_SHA" in weak and "TLS_RSA_WITH_NULL_SHA256" in weak
    assert "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" not in weak and "TLS_CHACHA20_POLY1305_SHA256" not in weak
    assert "TLS_EMPTY_RENEGOTIATION_INFO_SCSV" not in weak


def test_signature_and_split_records():
    assert tls.signature(b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03")
    assert not tls.signature(b"\x16\x03\x01\x00\xc8\x0b")        # a handshake that is no hello
    assert not tls.signature(b"GET / HTTP/1.1\r\n")
    assert tls.signature(b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10")   # SSLv2 CLIENT-HELLO
    # a ClientHello arriving one byte at a time still yields its SNI
    name = b"plc.example"
    sni = b"\x00\x00" + (len(name) + 5).to_bytes(2, "big") + (len(name) + 3).to_bytes(2, "big") + b"\x00" \
        + len(name).to_bytes(2, "big") + name
    body = b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00" + len(sni).to_bytes(2, "big") + sni
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    rec = b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs
    obs = stream([(True, rec[i:i + 1]) for i in range(len(rec))], tls, dport=443)
    (ch,) = obs
    assert ch.data["sni"] == "plc.example" and ch.data["cipher_count"] == 1 and ch.subject == "dst"


@pytest.mark.parametrize("payload", [b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", b"\x15\x03\x03\x00\x02\x02\x28",
                                     b"\x16\x03\x03\xff\xff", b"\x80\x03\x04\x00\x01", b"\x17\x03\x03\x00\x00"])
def test_odd_records_do_not_raise(payload):
    obs = tls.decode(packet(payload, dport=443))
    assert isinstance(obs, list)


def _server_hello(version: int, suite: int, exts: bytes = b"") -> bytes:
    body = version.to_bytes(2, "big") + b"\x11" * 32 + b"\x00" + suite.to_bytes(2, "big") + b"\x00"
    if exts:
        body += len(exts).to_bytes(2, "big") + exts
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x00" + len(hs).to_bytes(2, "big") + hs


def test_sslv3_server_hello_and_v2_compatible_client_hello():
    # SSLv2-format ClientHello offering TLS 1.0 (old clients), answered with an SSLv3 ServerHello
    specs = bytes.fromhex("000004" "00002f" "010080")
    v2 = b"\x01\x03\x01" + len(specs).to_bytes(2, "big") + b"\x00\x00\x00\x10" + specs + b"\x22" * 16
    hello = bytes([0x80 | (len(v2) >> 8), len(v2) & 0xFF]) + v2
    assert tls.signature(hello)
    obs = stream([(True, hello), (False, _server_hello(0x0300, 0x0004))], tls, dport=443)
    ch = [o for o in obs if o.subject == "dst"][0]
    assert ch.data["offered_versions"] == ["TLSv1.0"] and ch.data["cipher_count"] == 3 and ch.data["offered_weak"]
    sh = [o for o in obs if o.subject == "src"][0]
    assert (sh.data["version"], sh.data["cipher"], sh.data["weak_cipher"]) == ("SSLv3", "TLS_RSA_WITH_RC4_128_MD5", True)


def test_tls13_server_hello_via_supported_versions_and_hello_retry():
    exts = b"\x00\x2b\x00\x02\x03\x04" + b"\x00\x33\x00\x24\x00\x1d\x00\x20" + b"\x01" * 32
    obs = tls.decode(packet(_server_hello(0x0303, 0x1302, exts), sport=443, dport=40000, from_client=False))
    (sh,) = obs
    assert sh.data["version"] == "TLSv1.3" and sh.data["curve"] == "x25519" and sh.data["cipher"] == "TLS_AES_256_GCM_SHA384"
    retry = bytearray(_server_hello(0x0303, 0x1301, exts))
    retry[11:43] = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
    assert tls.decode(packet(bytes(retry), sport=443, dport=40000, from_client=False)) == []


def test_capture_started_after_the_handshake(tmp_path):
    """A real TLS 1.2 connection cut after its handshake: the record headers alone make it TLS
    (as tshark says), and nothing about the handshake is invented."""
    need_tshark()
    frames = read_pcap(shared_path(T + "tls1.2.pcap"))
    first_data = min(r["frame"] for r in tshark_fields(shared_path(T + "tls1.2.pcap"), "tls.record.content_type == 23",
                                                       ["tls.record.content_type"]))
    cut = tmp_path / "mid-stream.pcap"
    cut.write_bytes(pcap_bytes(frames[first_data - 1:]))
    types = {t for r in tshark_fields(cut, "tls", ["tls.record.content_type"]) for t in r["tls.record.content_type"]}
    assert "23" in types and "22" not in types     # application data (and the closing alert), no handshake
    res = analyze([cut])
    assert {f.app for f in res.flows if f.port == 443} == {"tls"}
    assert not [o for o in res.observations if o.proto == "tls"]


def test_payload_on_443_without_records_is_not_tls():
    """openics EIP captures: flows on tcp/443 that tshark labels tls only by port (every frame
    'Continuation Data', no record decoded in megabytes of stream); no payload of theirs is a
    record start, so plantguard leaves them unlabelled."""
    rels = [f"pcaps/ICS-Security-Tools/openics/EIP-{n}.pcap"
            for n in ("ChangePortConfigurationAttempt", "IPAddressChangeAttempt", "LockPLCAttempt")]
    for rel, rows in tshark_many([shared_path(r) for r in rels], "tcp.port == 443 && tcp.len > 0",
                                 ["tls.record.content_type", "tcp.payload"]).items():
        assert len(rows) > 500 and not any(r["tls.record.content_type"] for r in rows), rel
        assert not any(tls.signature(bytes.fromhex(r["tcp.payload"][0])) for r in rows), rel
    for rel in rels:
        assert {f.app for f in analyze_shared(rel).flows if f.port == 443} == {None}


def test_signature_checks_the_next_record_header():
    app = b"\x17\x03\x03\x00\x04" + b"\xaa" * 4
    assert tls.signature(app) and tls.signature(app + app) and tls.signature(app + b"\x17\x03")
    assert tls.signature(b"\x17\x03\x03\x40\x00" + b"\xaa" * 1000)      # the record goes on in the next segment
    assert not tls.signature(app + b"\x00\x00\x00\x00\x00")
    assert not tls.signature(app + b"\x17\x03\x07")
    assert not tls.signature(app + b"\x17\x03\x03\x00\x00")
