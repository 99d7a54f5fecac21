"""services.insecure on real captures (FTP, FTPS, HTTP, Telnet, SNMP) and hand-built services."""
from __future__ import annotations

from conftest import analyze_shared
from support.checks import asset, fails, flow, obs, passes, result, run


def test_ftp_server_on_real_capture():
    r = analyze_shared("pcaps/zeek/ftp/ftp-password-pass-command.pcap")
    findings, reason = run("services.insecure", r)
    assert reason is None
    [f] = fails(findings)
    assert f.assets == ["192.168.10.188"] and f.severity == "high"
    assert "FTP on tcp/21" in f.title and f.extra["banner"] == "FileZilla Server 1.9.1"
    assert f.extra["use_instead"] == "SFTP or FTPS" and f.extra["clients"] == ["192.168.10.132"]
    assert f.evidence and f.evidence[0].capture.endswith("ftp-password-pass-command.pcap")


def test_ftp_upgraded_to_tls_is_not_insecure():
    r = analyze_shared("pcaps/zeek/ftp/ftp-auth-tls.pcap")
    findings, _ = run("services.insecure", r)
    assert not fails(findings)
    assert passes(findings)[0].assets == ["127.0.0.1"]


def test_http_server_on_real_capture():
    r = analyze_shared("pcaps/zeek/http/basic-auth-with-colon.pcap")
    [f] = fails(run("services.insecure", r)[0])
    assert f.extra["service"] == "http" and f.extra["ports"] == ["tcp/8000"] and f.severity == "medium"


def test_telnet_on_an_odd_port_on_real_capture():
    r = analyze_shared("pcaps/zeek/telnet-auth-missing-name.pcap")
    [f] = fails(run("services.insecure", r)[0])
    assert f.assets == ["10.0.0.2"] and "Telnet on tcp/21" in f.title


def test_snmp_v1_agent_on_real_capture():
    r = analyze_shared("pcaps/zeek/snmp/snmpv1_get.pcap")
    [f] = fails(run("services.insecure", r)[0])
    assert f.assets == ["172.31.19.73"] and f.extra["ports"] == ["udp/161"]
    assert f.extra["events"] > 1


def test_snmpv3_without_authentication_on_real_capture():
    r = analyze_shared("pcaps/zeek/snmp/snmpv3_get_next.pcap")     # noAuthNoPriv
    assert fails(run("services.insecure", r)[0])


def test_snmpv3_with_authentication_passes():
    r = result([obs("service", "snmp", "10.10.1.20", "10.10.9.5", sport=161, l4="udp", name="snmp", version="snmpv3"),
                obs("credential", "snmp", "10.10.9.5", "10.10.1.20", dport=161, l4="udp", user="ops",
                    password=None, secret_type="usm", cleartext=False, auth=True, priv=True)],
               [flow("10.10.9.5", "10.10.1.20", 161, "snmp", l4="udp")])
    findings, _ = run("services.insecure", r, assets=[asset("10.10.1.20", "switch")])
    assert not fails(findings)
    assert passes(findings)[0].assets == ["10.10.1.20"]


def test_secure_services_pass_and_public_servers_are_ignored():
    r = result([], [flow("10.10.9.5", "10.10.1.20", 443, "tls"), flow("10.10.9.5", "10.10.1.20", 22, "ssh"),
                    flow("10.10.9.5", "93.184.216.34", 80, "http")])
    findings, _ = run("services.insecure", r, assets=[])
    assert not fails(findings)
    [p] = passes(findings)
    assert p.assets == ["10.10.1.20"] and p.extra["devices"] == 1


def test_port_fallback_is_reported_low_and_a_scan_is_not():
    answered = flow("10.10.9.5", "10.10.1.30", 23, None, packets=12, to_server=6)
    refused = flow("10.10.9.5", "10.10.1.31", 23, None, packets=2, to_server=1)
    findings, _ = run("services.insecure", result([], [answered, refused]), assets=[])
    [f] = fails(findings)
    assert f.assets == ["10.10.1.30"] and f.severity == "low" and "by port" in f.title


def test_vnc_and_tftp_are_insecure():
    r = result([], [flow("10.10.9.5", "10.10.1.40", 5900, "vnc"),
                    flow("10.10.1.41", "10.10.9.9", 69, "tftp", l4="udp")])
    findings, _ = run("services.insecure", r, assets=[])
    assert sorted(f.extra["service"] for f in fails(findings)) == ["tftp", "vnc"]


def test_nothing_served_is_not_run():
    findings, reason = run("services.insecure", result([], [flow("10.1.1.1", "10.1.1.2", 80, None, packets=1, to_server=1)]),
                           assets=[])
    assert findings == [] and "answered as a server" in reason
