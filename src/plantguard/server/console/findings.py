"""Findings: each sensor's latest findings (its newest findings envelope), one row per (check,
asset set) with the highest severity, its result (fail; accepted: every fail an accepted risk, with
the reason; pass), the practice, title and evidence count;
filters and paging. Severity, check and status filter in SQL; the practice is in the finding's
record, so it filters the loaded rows, at most LOAD_MAX of them."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from plantguard.checks.base import SEVERITIES, severities_at_least, severity_rank
from plantguard.server import tables as t
from plantguard.server.api.common import Principal, central, in_sites, newest_findings, scoped_sites, site_rows
from plantguard.server.console.base import PAGE_SIZE, link, page_requires, page_window, render, sites_for

router = APIRouter(include_in_schema=False)
FILTERS = ("site", "severity", "check", "status", "practice")
LOAD_MAX = 50_000


def _filters(request: Request) -> dict:
    return {k: request.query_params.get(k)[:200] for k in FILTERS if request.query_params.get(k)}


def _group(rows) -> list[dict]:
    groups: dict[tuple, dict] = {}
    for f, site in rows:
        g = groups.get((site, f.check_id, f.assets))
        if g is None:
            g = groups[(site, f.check_id, f.assets)] = {
                "site": site, "check": f.check_id, "assets": f.assets.split(), "severity": f.severity,
                "status": "pass", "accepted": "", "practice": f.data.get("practice") or "", "title": f.title, "evidence": 0, "n": 0}
        g["n"] += 1
        g["evidence"] += int(f.data.get("evidence_total") or len(f.data.get("evidence") or []))
        if severity_rank(f.severity) > severity_rank(g["severity"]):
            g["severity"] = f.severity
        if f.result == "fail" or (f.result == "accepted" and g["status"] == "pass"):
            g["status"] = f.result
        if f.result == "accepted":
            g["accepted"] = g["accepted"] or str((f.data.get("suppressed") or {}).get("reason") or "")[:200]
    order = {"fail": 0, "accepted": 1, "pass": 2}
    return sorted(groups.values(), key=lambda g: (order[g["status"]], -severity_rank(g["severity"]),
                                                  g["check"], g["site"], g["assets"]))


@router.get("/findings")
def findings(request: Request, offset: int = Query(0, ge=0, le=10_000_000),
             who: Principal = Depends(page_requires("findings:read"))):
    f = _filters(request)
    with central(request).sessions() as s:
        ids = scoped_sites(s, who, f.get("site"))
        query = in_sites(newest_findings(site_rows(t.Finding)), t.Finding.site_id, ids)
        if f.get("severity"):
            shown = severities_at_least(f["severity"])
            if shown is None:
                raise HTTPException(422, f"severity must be one of {', '.join(SEVERITIES)}")
            query = query.where(t.Finding.severity.in_(shown))
        if f.get("check"):
            query = query.where(t.Finding.check_id == f["check"])
        if f.get("status"):
            if f["status"] not in ("pass", "fail", "accepted"):
                raise HTTPException(422, "status must be pass, fail or accepted")
            query = query.where({"fail": t.Finding.failing(), "accepted": (t.Finding.status == "fail") & t.Finding.suppressed,
                                 "pass": t.Finding.status == "pass"}[f["status"]])
        rows = s.execute(query.order_by(t.Finding.id).limit(LOAD_MAX + 1)).all()
        sites = [x.name for x in sites_for(s, who)]
    cut = len(rows) > LOAD_MAX
    groups = _group(rows[:LOAD_MAX])
    practices = sorted({g["practice"] for g in groups if g["practice"]})
    checks = sorted({g["check"] for g in groups})
    if f.get("practice"):
        groups = [g for g in groups if g["practice"] == f["practice"]]
    window = page_window(offset, len(groups))
    return render(request, who, "findings.html.j2", title="Findings", groups=groups[offset:offset + PAGE_SIZE], f=f,
                  choices={"sites": sites, "severities": SEVERITIES, "checks": checks, "practices": practices},
                  window=window, cut=cut, load_max=LOAD_MAX, link=lambda **kw: link("/findings", f, **kw))
