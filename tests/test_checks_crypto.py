"""crypto.weak-tls and crypto.cleartext-telemetry on real captures, with Zeek's TLS notices
(weak-keys, expiring-certs baselines) as the oracle, and hand-built sessions where no capture
shows the case."""
from __future__ import annotations

import pytest
from conftest import analyze_shared, shared_path
from support.baselines import zeek_log
from support.checks import asset, fails, flow, obs, passes, result, run

from plantguard.checks.crypto import certificate_problems, cipher_weakness, tls_version


def _weak(rel: str) -> dict[tuple, str]:
    """(server, port) -> the finding's title, for the weak-tls fails on one capture."""
    findings, _ = run("crypto.weak-tls", analyze_shared(rel))
    return {(f.assets[0], f.extra["port"]): f.title for f in fails(findings)}


# ---------------------------------------------------------------------------------------------
# crypto.weak-tls against Zeek's notices
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("trace", ["dhe", "ssl-v2", "ssl.v3"])
def test_weak_tls_agrees_with_zeek_weak_keys_notices(trace):
    """Every Zeek SSL::Old_Version / Weak_Cipher / Weak_Key notice on the trace is a problem in
    our finding for the same server, except Zeek's test-only 'certificate with 2048 bit key'
    (its test raises the threshold; plantguard follows the 2048-bit minimum)."""
    ours = _weak(f"pcaps/zeek/tls/{trace}.pcap")
    trace_hosts = {"dhe": "162.219.2.166", "ssl-v2": "91.227.4.92", "ssl.v3": "194.127.84.106"}
    log = shared_path("baselines/zeek/scripts.policy.protocols.ssl.weak-keys/notice-out.log")
    notices = [n for n in zeek_log(log) if n["id.resp_h"] == trace_hosts[trace]]
    assert notices
    checked = 0
    for n in notices:
        key = (n["id.resp_h"], int(n["id.resp_p"]))
        msg = n["msg"]
        if "2048 bit key" in msg:
            assert "2048-bit" not in ours.get(key, "")
            continue
        assert key in ours, (key, msg)
        title = ours[key]
        if n["note"] == "SSL::Old_Version":
            assert "SSL 2.0 negotiated" in title
        elif n["note"] == "SSL::Weak_Cipher":
            assert "RC4 cipher (TLS_RSA_WITH_RC4_128_MD5)" in title
        elif "DH parameters with 1024" in msg:
            assert "1024-bit Diffie-Hellman group" in title
        elif "certificate with 1024 bit key" in msg:
            assert "1024-bit RSA key" in title
        checked += 1
    assert checked


def test_weak_tls_agrees_with_zeek_expiring_certs_notices():
    ours = _weak("pcaps/zeek/tls/tls-expired-cert.pcap")
    notices = zeek_log(shared_path("baselines/zeek/scripts.policy.protocols.ssl.expiring-certs/notice.log"))
    assert len(notices) == 2
    for n in notices:
        title = ours[(n["id.resp_h"], int(n["id.resp_p"]))]
        date = n["msg"].rsplit(" at ", 1)[1][:10]
        if n["note"] == "SSL::Certificate_Expired":
            assert f"certificate expired on {date}" in title
        else:
            assert f"certificate expires on {date}, within 30 days" in title


def test_old_versions_on_real_captures():
    assert "TLS 1.1 negotiated" in _weak("pcaps/zeek/tls/tls1_1.pcap")[("216.58.192.14", 443)]
    assert "TLS 1.0 negotiated" in _weak("pcaps/zeek/tls/ssl.v3.pcap")[("194.127.84.106", 443)]


def test_modern_tls_passes_on_real_captures():
    for rel, server in (("pcaps/zeek/tls/ecdsa-cert.pcap", "23.92.19.75"),
                        ("pcaps/zeek/tls/tls13draft23-chrome67.0.3368.0-canary.pcap", "52.32.149.186")):
        findings, reason = run("crypto.weak-tls", analyze_shared(rel))
        assert reason is None and not fails(findings)
        assert passes(findings)[0].assets == [server]


def test_weak_tls_evidence_points_at_frames():
    findings, _ = run("crypto.weak-tls", analyze_shared("pcaps/zeek/tls/tls-expired-cert.pcap"))
    f = next(f for f in findings if f.assets == ["87.98.220.10"])
    assert f.severity == "medium"
    assert all(e.capture.endswith("tls-expired-cert.pcap") and e.frame for e in f.evidence)
    assert any("expired" in e.detail for e in f.evidence)


def test_no_tls_is_not_run():
    findings, reason = run("crypto.weak-tls", analyze_shared("pcaps/zeek/mqtt.pcap"))
    assert findings == [] and "no TLS handshake" in reason


