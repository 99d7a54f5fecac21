"""The check registry and the checks' metadata: contract IDs present, control and ATT&CK IDs that
exist in the catalogs, failures contained, and garbage input never escaping run_checks."""
from __future__ import annotations

import ast
import csv
import functools
import importlib
import json
import sys
import textwrap

import pytest
from conftest import analyze_shared, shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.checks import T0, asset, fails, result, run

from plantguard.checks import registry
from plantguard.checks.base import EFFORTS, SEVERITIES, THEMES, AssessContext, CheckMeta, CheckMetaError
from plantguard.checks.practices import PRACTICES
from plantguard.model import Flow, Observation

# ARCHITECTURE §6, less the vulnerability and SBOM checks of another module
CONTRACT_IDS = {
    "inventory.unknown-asset", "inventory.unidentified", "credentials.default", "credentials.cleartext",
    "services.insecure", "segmentation.zone-violation", "segmentation.it-ot-bridge",
    "segmentation.vlan-mixing", "egress.not-allowlisted", "egress.internet", "crypto.cleartext-telemetry",
    "crypto.weak-tls", "plc.unauthorized-write", "plc.unauthorized-program-change",
    "zerotrust.unauthenticated-control",
}
from plantguard.checks.attestations import ATTESTATION_CHECKS  # noqa: E402
ATTESTATION_CHECK_IDS = {m.id for m in ATTESTATION_CHECKS.values()}
OUR_MODULES = ("inventory", "credentials", "services", "segmentation", "egress", "crypto", "plc",
               "zerotrust", "attestations")


WORDING = {"action": "Fix the test check", "why": "A test check failed.", "effort": "low", "owner": "tester",
           "themes": ("hygiene",)}


def fake_meta(check_id: str) -> CheckMeta:
    return CheckMeta(check_id, "t", "inventory", "low", "r" * 50, "m" * 50, **WORDING)




def our_checks() -> list[CheckMeta]:
    return [m for m, fn in registry.all_checks() if fn.__module__.rsplit(".", 1)[-1] in OUR_MODULES]


def test_contract_ids_are_registered():
    assert CONTRACT_IDS <= {m.id for m in our_checks()}


def test_metadata_is_complete():
    for m in our_checks():
        assert m.id.count(".") == 1 and m.id == m.id.lower(), m.id
        assert m.severity in SEVERITIES[1:], m.id
        assert m.title and m.practice and len(m.risk) > 40 and len(m.remediation) > 40, m.id
        assert set(m.controls) <= {"iec62443-3-3", "nist-800-53r5", "iso27001-2022"}, m.id
        assert m.controls.get("nist-800-53r5") and m.controls.get("iso27001-2022"), m.id
        # one table of practices, and the roadmap's wording beside the rest of the check
        assert m.practice in PRACTICES, m.id
        assert m.action and m.why and m.owner and m.effort in EFFORTS and set(m.themes) <= set(THEMES), m.id


def _catalog(name: str, column: str) -> set[str]:
    with open(shared_path(f"compliance/derived/{name}"), newline="", encoding="utf-8") as fh:
        return {row[column] for row in csv.DictReader(fh)}


def test_every_cited_control_exists_in_the_catalogs():
    known = {"iec62443-3-3": _catalog("iec62443_3_3_sr.csv", "sr_id"),
             "nist-800-53r5": _catalog("nist_800_53r5_controls.csv", "control_id"),
             "iso27001-2022": _catalog("iso27001_2022_annexA.csv", "control_id")}
    techniques = _catalog("attack_ics_techniques.csv", "technique_id")
    for m in our_checks():
        for fw, ids in m.controls.items():
            missing = set(ids) - known[fw]
            assert not missing, (m.id, fw, missing)
        assert set(m.attack) <= techniques, (m.id, set(m.attack) - techniques)


