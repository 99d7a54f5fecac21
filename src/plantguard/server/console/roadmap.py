"""The roadmap (now / 1-3 months / 3+ months, sized to the organisation) and the patch plan of a
site, from its latest pushed assessment."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy import select

from plantguard.server import tables as t
from plantguard.server.api.common import Principal, central
from plantguard.server.console.base import page_requires, render, sites_for

router = APIRouter(include_in_schema=False)
HORIZONS = (("immediate", "Now"), ("1-3 months", "1–3 months"), ("3+ months", "3+ months"))


@router.get("/roadmap")
def roadmap(request: Request, site: str | None = None, who: Principal = Depends(page_requires("runs:read"))):
    with central(request).sessions() as s:
        sites = sites_for(s, who)
        chosen = (next((x for x in sites if x.name == site), None) if site else (sites[0] if sites else None))
        if site and chosen is None:
            raise HTTPException(404, "no such site")
        run = s.scalar(select(t.Run).where(t.Run.site_id == chosen.id).order_by(t.Run.id.desc()).limit(1)) \
            if chosen else None
    report = (run.report or {}) if run else {}
    rm = report.get("roadmap") or {}
    return render(request, who, "roadmap.html.j2", title="Roadmap", sites=[x.name for x in sites],
                  site=chosen.name if chosen else None, run=run, roadmap=rm, horizons=HORIZONS,
                  plan=[e for e in report.get("patch_plan") or [] if isinstance(e, dict)])
