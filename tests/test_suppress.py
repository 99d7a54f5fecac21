"""Accepted risks (`--suppress FILE`): on the demo plant's findings and a real Modbus capture, the
accepted findings leave the failing counts, --fail-on, compliance, roadmap and patch plan, and are
listed apart in every report; an expired suppression accepts nothing and says so, an unused one is
reported, and a bad file is one line (exit 2)."""
import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import analyze_shared, shared_path
from plantguard.report import render

ROOT = Path(__file__).resolve().parents[1]

ACCEPTED = """\
- check: crypto.*
  assets: [hmi-line1]
  reason: HMI firmware cannot do TLS 1.2 <script>alert(1)</script> | **bold**
  owner: "=HYPERLINK(\\"http://x\\") j.smith"
  expires: 2099-12-31
- check: sbom.missing
  assets: 10.10.1.0/24
  reason: vendors asked; SBOMs due with the next framework contract
  owner: procurement
  expires: 2099-06-30
  ticket: PRC-12
- check: services.insecure
  finding: telnet
  reason: gateway has no SSH; port locked to ews-01
  owner: ot-team
  expires: 2099-01-31
  ticket: CHG-77
- check: credentials.default
  reason: was to be fixed last year
  owner: alice
  expires: 2020-01-01
- check: dnp3.*
  reason: nothing here speaks DNP3
  owner: bob
  expires: 2099-12-31
- check: zzz.*
  reason: "\\e[2J wipes a terminal"
  owner: "\\e[31mmallory\\u202e"
  expires: 2019-05-01
"""
# the demo's four critical findings, accepted (JSON, under a suppressions: key)
CRITICAL = {"suppressions": [
    {"check": "credentials.default", "reason": "r", "owner": "o", "expires": "2099-01-01"},
    {"check": "plc.unauthorized-program-change", "reason": "r", "owner": "o", "expires": "2099-01-01"},
    {"check": "segmentation.it-ot-bridge", "finding": "guest host", "reason": "r", "owner": "o",
     "expires": "2099-01-01"}]}


