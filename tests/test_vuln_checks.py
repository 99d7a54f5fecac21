"""vuln.known-exploited and vuln.advisory through the checks registry: findings with reasons,
confidence, OT priority; not run without intel; end to end on the ENIP and S7 captures."""
import pytest

from conftest import analyze_shared, shared_path
from plantguard.checks.base import AssessContext
from plantguard.checks.registry import run_checks
from plantguard.inventory.asset import Asset
from plantguard.knowledge.intel import import_paths
from plantguard.model import AnalysisResult, Flow
from plantguard.site import parse_site
from plantguard.store.db import open_engine

VULN = {"vuln.known-exploited", "vuln.advisory"}

SITE = parse_site("""
site: Test plant
zones:
  - {name: control, kind: ot-control, networks: [10.10.1.0/24]}
  - {name: office, kind: it, networks: [10.20.0.0/24]}
  - {name: dmz, kind: dmz, networks: [10.40.0.0/24]}
conduits:
  - {from: dmz, to: control, allow: [s7comm]}
maintenance_windows:
  - {name: sunday-night, days: [sun], start: "02:00", hours: 4}
assets:
  - {ip: 10.10.1.20, criticality: critical}
""")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    e = open_engine(tmp_path_factory.mktemp("vc") / "intel.db")
    import_paths(e, [shared_path("vuln")])
    return e


def _assets():
    enbt = Asset("10.10.1.10", role="gateway", zone="control",
                 identity=dict(vendor="Rockwell Automation/Allen-Bradley", product="1756-ENBT/A", firmware="4.3",
                               product_code=58))
    s7 = Asset("10.10.1.20", role="plc", zone="control", declared={"ip": "10.10.1.20", "criticality": "critical"},
               identity=dict(vendor="Siemens", product="CPU 315-2 PN/DP", order_number="6ES7 315-2EH14-0AB0",
                             firmware="V3.2.6"))
    ape = Asset("10.10.1.30", role="router", zone="control",
                identity=dict(vendor="Siemens", product="RUGGEDCOM APE1808", firmware="V10.0"))
    sensor = Asset("10.10.1.40", role="sensor", zone="control", identity=dict(vendor="Acme", product="Thermo 9000"))
    return [enbt, s7, ape, sensor]


def _flows():
    return [Flow("tcp", "10.20.0.5", "10.10.1.10", 50000, 44818, app="enip"),      # office -> ENBT, no conduit
            Flow("tcp", "10.40.0.7", "10.10.1.20", 50001, 102, app="s7comm")]       # dmz -> PLC via conduit


def _run(engine, site=SITE, assets=None):
    ctx = AssessContext(AnalysisResult(flows=_flows()), assets or _assets(), site, engine, {})
    return run_checks(ctx, only=VULN)


def test_not_run_without_intel(tmp_path):
    findings, not_run = run_checks(AssessContext(AnalysisResult(), _assets(), SITE, None, {}), only=VULN)
    assert findings == [] and {n["check"] for n in not_run} == VULN
    assert all("intel import" in n["reason"] for n in not_run)
    empty = open_engine(tmp_path / "empty.db")
    findings, not_run = run_checks(AssessContext(AnalysisResult(), _assets(), SITE, empty, {}), only=VULN)
    assert findings == [] and len(not_run) == 2


def test_findings_carry_reasons_confidence_and_priority(engine):
    findings, not_run = _run(engine)
    assert not_run == []
    fails = [f for f in findings if f.status == "fail"]
    enbt = [f for f in fails if f.assets == ["10.10.1.10"]]
    assert [f.extra["advisory"] for f in enbt] == ["ICSA-18-310-02"]
    e = enbt[0].extra
    assert e["confidence"] == "high" and e["basis"] == "catalogue-number" and e["reasons"]
    # reached from the office zone with no conduit allowing it: patch now
    assert e["exposure"]["level"] == "it" and e["exposure"]["unallowed_crossings"] == 1
    assert e["priority"] == "now" and "office" in e["priority_reason"]
    s7 = {f.extra["advisory"]: f for f in fails if f.assets == ["10.10.1.20"]}
    assert len(s7) == 15
    f = s7["ICSA-19-283-01"]
    assert f.check == "vuln.advisory" and f.severity == "high"
    assert f.extra["exposure"]["level"] == "cross-zone" and f.extra["exposure"]["unallowed_crossings"] == 0
    assert f.extra["criticality"] == "critical" and f.extra["priority"] == "now"     # high, crossing, critical
    assert s7["ICSA-20-042-05"].extra["priority"] == "later"                         # CVSS 5.3 inside the plant