def test_traffic_checks_cite_published_attack_to_control_pairs():
    """Where a traffic check names ATT&CK techniques, at least one of its 62443/800-53 controls is
    a published mitigation link of one of them (attack_ics_technique_controls.csv). Attestation
    checks link practices that ATT&CK mitigations do not always cover, so they are left out."""
    with open(shared_path("compliance/derived/attack_ics_technique_controls.csv"), newline="") as fh:
        pairs = {(r["technique_id"], r["framework"], r["control_id"]) for r in csv.DictReader(fh)}
    fw_names = {"iec62443-3-3": "IEC62443-3-3", "nist-800-53r5": "NIST-800-53r5"}
    for m in our_checks():
        if not m.attack or m.id in ATTESTATION_CHECK_IDS:
            continue
        cited = {(fw_names[fw], c) for fw, ids in m.controls.items() if fw in fw_names for c in ids}
        assert any((t, fw, c) in pairs for t in m.attack for fw, c in cited), m.id


def test_a_crashing_check_is_reported_not_raised(monkeypatch):
    meta = fake_meta("test.crash")

    def boom(ctx):
        raise ZeroDivisionError("bad")
    monkeypatch.setitem(registry._CHECKS, "test.crash", (meta, boom))
    findings, not_run = registry.run_checks(AssessContext(result(), []), only={"test.crash"})
    assert findings == [] and not_run == [{"check": "test.crash", "reason": "internal error: ZeroDivisionError: bad"}]


def test_every_check_runs_on_a_real_capture_without_internal_errors(tmp_path):
    from support.checks import site as make_site
    s = make_site(tmp_path, "zones:\n  - {name: control, kind: ot-control, networks: [10.0.0.0/28]}\n"
                            "  - {name: office, kind: it, networks: [10.0.0.48/28]}\n"
                            "assets:\n  - {ip: 10.0.0.3}\nengineering_workstations: [10.0.0.9]\n")
    r = analyze_shared("pcaps/ICS-Security-Tools/ModbusTCP/modbus_test_data_part1.pcap")
    from plantguard.inventory.build import build_assets
    for site in (None, s):
        findings, not_run = registry.run_checks(AssessContext(r, build_assets(r, site), site))
        assert not [n for n in not_run if n["reason"].startswith("internal error")]
        json.dumps([f.as_dict() for f in findings])
        assert fails(findings)


def test_index_is_built_once_per_context():
    from plantguard.checks._common import index
    ctx = AssessContext(result(), [])
    assert index(ctx) is index(ctx)


# ---------------------------------------------------------------------------------------------
# garbage in: observations and flows with random values never break a check
# ---------------------------------------------------------------------------------------------

_values = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                    st.text(max_size=12), st.lists(st.text(max_size=4), max_size=3),
                    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
_ips = st.sampled_from(["10.0.0.1", "10.0.0.2", "8.8.8.8", "::1", "255.255.255.255", "224.0.0.1", "x", None])
_kinds = st.sampled_from(["credential", "operation", "session", "tls", "certificate", "service", "topic", "identity"])
_keys = st.sampled_from(["user", "password", "secret_type", "cleartext", "result", "category", "name", "code",
                         "security_mode", "policy", "auth", "version", "cipher", "not_after", "not_before",
                         "self_signed", "key_bits", "key_type", "sig_alg", "position", "dh_bits", "encrypted",
                         "topic", "action", "weak_cipher", "offered_versions", "client_version", "detail"])


@st.composite
def _observation(draw):
    return Observation(draw(_kinds), draw(st.sampled_from(["modbus", "snmp", "ftp", "tls", "opcua", "dnp3", "mqtt", "x"])),
                       "fuzz.pcap", draw(st.integers(1, 10)), T0, draw(_ips), draw(_ips), None, None,
                       draw(st.sampled_from(["tcp", "udp", ""])), draw(st.integers(0, 65535)),
                       draw(st.integers(0, 65535)), draw(st.one_of(st.none(), st.integers(0, 4095))),
                       draw(st.sampled_from(["src", "dst"])), draw(st.dictionaries(_keys, _values, max_size=6)))


