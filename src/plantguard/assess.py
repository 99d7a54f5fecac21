"""`assess`: packets -> assets -> checks -> compliance, roadmap, patch plan -> the contract JSON
(typed in contract.py, published as docs/contract.schema.json). Each stage only reads what the
stage before produced."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from plantguard import __version__
from plantguard.capture.unread import run_warnings
from plantguard.checks.base import SEVERITIES, AssessContext
from plantguard.contract import validated
from plantguard.inventory.active import merge_active
from plantguard.inventory.build import build_assets
from plantguard.model import AnalysisResult
from plantguard.plan import incidents as incidents_of
from plantguard.util.timefmt import iso

MAX_FLOWS_IN_REPORT = 50_000


def run_assessment(result: AnalysisResult, site=None, db: str | None = None,
                   options: dict | None = None, suppressions=(), only: set[str] | None = None) -> dict:
    """The assessment contract; `only` runs just those check IDs (`firewall check`)."""
    from plantguard.checks.registry import run_checks
    from plantguard.compliance.view import compliance_view
    from plantguard.plan.patching import build_patch_plan
    from plantguard.plan.roadmap import build_roadmap

    notes: list[str] = list(result.notes)
    assets = build_assets(result, site, notes)
    engine = _intel_engine(db)
    probed = merge_active(assets, engine, site)
    if probed:
        notes.append(f"{probed} device(s) have identity learnt by plantguard probe (identity_sources via active)")
    ctx = AssessContext(result, assets, site, engine, dict(options or {}))
    findings, not_run = run_checks(ctx, only)
    changes, counters = _plc_changes(ctx, result.counters, notes)
    findings.sort(key=lambda f: (f.status != "fail", -SEVERITIES.index(f.severity)
                                 if f.severity in SEVERITIES else 0, f.check, f.title))
    accepted, open_findings = _accepted(findings, assets, site, suppressions)
    patch_plan = build_patch_plan(open_findings, assets, site)
    compliance = compliance_view(open_findings, site)
    roadmap = build_roadmap(open_findings, not_run, site, assets)
    return contract(result, assets, findings, not_run, site, compliance, roadmap, patch_plan, notes,
                    changes, counters, accepted)


def _accepted(findings, assets, site, suppressions):
    """The outcome of the suppressions, given and in the site file (suppress.apply; None without
    any), and the findings they did not accept: the compliance view, roadmap and patch plan work
    on those only."""
    suppressions = [*suppressions, *(getattr(site, "suppressions", None) or ())]   # the site file's too
    if not suppressions:
        return None, findings
    from plantguard.suppress import apply
    dicts = [f.as_dict() for f in findings]
    for d, fid in zip(dicts, incidents_of.finding_ids(dicts)):    # `finding:` may name a finding's id
        d["id"] = fid
    outcome = apply(dicts, suppressions, assets)
    return outcome, [f for f, m in zip(findings, outcome.marks) if m is None]


def _plc_changes(ctx, counters: dict, notes: list[str]) -> tuple[list[dict], dict]:
    """The PLC change timeline with the verdicts the plc.* checks gave (changes/timeline.py)."""
    from plantguard.changes.timeline import MAX_CHANGES, records, tickets_of
    from plantguard.checks._common import index
    changes, dropped = records(index(ctx), tickets_of(ctx))
    if not dropped:
        return changes, counters
    notes.append(f"plc_changes lists {MAX_CHANGES:,} changes; {dropped:,} more were left out")
    return changes, {**counters, "plc_changes_dropped": dropped}


def _intel_engine(db: str | None):
    """The store holding vulnerability intelligence: the given one, else ./plantguard.db or
    $PLANTGUARD_DB if it exists. None means vulnerability checks cannot run."""
    from plantguard.store.db import open_engine
    if db is None:
        db = os.environ.get("PLANTGUARD_DB")
        if db is None and Path("plantguard.db").exists():
            db = "plantguard.db"
    if db is None:
        return None
    return open_engine(db)


def contract(result, assets, findings, not_run, site, compliance, roadmap, patch_plan, notes,
             plc_changes=(), counters=None, accepted=None) -> dict:
    marks = accepted.marks if accepted is not None else [None] * len(findings)
    failing = [f for f, m in zip(findings, marks) if f.status == "fail" and m is None]
    sev = Counter(f.severity for f in failing)
    asset_dicts = [a.as_dict() for a in assets]
    finding_dicts, incidents = _grouped(findings, marks, result.flows, asset_dicts)
    flows = sorted(result.flows, key=lambda f: -f.packets)
    if len(flows) > MAX_FLOWS_IN_REPORT:
        notes.append(f"report lists the {MAX_FLOWS_IN_REPORT:,} busiest of {len(flows):,} flows")
        flows = flows[:MAX_FLOWS_IN_REPORT]
    return validated({
        "plantguard": __version__,
        "site": getattr(site, "name", None),
        "organization_size": getattr(site, "organization_size", None),
        "captures": [c.as_dict() for c in result.captures],
        "zones": _zones(site, assets),
        "assets": asset_dicts,
        "flows": [_flow(f) for f in flows],
        "findings": finding_dicts,
        "incidents": incidents,
        "plc_changes": list(plc_changes),
        "checks_not_run": not_run,
        "compliance": compliance,
        "roadmap": roadmap,
        "patch_plan": patch_plan,
        "attestations": _attestations(site),
        "summary": {
            "assets": len(assets),
            "findings": {s: sev.get(s, 0) for s in reversed(SEVERITIES[1:])},
            "failed": len(failing),
            "suppressed": accepted.count if accepted is not None else 0,
            "passed": sum(1 for f in findings if f.status == "pass"),
            "checks_not_run": len(not_run),
            "packets": sum(c.packets for c in result.captures),
            "incidents": len(incidents),
            "incidents_failed": sum(1 for i in incidents if i["status"] == "fail"),
        },
        "counters": result.counters if counters is None else counters,
        "notes": notes,
        "warnings": run_warnings(result.captures, result.counters if counters is None else counters),
        **({"suppressions": accepted.uses} if accepted is not None else {}),
    })


def _grouped(findings, marks, flows, assets: list[dict]) -> tuple[list[dict], list[dict]]:
    """The findings as contract dicts with their accepted risk (marks), id and incident, and the
    incidents (all the flows, not only those the report lists, tell which pairs talk)."""
    out = [{**f.as_dict(), "suppressed": m} for f, m in zip(findings, marks)]
    ids, of, incidents = incidents_of.group(out, ((f.client, f.server, f.packets) for f in flows), assets)
    for d, fid, iid in zip(out, ids, of):
        d.update(id=fid, incident=iid)
    return out, incidents


def _flow(f) -> dict:
    return {"src": f.client, "dst": f.server, "proto": f.l4, "port": f.port, "app": f.app,
            "vlan": f.vlan, "packets": f.packets, "bytes": f.bytes, "operations": f.operations,
            "first": iso(f.first), "last": iso(f.last)}


def _zones(site, assets) -> list[dict]:
    if site is not None and getattr(site, "zones", None):
        return [{"name": z.name, "kind": z.kind, "networks": [str(n) for n in z.networks],
                 "vlans": list(z.vlans)} for z in site.zones]
    names = sorted({a.zone for a in assets if a.zone})
    return [{"name": n, "kind": "internet" if n == "internet" else "inferred", "networks": [], "vlans": []}
            for n in names]


def _attestations(site) -> list[dict]:
    if site is None:
        return []
    out = []
    for key, att in sorted((getattr(site, "attestations", None) or {}).items()):
        out.append({"id": key, "status": getattr(att, "status", None),
                    "evidence": getattr(att, "evidence", None), "date": str(getattr(att, "date", "") or "") or None})
    return out