def test_kev_first_and_not_repeated_as_advisory(engine):
    findings, _ = _run(engine)
    kev = [f for f in findings if f.check == "vuln.known-exploited" and f.status == "fail"]
    assert {f.extra["advisory"] for f in kev} == {"ICSA-24-074-05", "ICSA-24-102-03"}
    assert all(f.severity == "critical" and f.extra["priority"] == "now" for f in kev)
    assert "CISA KEV" in kev[0].extra["priority_reason"]
    adv = {f.extra["advisory"] for f in findings if f.check == "vuln.advisory" and f.assets == ["10.10.1.30"]}
    assert not adv & {"ICSA-24-074-05", "ICSA-24-102-03"}
    passes = {f.assets[0] for f in findings if f.status == "pass" and f.check == "vuln.known-exploited"}
    assert {"10.10.1.10", "10.10.1.20", "10.10.1.40"} <= passes
    assert any(f.status == "pass" and f.assets == ["10.10.1.40"] for f in findings if f.check == "vuln.advisory")


def test_findings_survive_json_unchanged_with_advisory_and_priority(engine):
    """What the JSON report writes of a finding reads back the same (no tuples, sets or dates
    that JSON turns into something else), and a FAIL keeps its advisory and priority."""
    import json
    findings, _ = _run(engine)
    assert {(f.check, f.status) for f in findings} == {(c, s) for c in VULN for s in ("pass", "fail")}
    for f in findings:
        d = f.as_dict()
        assert json.loads(json.dumps(d)) == d, f.title
        assert (d["check"], d["status"], d["assets"]) == (f.check, f.status, f.assets)
        if f.status == "fail":
            assert d["detail"]["advisory"] and d["detail"]["priority"] in ("now", "next", "later"), d["detail"]


@pytest.mark.parametrize("rel, product, advisories", [
    ("pcaps/icsnpp-enip/enip_cip_example.pcap", "1756-ENBT/A", {"ICSA-18-310-02"}),
    ("pcaps/icsnpp-s7comm/s7ident.pcap", "CPU 315-2 PN/DP", None),
])
def test_end_to_end_on_captures(engine, rel, product, advisories):
    """analyze -> build_assets -> checks on the real captures."""
    from plantguard.inventory.build import build_assets
    from plantguard.protocols.registry import by_name
    proto = "enip" if "enip" in rel else "s7comm"
    if by_name(proto) is None:
        pytest.skip(f"the {proto} decoder has not landed yet (identity comes from it)")
    result = analyze_shared(rel)
    assets = build_assets(result, None)
    dev = [a for a in assets if (a.identity or {}).get("product") == product]
    assert dev, f"no asset identified as {product} in {rel}"
    ctx = AssessContext(result, assets, None, engine, {})
    findings, not_run = run_checks(ctx, only=VULN)
    got = {f.extra["advisory"] for f in findings if f.status == "fail" and f.assets == [dev[0].key]}
    if advisories is None:
        import csv
        rows = csv.DictReader(shared_path("vuln/csaf/csaf_ot_index.csv").open())
        advisories = {r["advisory_id"] for r in rows if r["in_sample"] == "yes"
                      and "S7-300 CPU 315-2 PN/DP" in r["matches_device_seen_in_pcaps"].split("|")}
    assert got == advisories
    for f in findings:
        if f.status == "fail":
            assert f.extra["reasons"] and f.extra["priority"] in ("now", "next", "later")
            assert f.evidence and f.evidence[0].frame       # points at the identity frame


def test_controller_in_the_chassis_is_matched_through_its_adapter(engine):
    """The 1756-L61/B (rev 16.20) is read through the ENBT's backplane route: it is a module of
    the adapter's asset, and its own advisories are still found."""
    from plantguard.inventory.build import build_assets
    result = analyze_shared("pcaps/ICS-Security-Tools/openics/EIP-RebootorRestart.pcap")
    assets = build_assets(result, None)
    holder = [a for a in assets if any(m.get("product") == "1756-L61/B LOGIX5561"
                                       for m in (a.identity or {}).get("modules", []))]
    assert holder, "the L61 should be a chassis module of the device that routes to it"
    ctx = AssessContext(result, assets, None, engine, {})
    findings, _ = run_checks(ctx, only=VULN)
    got = [f for f in findings if f.status == "fail" and f.assets == [holder[0].key]]
    assert "ICSA-22-090-05" in {f.extra["advisory"] for f in got}
    assert len(got) == len({f.extra["advisory"] for f in got})     # one finding per advisory
