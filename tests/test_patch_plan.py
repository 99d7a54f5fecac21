"""The patch plan: fixed versions, maintenance windows by priority, downtime, mitigations and
the compensating controls verified from traffic and site file; CSV export."""
import csv
import io
from datetime import datetime, timezone

import pytest

from conftest import shared_path
from plantguard.checks.base import AssessContext, Finding
from plantguard.checks.registry import run_checks
from plantguard.inventory.asset import Asset
from plantguard.knowledge.intel import import_paths
from plantguard.model import AnalysisResult, Flow
from plantguard.plan.patching import CSV_COLUMNS, build_patch_plan, patch_plan_csv
from plantguard.site import parse_site
from plantguard.store.db import open_engine

SITE = parse_site("""
site: Test plant
zones:
  - {name: control, kind: ot-control, networks: [10.10.1.0/24]}
  - {name: office, kind: it, networks: [10.20.0.0/24]}
egress:
  - {zone: control, allow: [10.40.0.10/32]}
maintenance_windows:
  - {name: sunday-night, days: [sun], start: "02:00", hours: 4}
  - {name: short-stop, days: [wed], start: "12:00", hours: 1, zones: [control]}
""")
NOW = datetime(2024, 6, 3, 9, 0, tzinfo=timezone.utc)       # a Monday


@pytest.fixture(scope="module")
def findings_and_assets(tmp_path_factory):
    engine = open_engine(tmp_path_factory.mktemp("pp") / "intel.db")
    import_paths(engine, [shared_path("vuln")])
    assets = [
        Asset("10.10.1.10", role="gateway", zone="control",
              identity=dict(vendor="Rockwell Automation/Allen-Bradley", product="1756-ENBT/A", firmware="4.3")),
        Asset("10.10.1.20", role="plc", zone="control",
              identity=dict(vendor="Siemens", product="CPU 315-2 PN/DP", order_number="6ES7 315-2EH14-0AB0",
                            firmware="V3.2.6")),
    ]
    flows = [Flow("tcp", "10.20.0.5", "10.10.1.10", 50000, 44818, app="enip")]
    ctx = AssessContext(AnalysisResult(flows=flows), assets, SITE, engine, {})
    findings, _ = run_checks(ctx, only={"vuln.known-exploited", "vuln.advisory"})
    return findings, assets


def test_plan_per_device_with_target_version_window_and_controls(findings_and_assets):
    findings, assets = findings_and_assets
    plan = build_patch_plan(findings, assets, SITE, now=NOW)
    assert [e["asset"] for e in plan] == ["10.10.1.10", "10.10.1.20"]       # "now" first
    enbt, s7 = plan
    # no fix for the 1756-ENBT: mitigations and verified controls instead
    assert enbt["priority"] == "now" and enbt["target_version"] is None
    assert enbt["unpatched"] == ["ICSA-18-310-02"] and enbt["mitigations"]
    assert enbt["window"]["start"] == "2024-06-05T12:00+00:00"              # next window: Wed short stop
    assert enbt["estimated_downtime_hours"] == 1.0 and enbt["fits_window"] is True
    seg = {c["control"]: c for c in enbt["compensating_controls"]}
    assert seg["segmentation"]["status"] == "failed"                         # reached from the office
    assert seg["egress allow-list"]["status"] == "verified"
    # the S7: the highest fixed version closes every advisory that has a fix
    assert s7["target_version"] == "V3.2.19"
    assert s7["actions"][0].startswith("Update firmware to V3.2.19")
    assert s7["priority"] == "next"
    assert s7["window"]["start"] == "2024-06-09T02:00+00:00"                 # the window after next
    assert s7["estimated_downtime_hours"] == 2.0
    seg = {c["control"]: c for c in s7["compensating_controls"]}
    assert seg["segmentation"]["status"] == "verified"
    fixes = {a["advisory"]: a["fixed_in"] for a in s7["advisories"]}
    assert fixes["ICSA-19-283-01"] == "V3.2.17" and fixes["ICSA-22-104-06"] == "V3.2.19"


def test_window_too_short_is_flagged(findings_and_assets):
    findings, assets = findings_and_assets
    site = parse_site("""
zones: [{name: control, kind: ot-control, networks: [10.10.1.0/24]}]
maintenance_windows: [{name: lunch, days: daily, start: "12:00", hours: 0.5}]
""")
    plan = build_patch_plan(findings, assets, site, now=NOW)
    s7 = next(e for e in plan if e["asset"] == "10.10.1.20")
    assert s7["fits_window"] is False and "plan a longer stop" in s7["window_note"]


def test_no_site_file(findings_and_assets):
    findings, assets = findings_and_assets
    plan = build_patch_plan(findings, assets, None)
    assert all(e["window"] is None and "no site file" in e["window_note"] for e in plan)
    assert all(c["status"] == "not-verifiable" for e in plan for c in e["compensating_controls"])


def test_csv_one_row_per_device_and_advisory(findings_and_assets):
    findings, assets = findings_and_assets
    plan = build_patch_plan(findings, assets, SITE, now=NOW)
    rows = list(csv.DictReader(io.StringIO(patch_plan_csv(plan))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == sum(len(e["advisories"]) for e in plan) == 16
    r = next(r for r in rows if r["advisory"] == "ICSA-19-283-01")
    assert r["fixed_in"] == "V3.2.17" and r["window"] == "sunday-night" and r["asset"] == "10.10.1.20"


def test_odd_advisory_detail_never_raises():
    f = Finding("vuln.advisory", "fail", "high", "x", ["1.2.3.4"], extra={"priority": 7, "exposure": "?",
                                                                         "remediations": [None, {}]})
    plan = build_patch_plan([f], [], SITE)
    assert plan and plan[0]["asset"] == "1.2.3.4"
    assert build_patch_plan([], [], None) == [] and patch_plan_csv([]).startswith("priority,")


def test_report_table_is_flat_text(findings_and_assets):
    from plantguard.plan.patching import TABLE_COLUMNS, patch_plan_table
    findings, assets = findings_and_assets
    cols, rows = patch_plan_table(build_patch_plan(findings, assets, SITE, now=NOW))
    assert cols == TABLE_COLUMNS and len(rows) == 2
    assert all(isinstance(c, str) for r in rows for c in r)
    s7 = rows[1]
    assert "ICSA-17-339-01 → V3.2.16" in s7[3]          # Siemens' V3.X.16, read for this device's V3.2 line
    assert s7[5].startswith("sunday-night 2024-06-09T02:00")