@st.composite
def _flow(draw):
    return Flow(draw(st.sampled_from(["tcp", "udp", "icmp"])), draw(_ips) or "10.0.0.9", draw(_ips) or "10.0.0.8",
                draw(st.integers(0, 65535)), draw(st.integers(0, 65535)), draw(st.one_of(st.none(), st.integers(0, 4095))),
                draw(st.sampled_from([None, "00:00:00:00:00:01", "00:00:00:00:00:02"])), None,
                draw(st.sampled_from([None, "modbus", "http", "mqtt", "enip", "dnp3", "opcua", "ftp", "snmp", "tls"])),
                draw(st.integers(0, 50)), 0, draw(st.integers(0, 50)), 0, T0, T0 + 1, "fuzz.pcap", 1,
                draw(st.dictionaries(st.sampled_from(["write", "auth", "read"]), st.integers(0, 5), max_size=2)))


@settings(max_examples=int(__import__("os").environ.get("PG_FUZZ", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_observation(), max_size=12), st.lists(_flow(), max_size=8), st.booleans())
def test_garbage_never_breaks_a_check(tmp_path, observations, flows, with_site):
    from support.checks import site as make_site
    s = make_site(tmp_path, "zones:\n  - {name: a, kind: ot-control, networks: [10.0.0.0/30], vlans: [1]}\n"
                            "  - {name: b, kind: it, networks: ['::/0'], vlans: [2]}\n"
                            "egress:\n  - {zone: a, allow: [10.0.0.2]}\n"
                            "assets:\n  - {ip: 10.0.0.1}\nengineering_workstations: [10.0.0.2]\n"
                            "maintenance_windows:\n  - {days: daily, start: '01:00', hours: 1}\n") if with_site else None
    r = result(observations, flows)
    assets = [asset("10.0.0.1", "plc", mac="00:00:00:00:00:01"), asset("10.0.0.2", "sensor")]
    findings, not_run = registry.run_checks(AssessContext(r, assets, s))
    assert not [n for n in not_run if n["reason"].startswith("internal error")], not_run
    json.dumps([f.as_dict() for f in findings])


def test_run_single_check_helper_reports_reason():
    findings, reason = run("egress.not-allowlisted", result(), None, assets=[])
    assert findings == [] and reason.startswith("needs a site file")


def _asserts_on(test: ast.FunctionDef, status: str) -> bool:
    """The test asserts that there are findings of `status`: it picks them with passes()/fails()
    (not as in `assert not fails(...)`, which asserts there are none) and asserts, or it asserts
    a comparison with the status text itself ("pass" / "fail")."""
    picker = {"pass": "passes", "fail": "fails"}[status]
    negated = {id(n.operand) for n in ast.walk(test) if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not)}
    picks = [n for n in ast.walk(test) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id == picker and id(n) not in negated]
    asserts = [n for n in ast.walk(test) if isinstance(n, ast.Assert)]
    return bool(asserts) and (bool(picks) or any(
        isinstance(c, ast.Constant) and c.value == status for a in asserts for c in ast.walk(a)))


