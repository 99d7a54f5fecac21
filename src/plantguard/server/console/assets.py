"""Assets: the filtered, sorted, paged table (and its CSV), and one asset's page: identity with
where each field came from, firmware and its advisories, the patch plan's entry, services, peers
and flows, findings and alerts, evidence frames with a Wireshark display filter, and the history
of its record."""
from __future__ import annotations

import csv
import io
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, or_, select

from plantguard.server import tables as t
from plantguard.server.api.common import Principal, central, one_in_sites, utc
from plantguard.server.api.inventory import asset_query
from plantguard.server.console.base import link, page_requires, page_window, render, sites_for
from plantguard.util.sanitize import csv_cell

router = APIRouter(include_in_schema=False)
SORTS = {"key": t.Asset.key, "vendor": t.Asset.vendor, "role": t.Asset.role, "zone": t.Asset.zone,
         "last_seen": t.Asset.last_seen_at, "first_seen": t.Asset.first_seen_at}
FILTERS = ("site", "zone", "role", "vendor", "protocol", "firmware", "q", "new_since", "vulnerable", "sort")
CSV_MAX = 100_000


def _filters(request: Request) -> dict:
    return {k: request.query_params.get(k) for k in FILTERS if request.query_params.get(k)}


def _query(session, who: Principal, f: dict):
    new_since = None
    if f.get("new_since"):
        try:
            new_since = datetime.fromisoformat(f["new_since"])
        except ValueError:
            raise HTTPException(422, "new since: a date such as 2026-11-30")
    query = asset_query(session, who, site=f.get("site"), zone=f.get("zone"), role=f.get("role"),
                        vendor=f.get("vendor"), protocol=f.get("protocol"), q=f.get("q"), new_since=new_since,
                        firmware=f.get("firmware"))
    if f.get("vulnerable"):
        vulnerable = select(t.Finding.site_id, t.Finding.assets).where(t.Finding.check_id.startswith("vuln."),
                                                                      t.Finding.failing()).subquery()
        query = query.where(select(vulnerable.c.site_id).where(
            vulnerable.c.site_id == t.Asset.site_id,
            vulnerable.c.assets.contains(func.concat(" ", t.Asset.key, " "))).exists())
    key = (f.get("sort") or "key").lstrip("-")
    column = SORTS.get(key, t.Asset.key)
    return query.order_by(column.desc() if (f.get("sort") or "").startswith("-") else column, t.Asset.id)


def _choices(session, who: Principal) -> dict:
    sites = sites_for(session, who)
    ids = [s.id for s in sites]

    def distinct(column):
        return [v for v in session.scalars(select(column).where(t.Asset.site_id.in_(ids)).distinct().order_by(column)) if v]
    return {"sites": [s.name for s in sites], "zones": distinct(t.Asset.zone), "roles": distinct(t.Asset.role)}


@router.get("/assets")
def assets(request: Request, offset: int = Query(0, ge=0, le=10_000_000),
           who: Principal = Depends(page_requires("assets:read"))):
    f = _filters(request)
    with central(request).sessions() as s:
        query = _query(s, who, f)
        total = s.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
        rows = s.execute(query.offset(offset).limit(100)).all()
        choices = _choices(s, who)
    return render(request, who, "assets.html.j2", title="Assets", rows=rows, f=f, choices=choices,
                  window=page_window(offset, total), link=lambda **kw: link("/assets", f, **kw),
                  csv_link=link("/assets.csv", f))


@router.get("/assets.csv")
def assets_csv(request: Request, who: Principal = Depends(page_requires("assets:read"))):
    f = _filters(request)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["site", "address", "mac", "vendor", "role", "zone", "protocols", "product", "firmware",
                "first_seen", "last_seen"])
    with central(request).sessions() as s:
        for a, site in s.execute(_query(s, who, f).limit(CSV_MAX)):
            ident = a.data.get("identity") or {}
            w.writerow([csv_cell(v) for v in (site, a.key, a.mac, a.vendor, a.role, a.zone, a.protocols.strip(),
                                              ident.get("product"), ident.get("firmware"),
                                              utc(a.first_seen_at).isoformat(), utc(a.last_seen_at).isoformat())])
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="assets.csv"'})


def display_filter(ip: str | None, frame: int | None) -> str:
    """A Wireshark display filter for an evidence frame of this asset."""
    parts = []
    if frame is not None:
        parts.append(f"frame.number == {int(frame)}")
    if ip:
        parts.append(f"{'ipv6' if ':' in ip else 'ip'}.addr == {ip}")
    return " && ".join(parts)


@router.get("/assets/{asset_id}")
def asset_page(request: Request, asset_id: int = Path(..., ge=1, le=2**31 - 1),
               who: Principal = Depends(page_requires("assets:read"))):
    with central(request).sessions() as s:
        a, site = one_in_sites(s, who, t.Asset, asset_id, "asset")
        needle = f" {a.key} "
        findings = list(s.scalars(select(t.Finding).where(t.Finding.site_id == a.site_id,
                                                          t.Finding.assets.contains(needle, autoescape=True))
                                  .order_by(t.Finding.id.desc()).limit(200)))
        latest = {}
        for fnd in findings:            # newest report of each check only
            latest.setdefault((fnd.check_id, fnd.title), fnd)
        flows = list(s.scalars(select(t.Flow).where(t.Flow.site_id == a.site_id,
                                                    or_(t.Flow.src == a.key, t.Flow.dst == a.key))
                               .order_by(t.Flow.packets.desc()).limit(200)))
        alerts = list(s.scalars(select(t.Alert).where(t.Alert.site_id == a.site_id,
                                                      t.Alert.message.contains(a.key, autoescape=True))
                                .order_by(t.Alert.at.desc()).limit(100)))
        history = list(s.scalars(select(t.AssetChange).where(t.AssetChange.asset_id == a.id)
                                 .order_by(t.AssetChange.id.desc()).limit(100)))
        run = s.scalar(select(t.Run).where(t.Run.site_id == a.site_id).order_by(t.Run.id.desc()).limit(1))
    plan = [e for e in ((run.report or {}).get("patch_plan") or []) if isinstance(e, dict) and e.get("asset") == a.key] \
        if run else []
    advisories = [f for f in latest.values() if f.check_id.startswith("vuln.") and f.result == "fail"]
    return render(request, who, "asset.html.j2", title=a.key, a=a, site=site, data=a.data, findings=list(latest.values()),
                  advisories=advisories, plan=plan, flows=flows, alerts=alerts, history=history,
                  display_filter=display_filter)