def test_self_signed_device_certificate_built_by_hand():
    cert = obs("certificate", "tls", "10.10.1.10", "10.10.9.5", sport=443, position=0, subject="CN=plc",
               self_signed=True, not_before="2020-01-01T00:00:00Z", not_after="2040-01-01T00:00:00Z",
               key_type="rsa", key_bits=1024, sig_alg="md5WithRSAEncryption")
    root = obs("certificate", "tls", "10.10.1.10", "10.10.9.5", sport=443, position=1, self_signed=True,
               not_after="2001-01-01T00:00:00Z", sig_alg="sha1WithRSAEncryption")
    hello = obs("tls", "tls", "10.10.1.10", "10.10.9.5", sport=443, version="TLSv1.2",
                cipher="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    [f] = fails(run("crypto.weak-tls", result([hello, cert, root]), assets=[])[0])
    assert f.extra["problems"] == ["1024-bit RSA key", "certificate signed with md5WithRSAEncryption",
                                   "self-signed certificate"]
    assert f.severity == "medium"


@pytest.mark.parametrize("value, expected", [(771, (3, 3)), ("0x0301", (3, 1)), ("TLSv1.2", (3, 3)),
                                             ("TLS 1.3", (3, 4)), ("SSLv3", (3, 0)), ("SSLv2", (2, 0)),
                                             ("TLSv1", (3, 1)), (2, (2, 0)), (None, None), ("garbage", None)])
def test_tls_version_forms(value, expected):
    assert tls_version(value) == expected


@pytest.mark.parametrize("cipher, problem", [
    ("TLS_RSA_WITH_RC4_128_MD5", "RC4 cipher"), (0x0004, "RC4 cipher"), ("0x000A", "3DES cipher (64-bit block)"),
    ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", "export-grade cipher"), ("TLS_RSA_WITH_NULL_SHA", "NULL cipher (no encryption)"),
    ("TLS_DH_anon_WITH_AES_128_CBC_SHA", "anonymous key exchange (no server authentication)"),
    ("TLS_RSA_WITH_DES_CBC_SHA", "single-DES cipher"), ("TLS_AES_128_GCM_SHA256", None), (0xC02F, None)])
def test_cipher_weakness(cipher, problem):
    got = cipher_weakness(cipher)
    assert (got[0] if got else None) == problem


def test_certificate_problems_ignore_ca_self_signature():
    root = obs("certificate", "tls", "1.2.3.4", "10.0.0.1", position=2, self_signed=True, sig_alg="sha1WithRSA")
    assert certificate_problems(root) == []


# ---------------------------------------------------------------------------------------------
# crypto.cleartext-telemetry
# ---------------------------------------------------------------------------------------------

def test_mqtt_on_1883_on_real_capture():
    findings, reason = run("crypto.cleartext-telemetry", analyze_shared("pcaps/zeek/mqtt.pcap"))
    assert reason is None
    [f] = fails(findings)
    assert f.assets == ["10.0.1.4", "198.41.30.241"] and f.extra["protocol"] == "mqtt"
    assert f.extra["topics"] == ["SampleTopic"] and "SampleTopic" in f.title
    assert f.extra["events"] == sum(fl.packets for fl in analyze_shared("pcaps/zeek/mqtt.pcap").flows)


def test_opcua_security_mode_none_on_real_capture():
    """open62541 client and server on ::1 open their channel with SecurityMode None (the icsnpp
    baseline's opensecure_channel.log: security_mode 1)."""
    findings, _ = run("crypto.cleartext-telemetry",
                      analyze_shared("pcaps/icsnpp-opcua-binary/open62541_client-server_mainloop.pcap"))
    opc = [f for f in fails(findings) if f.extra["protocol"] == "opcua"]
    assert opc and opc[0].assets == ["::1", "::1"]
    assert "SecurityMode None" in opc[0].evidence[0].detail


def test_opcua_sign_and_encrypt_passes():
    s = obs("session", "opcua", "10.10.9.5", "10.10.1.10", dport=4840, subject="dst",
            security_mode="SignAndEncrypt", policy="http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256")
    findings, _ = run("crypto.cleartext-telemetry", result([s]), assets=[])
    assert not fails(findings)
    assert passes(findings)[0].extra["protocol"] == "opcua"


def test_http_from_a_sensor_fails_and_mqtt_over_tls_passes():
    r = result([], [flow("10.10.2.30", "10.40.0.10", 80, "http"), flow("10.10.2.31", "10.40.0.10", 8883, "tls"),
                    flow("10.20.0.5", "10.40.0.11", 80, "http")])
    assets = [asset("10.10.2.30", "sensor"), asset("10.10.2.31", "sensor"), asset("10.20.0.5", "it-host")]
    findings, _ = run("crypto.cleartext-telemetry", r, assets=assets)
    [f] = fails(findings)
    assert f.assets == ["10.10.2.30", "10.40.0.10"] and f.extra["protocol"] == "http"
    [p] = passes(findings)
    assert p.assets == ["10.10.2.31", "10.40.0.10"] and "MQTT over TLS" in p.title


def test_no_telemetry_is_not_run():
    findings, reason = run("crypto.cleartext-telemetry", analyze_shared("pcaps/zeek/ftp/ipv4.pcap"))
    assert findings == [] and "no telemetry protocol" in reason