@functools.lru_cache(maxsize=1)
def _tests_asserting() -> dict[tuple[str, str], list[str]]:
    """(check ID, "pass" | "fail") -> the tests (of every test module but this one) that name the
    check in their body or parameters and assert on findings of that status."""
    from pathlib import Path
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text())
        for test in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")):
            named = {c.value for c in ast.walk(test) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
            for status in ("pass", "fail"):
                if _asserts_on(test, status):
                    for check_id in named & CONTRACT_IDS:
                        found.setdefault((check_id, status), []).append(f"{path.name}::{test.name}")
    return found


@pytest.mark.parametrize("check_id", sorted(CONTRACT_IDS))
def test_every_contract_check_has_a_test_asserting_its_pass_and_one_asserting_its_fail(check_id):
    """Guards this suite itself: for each contract check some test runs it by name and asserts on
    its PASS findings, and some test asserts on its FAIL findings."""
    tests = _tests_asserting()
    assert tests.get((check_id, "pass")), f"no test asserts a PASS of {check_id}"
    assert tests.get((check_id, "fail")), f"no test asserts a FAIL of {check_id}"


def test_a_flood_of_pairs_is_listed_up_to_the_cap_with_a_true_total(tmp_path):
    """A scan across zones: the 500 busiest pairs are listed, the rest summed up in one finding,
    and the event total over all findings is every flow."""
    from support.checks import flow, site as make_site

    from plantguard.checks._common import MAX_FINDINGS
    s = make_site(tmp_path, "zones:\n  - {name: a, kind: it, networks: [10.1.0.0/16]}\n"
                            "  - {name: b, kind: ot-control, networks: [10.2.0.0/16]}\n")
    flows = [flow("10.1.0.5", f"10.2.{i // 250}.{i % 250 + 1}", 502, "modbus", packets=1 + (i % 7)) for i in range(1200)]
    findings, _ = run("segmentation.zone-violation", result([], flows), s, assets=[])
    bad = fails(findings)
    assert len(bad) == MAX_FINDINGS + 1
    summary = [f for f in bad if f.extra.get("summarised")]
    assert len(summary) == 1 and summary[0].extra["summarised"] == 1200 - MAX_FINDINGS
    assert sum(f.extra["events"] for f in bad) == sum(f.packets for f in flows)


def test_registry_caps_any_check_that_returns_too_many_fails(monkeypatch):
    from plantguard.checks.base import Finding
    meta = fake_meta("test.many")

    def many(ctx):
        return [Finding.from_meta(meta, "fail", f"f{i}", [f"10.0.0.{i % 250}"], severity="high" if i == 999 else None,
                                  events=i) for i in range(1000)]
    monkeypatch.setitem(registry._CHECKS, "test.many", (meta, many))
    findings, _ = registry.run_checks(AssessContext(result(), []), only={"test.many"})
    assert len(findings) == registry.MAX_FAILS_PER_CHECK + 1
    assert findings[0].title == "f999"                       # the most severe first
    assert findings[-1].extra["summarised"] == 1000 - registry.MAX_FAILS_PER_CHECK


# ---------------------------------------------------------------------------------------------
# a check is one record: its metadata is complete or the registry refuses it
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, says", [
    ({"action": "", "why": "", "effort": "", "owner": "", "themes": ()},
     "missing roadmap wording (action, why, effort, owner, themes)"),
    ({"why": "  "}, "missing roadmap wording (why)"),
    ({"practice": "zerotrust"}, "unknown practice 'zerotrust'"),
    ({"severity": "severe"}, "unknown severity 'severe'"),
    ({"effort": "huge"}, "unknown effort 'huge'"),
    ({"themes": ("hygene",)}, "unknown themes 'hygene'"),
])
def test_incomplete_metadata_fails_with_one_line_naming_the_check(change, says):
    kw = {"id": "test.incomplete", "title": "t", "practice": "inventory", "severity": "low", "risk": "r" * 50,
          "remediation": "m" * 50, **WORDING, **change}
    with pytest.raises(CheckMetaError) as err:
        CheckMeta(**kw)
    msg = str(err.value)
    assert msg.startswith("check test.incomplete: ") and says in msg and "\n" not in msg
    # the positional form every check used before the roadmap wording moved in is refused too
    with pytest.raises(CheckMetaError, match=r"^check test\.old: missing roadmap wording"):
        CheckMeta("test.old", "t", "inventory", "low", "r", "fix")