def run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PLANTGUARD_DB"}
    return subprocess.run([sys.executable, "-m", "plantguard", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env, check=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from plantguard.demo import build_demo
    d = tmp_path_factory.mktemp("suppress")
    pcap, site = build_demo(d)
    (d / "accepted.yaml").write_text(ACCEPTED)
    (d / "critical.json").write_text(json.dumps(CRITICAL))
    base = run("assess", pcap, "--site", site, "-f", "json", "-o", d / "base.json", "-q", "--fail-on", "critical",
               cwd=d)
    assert base.returncode == 1, base.stderr          # the demo has critical findings
    p = run("assess", pcap, "--site", site, "-f", "json", "-o", d / "s.json", "-q", "--suppress", d / "accepted.yaml",
            cwd=d)
    assert p.returncode == 0, p.stderr
    return {"dir": d, "pcap": pcap, "site": site, "stderr": p.stderr,
            "base": json.loads((d / "base.json").read_text()), "c": json.loads((d / "s.json").read_text())}


def _failing(c):
    return [f for f in c["findings"] if f["status"] == "fail"]


def test_accepted_findings_leave_the_counts(demo):
    base, c = demo["base"], demo["c"]
    accepted = [f for f in c["findings"] if f["suppressed"]]
    assert sorted((f["check"], f["assets"][0]) for f in accepted) == [
        ("crypto.weak-tls", "10.10.1.20"), ("sbom.missing", "10.10.1.10"), ("sbom.missing", "10.10.1.11"),
        ("sbom.missing", "10.10.1.12"), ("services.insecure", "10.10.2.5")]
    assert all(f["status"] == "fail" for f in accepted)                      # status stays pass | fail
    assert "Telnet" in next(f["title"] for f in accepted if f["check"] == "services.insecure")
    telnet = next(f for f in accepted if f["check"] == "services.insecure")["suppressed"]
    assert telnet == {"reason": "gateway has no SSH; port locked to ews-01", "owner": "ot-team",
                      "expires": "2099-01-31", "ticket": "CHG-77", "file": str(demo["dir"] / "accepted.yaml"),
                      "entry": 3}
    s, b = c["summary"], base["summary"]
    assert b["suppressed"] == 0 and s["suppressed"] == 5
    assert s["failed"] == b["failed"] - 5 and len(_failing(c)) == len(_failing(base))
    assert s["findings"]["medium"] == b["findings"]["medium"] - 4
    assert s["findings"]["high"] == b["findings"]["high"] - 1
    assert all(f["suppressed"] is None for f in base["findings"])
    assert "5 accepted risks" in demo["stderr"]


def test_compliance_and_roadmap_leave_accepted_findings_out(demo):
    base, c = demo["base"], demo["c"]

    def roadmap(contract):
        rm = contract["roadmap"]
        return {ch: i["assets"] for h in ("immediate", "1-3 months", "3+ months") for i in rm[h] for ch in i["checks"]}

    assert "crypto.weak-tls" in roadmap(base) and "crypto.weak-tls" not in roadmap(c)
    assert roadmap(c)["sbom.missing"] == ["10.10.2.5"] and len(roadmap(base)["sbom.missing"]) == 4
    def fails(contract):
        return sum(fw["summary"]["fail"] for fw in contract["compliance"].values())

    assert fails(c) < fails(base)


def test_expired_suppression_accepts_nothing_and_says_so(demo):
    c = demo["c"]
    creds = [f for f in c["findings"] if f["check"] == "credentials.default"]
    assert len(creds) == 2 and all(f["status"] == "fail" and f["suppressed"] is None for f in creds)
    assert c["summary"]["findings"]["critical"] == 4
    msg = f"{demo['dir'] / 'accepted.yaml'}: suppression 4 for credentials.default expired on 2020-01-01 (alice)"
    assert f"warning: {msg}: 2 finding(s) fail again" in demo["stderr"]
    use = {u["entry"]: u for u in c["suppressions"]}
    assert (use[4]["status"], use[4]["matched"], use[4]["line"]) == ("expired", 2, 18)
    assert [use[n]["status"] for n in (1, 2, 3)] == ["active"] * 3
    assert [use[n]["matched"] for n in (1, 2, 3)] == [1, 3, 1]


def test_user_text_is_shown_literally_on_the_terminal(demo):
    line = next(ln for ln in demo["stderr"].splitlines() if "suppression 6 for zzz.*" in ln)
    assert "expired on 2019-05-01" in line and "mallory" in line
    assert "\x1b" not in demo["stderr"] and "\u202e" not in demo["stderr"]


def test_unused_suppression_is_reported(demo):
    assert "suppression 5 for dnp3.* matches no failing finding (unused)" in demo["stderr"]
    use = next(u for u in demo["c"]["suppressions"] if u["entry"] == 5)
    assert (use["status"], use["matched"], use["owner"]) == ("unused", 0, "bob")


@pytest.mark.slow
def test_fail_on_leaves_accepted_findings_out(demo):
    d = demo["dir"]
    p = run("assess", demo["pcap"], "--site", demo["site"], "-f", "json", "-o", d / "crit.json", "-q",
            "--fail-on", "critical", "--suppress", d / "critical.json", "--suppress", d / "accepted.yaml", cwd=d)
    assert p.returncode == 0, p.stderr
    c = json.loads((d / "crit.json").read_text())
    assert c["summary"]["findings"]["critical"] == 0 and c["summary"]["suppressed"] == 9
    # the first file's entry accepts the default credentials the second file's expired one does not
    assert {f["suppressed"]["file"] for f in c["findings"] if f["check"] == "credentials.default"} == \
        {str(d / "critical.json")}
    p = run("assess", demo["pcap"], "--site", demo["site"], "-f", "json", "-o", d / "crit2.json", "-q",
            "--fail-on", "high", "--suppress", d / "critical.json", cwd=d)
    assert p.returncode == 1, p.stderr                 # high findings remain


def test_html_lists_accepted_risks_apart_escaped(demo):
    d = demo["dir"]
    p = run("assess", demo["pcap"], "--site", demo["site"], "-o", d / "r.html", "-q", "--suppress",
            d / "accepted.yaml", cwd=d)
    assert p.returncode == 0, p.stderr
    html = (d / "r.html").read_text()
    block = html[html.index('<div class="finding-group" id="findings-suppressed">'):]
    block = block[:block.index("Checks that passed")]
    assert "Accepted risks (5)" in block and '<ul class="suppression-warnings">' in block
    items = re.findall(r'<details class="finding f-(\w+)" id="F-\w+" data-severity="\w+" data-status="suppressed"[^>]*>', block)
    assert sorted(items) == ["high"] + ["medium"] * 4
    assert html.count('data-status="suppressed"') == 5
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in block
    assert "procurement" in block and "2099-06-30" in block and "PRC-12" in block
    assert "expired on 2020-01-01 (alice)" in block and "(unused)" in block
    # collapsed: a reader opens the ones to review
    assert not re.search(r'data-status="suppressed"[^>]* open>', html)
    # the problems list above holds none of them
    problems = html[html.index('<section id="findings">'):html.index('<div class="finding-group" id="findings-suppressed">')]
    assert "TLS 1.0 negotiated" not in problems and "serves Telnet" not in problems
    assert "MQTT login admin" in problems                       # the expired one's finding fails again


def test_markdown_sarif_csv_mark_accepted_risks(demo):
    c = demo["c"]
    md = render(c, "md")
    part = md[md.index("### Accepted risks (5)"):]
    assert "<script>" not in md and "&lt;script&gt;" in part
    assert "suppression 4 for credentials.default expired on 2020-01-01 (alice)" in part
    assert "procurement" in part and "CHG-77" in part
    assert "**bold**" not in md and "| **" not in part          # device and user text stays literal
    problems = md[md.index("## Problems found"):md.index("### Accepted risks")]
    assert "TLS 1.0 negotiated" not in problems

    sarif = json.loads(render(c, "sarif"))
    results = sarif["runs"][0]["results"]
    supp = [r for r in results if "suppressions" in r]
    assert len(supp) == 5 and all(r["kind"] == "fail" for r in supp)
    assert all(s["kind"] == "external" and s["status"] == "accepted" for r in supp for s in r["suppressions"])
    tls = next(r for r in supp if r["ruleId"] == "crypto.weak-tls")["suppressions"][0]
    assert "HMI firmware cannot do TLS 1.2" in tls["justification"] and tls["properties"]["expires"] == "2099-12-31"
    notes = [n["message"]["text"] for n in sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]]
    assert any("expired on 2020-01-01" in n for n in notes) and any("(unused)" in n for n in notes)

    rows = list(csv.DictReader(io.StringIO(render(c, "csv"))))
    accepted = [r for r in rows if r["suppressed"]]
    assert len(accepted) == 5 and all(r["status"] == "fail" for r in accepted)
    assert any(r["suppressed"].startswith("accepted by ot-team until 2099-01-31; ticket CHG-77") for r in accepted)
    assert not any(r["suppressed"] for r in rows if r["check"] == "credentials.default")


@pytest.mark.slow
def test_patch_plan_leaves_accepted_advisories_out(demo):
    d = demo["dir"]
    db = d / "intel.db"
    p = run("intel", "import", shared_path("vuln"), "--db", db, cwd=d)
    assert p.returncode == 0, p.stderr
    (d / "vuln.yaml").write_text("- {check: vuln.*, assets: [plc-1756-enbt], reason: isolated cell, owner: ot,"
                                 " expires: 2099-01-01}\n")
    plans = []
    for extra in ([], ["--suppress", d / "vuln.yaml"]):
        p = run("intel", "plan", demo["pcap"], "--site", demo["site"], "--db", db, "-f", "json", *extra, cwd=d)
        assert p.returncode == 0, p.stderr
        plans.append([e["asset"] for e in json.loads(p.stdout)])
    assert "10.10.1.12" in plans[0] and "10.10.1.12" not in plans[1]
    assert set(plans[0]) - set(plans[1]) == {"10.10.1.12"}


def test_real_capture_assets_match_and_siem_does_not_alert():
    """A real Modbus capture: two of the HMI's unverifiable writes accepted by address; the SIEM
    events leave them out (a SOC expects no alert for an accepted risk), the rest are sent."""
    from plantguard.assess import run_assessment
    from plantguard.siem import from_assessment
    from plantguard.suppress import parse
    result = analyze_shared("pcaps/ICS-Security-Tools/ModbusTCP/ModbusTCP.pcap")
    rules = parse("- {check: plc.unauthorized-write, assets: [141.81.0.24, 141.81.0.64], reason: test bench,"
                  " owner: lab, expires: 2099-01-01}\n", "bench.yaml")
    c = run_assessment(result, None, db=None, suppressions=rules)
    accepted = [f for f in c["findings"] if f["suppressed"]]
    assert sorted(f["assets"][0] for f in accepted) == ["141.81.0.24", "141.81.0.64"]
    writes = [f for f in c["findings"] if f["check"] == "plc.unauthorized-write" and f["status"] == "fail"]
    assert len(writes) > 2 and c["summary"]["failed"] == len(_failing(c)) - 2
    events = [e for e in from_assessment(c, assets=False) if e.kind == "finding"]
    assert len(events) == c["summary"]["failed"]
    assert not any("141.81.0.24 (plc)" in e.message for e in events)
    everything = [e for e in from_assessment(c, assets=False, failed_only=False) if e.action == "check-accepted"]
    assert len(everything) == 2


BAD = [
    ("- check: crypto.*\n  owner: a\n  expires: 2099-01-01\n", "bad.yaml:1: entry 1: reason: missing"),
    ("- check: crypto.*\n  reason: r\n  owner: a\n", "bad.yaml:1: entry 1: expires: missing (accepted risks expire"),
    (("- check: a\n  reason: r\n  owner: a\n  expires: 2099-01-01\n- check: crypto.*\n  reason: r\n  owner: a\n"
      "  expires: 31/12/2099\n"), "bad.yaml:8: entry 2: expires: '31/12/2099' is not a date (YYYY-MM-DD)"),
    ("- check: crypto.*\n  reason: r\n  owner: a\n  expires: 2099-01-01\n  approver: b\n",
     "bad.yaml:5: entry 1: approver: unknown key (known: check, assets, finding, reason, owner, expires, ticket)"),
    ("- check: crypto.*\n  reason: [r\n", "bad.yaml:3: not YAML or JSON"),
    ("just some words\n", "bad.yaml:1: expected a list of suppressions"),
    ('[{"check": "x", "reason": "", "owner": "a", "expires": "2099-01-01"}]', "bad.yaml:1: entry 1: reason:"),
]


@pytest.mark.parametrize("text,line", BAD, ids=["no-reason", "no-expiry", "bad-date", "unknown-key", "not-yaml",
                                                 "not-a-list", "empty-reason"])
def test_bad_file_names_file_line_entry_and_field(tmp_path, text, line):
    from plantguard.suppress import SuppressionError, load_file
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(SuppressionError) as exc:
        load_file(tmp_path / "bad.yaml")
    msg = str(exc.value)
    assert msg.startswith(f"{tmp_path / line}") and "\n" not in msg, msg


@pytest.mark.parametrize("which", [0, 4, 6])
def test_bad_file_is_one_line_exit_2(demo, tmp_path, which):
    text, line = BAD[which]
    (tmp_path / "bad.yaml").write_text(text)
    p = run("assess", demo["pcap"], "-f", "json", "-o", "-", "--suppress", "bad.yaml", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("plantguard: error: " + line), p.stderr
    assert p.stdout == ""


def test_readme_example_is_a_valid_suppressions_file():
    from plantguard.suppress import parse
    text = (ROOT / "README.md").read_text()
    example = re.search(r"### Accepted risks\n.*?```yaml\n(.*?)```", text, re.DOTALL).group(1)
    [rule] = parse(example, "README.md")
    assert rule.rule.check == "crypto.*" and rule.rule.expires.isoformat() == "2027-06-30"
    assert rule.rule.assets == ["hmi-line1", "10.10.2.0/24"] and rule.rule.ticket == "CHG-1234"


def test_monitor_raises_no_alert_for_an_accepted_risk(demo):
    """The monitor's checkpoint alerts (monitor/alerts.py) on the demo plant: the default-credential
    logins accepted in a file raise none; the ones not accepted still do."""
    from plantguard.capture.engine import analyze
    from plantguard.monitor.alerts import Alerter, at_checkpoint
    from plantguard.monitor.baseline import Baseline
    from plantguard.site import load_site
    from plantguard.suppress import parse
    site = load_site(demo["site"])
    result = analyze([demo["pcap"]])
    rules = parse("- {check: credentials.default, finding: MQTT, reason: broker replaced in May, owner: it,"
                  " expires: 2099-01-01}\n", "mqtt.yaml")
    from plantguard.assess import run_assessment
    fired = {}
    for name, accepted in (("all", ()), ("accepted", rules)):
        c = run_assessment(result, site, db=None, suppressions=accepted)
        alerts = at_checkpoint(Alerter(lambda e: None), c, result, Baseline(), site)
        fired[name] = sorted(e.message for e in alerts if e.rule and e.rule.id == "alert.default-credential")
    assert len(fired["all"]) == 2
    assert [m for m in fired["all"] if "MQTT" not in m] == fired["accepted"] and len(fired["accepted"]) == 1


def test_export_does_not_send_accepted_risks_and_counts_them(demo, tmp_path):
    """`plantguard export --suppress FILE` on a stored checkpoint (the demo plant's contract): the
    accepted findings are not delivered, the line says how many were kept back."""
    from plantguard.monitor.state import ASSESSMENT, StateDir
    StateDir(tmp_path / "state").save(ASSESSMENT, demo["base"])
    out = tmp_path / "export.jsonl"
    sent = {}
    for name, extra in (("all", []), ("accepted", ["--suppress", demo["dir"] / "accepted.yaml"])):
        out.unlink(missing_ok=True)
        p = run("export", "--state", tmp_path / "state", "--sink", f"file://{out}?format=ecs", *extra, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        sent[name] = [json.loads(x) for x in out.read_text().splitlines()]
        sent[name + "_stderr"] = p.stderr

    def findings(events):
        return [e for e in events if e["event"]["dataset"] == "plantguard.finding"]

    assert len(findings(sent["all"])) == demo["base"]["summary"]["failed"]
    assert len(findings(sent["all"])) - len(findings(sent["accepted"])) == 5
    assert "5 accepted risks not sent" in sent["accepted_stderr"]
    assert "suppression 4 for credentials.default expired on 2020-01-01 (alice)" in sent["accepted_stderr"]


def test_site_file_suppressions_apply_and_bad_ones_name_the_line(demo, tmp_path):
    """A site file's `suppressions:` key holds the same list: it applies with the site file alone;
    a bad entry there is the site file's one-line error."""
    site = tmp_path / "site.yaml"
    site.write_text(Path(demo["site"]).read_text() + "\nsuppressions:\n  - check: sbom.missing\n"
                    "    reason: due with the framework contract\n    owner: procurement\n    expires: 2099-06-30\n")
    p = run("assess", demo["pcap"], "--site", site, "-f", "json", "-o", "-", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    c = json.loads(p.stdout)
    assert sorted(f["assets"][0] for f in c["findings"] if f["suppressed"]) == [
        "10.10.1.10", "10.10.1.11", "10.10.1.12", "10.10.2.5"]
    assert c["summary"]["suppressed"] == 4 and c["suppressions"][0]["file"] == str(site)
    n = len(site.read_text().splitlines())
    site.write_text(site.read_text().replace("    expires: 2099-06-30\n", "    expires: soon\n"))
    p = run("site", "check", site, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        f"plantguard: error: {site}:{n}: suppressions entry 1: expires: 'soon' is not a date (YYYY-MM-DD)"]


def test_applies_through_its_expiry_day_and_matches_a_finding_id(demo):
    """On the demo's findings: a suppression accepts on its expiry date and not the day after;
    `finding:` matches a finding's id where the contract gives one."""
    import copy
    from datetime import date

    from plantguard.suppress import apply, parse
    findings = copy.deepcopy(demo["base"]["findings"])
    target = next(f for f in findings if f["check"] == "services.insecure" and "Telnet" in f["title"])
    target["id"] = "f-0042"
    rules = parse("- {check: 'services.*', finding: f-0042, reason: r, owner: o, expires: 2099-12-31}\n", "x.yaml")
    last_day = apply(findings, rules, demo["base"]["assets"], today=date(2099, 12, 31))
    assert [f for f, m in zip(findings, last_day.marks) if m] == [target]
    after = apply(findings, rules, demo["base"]["assets"], today=date(2100, 1, 1))
    assert not any(after.marks) and after.uses[0]["status"] == "expired" and after.uses[0]["matched"] == 1
    assert after.messages == ["x.yaml: suppression 1 for services.* expired on 2099-12-31 (o): 1 finding(s) fail again"]
