"""credentials.default and credentials.cleartext, on real captures (FTP, HTTP Basic, SNMP) and on
hand-built logins where no capture shows the case; plus the shipped default-credential list."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import analyze_shared, shared_path
from support.checks import fails, obs, passes, result, run
from support.scripts import load_script

from plantguard.checks._common import mask
from plantguard.knowledge import creds

ROOT = Path(__file__).resolve().parents[1]


def _json(findings) -> str:
    return json.dumps([f.as_dict() for f in findings])


# ---------------------------------------------------------------------------------------------
# the shipped list
# ---------------------------------------------------------------------------------------------

def test_default_list_has_provenance_and_licences():
    head = "\n".join(creds.provenance())
    assert "ihebski/DefaultCreds-cheat-sheet" in head and "MIT" in head
    assert "ITI/ICS-Security-Tools" in head and "CC BY 4.0" in head
    assert "sha256" in head
    notice = (ROOT / "src/plantguard/data/default_credentials.NOTICE.md").read_text()
    assert "Copyright (c) 2022 Ihebski" in notice and "Permission is hereby granted" in notice


def test_default_list_content():
    rows = creds.default_credentials()
    assert len(rows) > 3000
    assert all(r.user or r.password for r in rows)
    # the well-known SNMP communities and ICS vendors' defaults are in
    assert {c.password for c in creds.match_community("public")} == {"public"}
    assert creds.match_community("private")
    assert not creds.match_community("s3cr3t-community")
    schneider = creds.match_login("sysdiag", "factorycast@schneider", "ftp")
    assert schneider and schneider[0].vendor.startswith("Schneider") and "ftp" in schneider[0].protocols
    assert creds.match_login("ADMIN", "admin")           # user names compare without case
    assert not creds.match_login("admin", "ADMIN-not-default")
    assert not creds.match_login("admin", None)          # no visible password, no match


def test_data_file_is_what_the_build_tool_makes(tmp_path):
    shared = shared_path("creds/DefaultCreds-Cheat-Sheet.csv").parents[1]
    mod = load_script("tools/build_data/default_credentials.py")
    out = tmp_path / "dc.csv"
    assert mod.main(["x", str(shared), str(out)]) == 0
    assert out.read_text() == (ROOT / "src/plantguard/data/default_credentials.csv").read_text()
    body = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    header = next(csv.reader(io.StringIO(body[0])))
    assert header == ["vendor", "product", "user", "password", "protocols", "source"]


@pytest.mark.parametrize("secret, shown", [("public", "p****c"), ("ab", "**"), ("x", "*"), ("", "(empty)"),
                                           (None, "(not visible)"), ("1:34", "1**4")])
def test_mask(secret, shown):
    assert mask(secret) == shown


# ---------------------------------------------------------------------------------------------
# credentials.default
# ---------------------------------------------------------------------------------------------

def test_default_snmp_community_on_real_capture():
    r = analyze_shared("pcaps/zeek/snmp/snmpv1_get.pcap")
    findings, reason = run("credentials.default", r)
    assert reason is None
    [f] = fails(findings)
    assert f.severity == "critical"
    assert f.assets[:2] == ["172.31.19.73", "172.31.19.54"]
    assert "'p****c'" in f.title and "SNMP" in f.title
    assert f.extra["events"] == 30                    # every request carried the community
    assert len(f.evidence) >= 1 and f.evidence[0].frame >= 1
    assert "public" not in _json(findings).replace("public address", "")


def test_anonymous_ftp_is_a_default_login():
    r = result([obs("credential", "ftp", "10.0.0.5", "10.0.0.21", dport=21, user="anonymous",
                    password="guest@", secret_type="password", cleartext=True, result="success")])
    findings, _ = run("credentials.default", r)
    [f] = fails(findings)
    assert "anonymous" in f.title and f.extra["outcome"] == "accepted"
    assert f.assets == ["10.0.0.21", "10.0.0.5"]


def test_anonymous_ftp_to_an_internet_server_is_not_a_plant_default():
    """Zeek's trace logs in anonymously to a public FTP server: that server is not a plant device
    that kept its factory defaults."""
    r = analyze_shared("pcaps/zeek/ftp/ipv4.pcap")
    findings, reason = run("credentials.default", r)
    assert reason is None and not fails(findings) and passes(findings)


def test_non_default_ftp_login_passes():
    r = analyze_shared("pcaps/zeek/ftp/ftp-password-pass-command.pcap")
    findings, reason = run("credentials.default", r)
    assert reason is None and not fails(findings)
    [p] = passes(findings)
    assert p.extra["logins_checked"] == 1


def test_http_basic_non_default_passes():
    r = analyze_shared("pcaps/zeek/http/basic-auth-with-colon.pcap")
    findings, _ = run("credentials.default", r)
    assert passes(findings) and not fails(findings)


def test_no_visible_secret_means_not_run():
    r = analyze_shared("pcaps/zeek/snmp/snmpv3_get_next.pcap")
    findings, reason = run("credentials.default", r)
    assert findings == [] and "no login with a visible secret" in reason


def test_default_telnet_login_to_plc_built_by_hand():
    r = result([obs("credential", "telnet", "10.10.1.50", "10.10.1.10", dport=23, frame=7,
                    user="admin", password="admin", secret_type="password", cleartext=True, result="success"),
                obs("credential", "telnet", "10.10.1.50", "10.10.1.10", dport=23, frame=9,
                    user="admin", password="admin", secret_type="password", cleartext=True, result="failure")])
    findings, _ = run("credentials.default", r, assets=[])
    [f] = fails(findings)
    assert f.severity == "critical" and "accepted" in f.title and "admin/a***n" in f.title
    assert [e.frame for e in f.evidence] == [7, 9]
    assert f.controls["iec62443-3-3"] and "T0812" in f.attack


def test_rejected_default_login_is_reported_lower():
    r = result([obs("credential", "mqtt", "10.10.2.5", "10.40.0.10", dport=1883, user="guest",
                    password="guest", secret_type="password", cleartext=True, result="failure")])
    [f] = fails(run("credentials.default", r, assets=[])[0])
    assert f.severity == "medium" and f.extra["outcome"] == "rejected"


def test_opcua_user_with_ics_default():
    r = result([obs("credential", "opcua", "10.10.9.5", "10.10.1.10", dport=4840, user="winccd",
                    password="winccpass", secret_type="password", cleartext=True, result=None)])
    [f] = fails(run("credentials.default", r, assets=[])[0])
    assert "Siemens WinCC 7.x" in f.extra["documented_for"]
    assert "winccpass" not in _json([f]) and "w*******s" in f.title
    assert f.extra["outcome"] == "result not seen"


def test_secret_inside_a_vendor_name_is_masked_too():
    r = result([obs("credential", "http", "10.10.9.5", "10.10.1.10", dport=80, user="Administrator",
                    password="Wonderware", secret_type="basic", cleartext=True, result="success")])
    [f] = fails(run("credentials.default", r, assets=[])[0])
    assert "Wonderware" not in _json([f]) and "W********e Intouch" in f.extra["documented_for"]


# ---------------------------------------------------------------------------------------------
# credentials.cleartext
# ---------------------------------------------------------------------------------------------

def test_cleartext_ftp_password_on_real_capture():
    r = analyze_shared("pcaps/zeek/ftp/ftp-password-pass-command.pcap")
    findings, _ = run("credentials.cleartext", r)
    [f] = fails(findings)
    assert f.severity == "high" and "Admin" in f.title
    assert f.assets == ["192.168.10.188", "192.168.10.132"]
    assert "q****y" in f.evidence[0].detail and "qwerty" not in _json(findings)


def test_cleartext_http_basic_on_real_capture():
    r = analyze_shared("pcaps/zeek/http/basic-auth-with-colon.pcap")
    [f] = fails(run("credentials.cleartext", r)[0])
    assert f.extra["protocol"] == "http" and f.extra["users"] == ["test"]
    assert "1**4" in f.evidence[0].detail and "1:34" not in _json([f])


def test_cleartext_snmp_community_on_real_capture():
    r = analyze_shared("pcaps/zeek/snmp/snmpv2_get.pcap")
    [f] = fails(run("credentials.cleartext", r)[0])
    assert f.title.startswith("SNMP community sent in clear text from 10.10.1.159")


def test_cleartext_passes_when_only_protected_logins():
    r = analyze_shared("pcaps/zeek/snmp/snmpv3_get_next.pcap")   # USM user, no secret on the wire
    findings, reason = run("credentials.cleartext", r)
    assert reason is None and not fails(findings)
    assert passes(findings)


def test_cleartext_passes_for_tls_protected_login_built_by_hand():
    r = result([obs("credential", "mqtt", "10.10.2.5", "10.40.0.10", dport=8883, user="sensor",
                    password=None, secret_type="password", cleartext=False, result="success")])
    findings, _ = run("credentials.cleartext", r, assets=[])
    assert not fails(findings)
    assert any("10.40.0.10" in p.title and "protected" in p.title for p in passes(findings))