NEW_CHECK_MODULE = '''
from plantguard.checks.base import CheckMeta, Evidence, Finding
from plantguard.checks.registry import check

TELNET = CheckMeta(
    id="zztest.telnet-open", title="Telnet reachable on a controller", practice="unnecessary-services",
    severity="high", risk="Telnet sends the login in clear and lets anyone who has it change the device.",
    remediation="Switch Telnet off on the controller and manage it over SSH from the engineering station.",
    controls={"iec62443-3-3": ("SR 7.7",), "nist-800-53r5": ("CM-7",), "iso27001-2022": ("A.8.20",)},
    attack=("T0886",),
    action="Switch off Telnet on the test controllers", why="Controllers answer Telnet logins.",
    effort="low", owner="OT engineer", themes=("hygiene",))


@check(TELNET)
def telnet_open(ctx):
    servers = sorted({f.server for f in ctx.result.flows if f.port == 23})
    return [Finding.from_meta(TELNET, "fail", f"Telnet open on {ip}", [ip], [Evidence(None, None, None, "port 23")])
            for ip in servers]
'''
NEW_CHECK_BROKEN = NEW_CHECK_MODULE.replace('action="Switch off Telnet on the test controllers", ', "")


@pytest.fixture
def new_check_module(tmp_path, monkeypatch):
    """Puts a check module in the checks package for one test; the registry is restored after."""
    import plantguard.checks as pkg
    registry.all_checks()                                   # the shipped checks, loaded once
    monkeypatch.setattr(pkg, "__path__", [*pkg.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_CHECKS", dict(registry._CHECKS))
    monkeypatch.setattr(registry, "_LOAD_ERRORS", [])
    monkeypatch.setattr(registry, "_loaded", False)

    def write(text):
        (tmp_path / "zztest_new.py").write_text(textwrap.dedent(text))
        importlib.invalidate_caches()
    yield write
    sys.modules.pop("plantguard.checks.zztest_new", None)
    if hasattr(pkg, "zztest_new"):
        delattr(pkg, "zztest_new")


def test_a_new_check_in_one_module_is_registered_run_and_planned(new_check_module):
    """Declaring a check in one module is all it takes: the registry finds it, an assessment
    runs it, its controls reach the compliance view and its wording the roadmap."""
    from support.checks import flow

    from plantguard.assess import run_assessment
    new_check_module(NEW_CHECK_MODULE)
    meta = registry.check_meta("zztest.telnet-open")
    assert meta is not None and meta.action == "Switch off Telnet on the test controllers"
    r = result([], [flow("10.0.0.9", "10.0.0.5", 23, "telnet"), flow("10.0.0.9", "10.0.0.6", 502, "modbus")])
    out = run_assessment(r, None, db=None)
    mine = [f for f in out["findings"] if f["check"] == "zztest.telnet-open"]
    assert [(f["status"], f["assets"], f["practice"]) for f in mine] == [("fail", ["10.0.0.5"], "unnecessary-services")]
    assert not [n for n in out["checks_not_run"] if n["check"].startswith("zztest")]
    items = [i for h in ("immediate", "1-3 months", "3+ months") for i in out["roadmap"][h]
             if i["checks"] == ["zztest.telnet-open"]]
    assert [(i["title"], i["why"], i["effort"], i["owner_hint"], i["severity"]) for i in items] == [
        ("Switch off Telnet on the test controllers", "Controllers answer Telnet logins.", "low", "OT engineer", "high")]
    assert items[0] in out["roadmap"]["immediate"]
    cm7 = [c for c in out["compliance"]["nist-800-53r5"]["controls"] if c["id"] == "CM-7"]
    assert "zztest.telnet-open" in cm7[0]["checks"] and cm7[0]["status"] == "fail"


def test_a_new_check_without_roadmap_wording_stops_the_registry_load(new_check_module):
    new_check_module(NEW_CHECK_BROKEN)
    with pytest.raises(CheckMetaError) as err:
        registry.all_checks()
    assert str(err.value) == "check zztest.telnet-open: missing roadmap wording (action)"
    with pytest.raises(CheckMetaError):           # and again: a broken registry is never half-loaded
        registry.run_checks(AssessContext(result(), []))
