"""The PLC change timeline: every write, program download/upload, firmware update and run/stop
sent to a controller, with the station, the verdict (authorised by a ticket or a station, or not,
and why) as of now, and the evidence frames; and the change tickets, which an engineer adds here."""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from plantguard.server.api.changes import TicketIn, _site, add_ticket
from plantguard.server.api.common import Principal, central
from plantguard.server.console.base import link, page_requires, page_window, render, sites_for
from plantguard.server.plc_changes import site_tickets, timeline
from plantguard.store.db import begin_write

router = APIRouter(include_in_schema=False)
OPERATIONS = ("program", "write", "mode", "firmware", "config")


def _page(request: Request, who: Principal, site: str | None, error: str | None = None, status: int = 200,
          offset: int = 0):
    f = {k: request.query_params.get(k) for k in ("controller", "verdict") if request.query_params.get(k)}
    with central(request).sessions() as s:
        sites = sites_for(s, who)
        chosen = next((x for x in sites if x.name == site), None) if site else (sites[0] if sites else None)
        if site and chosen is None:
            raise HTTPException(404, "no such site")
        rows = timeline(s, chosen) if chosen else []
        tickets = site_tickets(s, chosen) if chosen else []
    controllers = sorted({str(r.get("controller")) for r in rows})
    if f.get("controller"):
        rows = [r for r in rows if r.get("controller") == f["controller"]]
    if f.get("verdict"):
        want = f["verdict"] == "authorised"
        rows = [r for r in rows if bool((r.get("verdict") or {}).get("authorised")) == want]
    window = page_window(offset, len(rows))
    return render(request, who, "changes.html.j2", status=status, title="PLC changes",
                  sites=[x.name for x in sites], site=chosen.name if chosen else None,
                  rows=rows[window["offset"]:window["offset"] + window["size"]], total=len(rows), window=window,
                  tickets=tickets, controllers=controllers, f=f, operations=OPERATIONS,
                  error=error, link=lambda **kw: link("/changes", {"site": site, **f}, **kw))


@router.get("/changes")
def changes(request: Request, site: str | None = None, offset: int = Query(0, ge=0, le=10_000_000),
            who: Principal = Depends(page_requires("changes:read"))):
    return _page(request, who, site, offset=offset)


def _split(text: str) -> list[str]:
    return [x for x in (p.strip() for p in (text or "").replace(";", ",").split(",")) if x]


def _utc(text: str) -> datetime:
    d = datetime.fromisoformat(text)
    return d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d


@router.post("/changes")
async def add(request: Request, who: Principal = Depends(page_requires("changes:write"))):
    form = await request.form()
    site = str(form.get("site") or "")
    try:
        body = TicketIn(site=site, ticket=str(form.get("ticket") or "").strip(), plcs=_split(str(form.get("plcs"))),
                        stations=_split(str(form.get("stations"))), start=_utc(str(form.get("start"))),
                        end=_utc(str(form.get("end"))), operations=[o for o in OPERATIONS if form.get(f"op-{o}")])
    except (ValidationError, ValueError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        msg = f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}" if first else f"time: {exc}"
        return _page(request, who, site or None, error=f"Ticket not added: {msg}", status=422)
    with central(request).sessions() as s:
        begin_write(s)
        _site(s, who, site)
        try:
            add_ticket(s, who, body)
        except HTTPException as exc:
            if exc.status_code != 422:
                raise
            return _page(request, who, site, error=f"Ticket not added: {exc.detail}", status=422)
    return RedirectResponse(link("/changes", {"site": site}), status_code=303)
