"""PLC changes and change tickets: the timeline of a site's controller changes with each one's
verdict as of now (server/plc_changes.py), and the tickets that authorise them (engineer role;
every ticket added is audited)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from plantguard.changes.store import save_in
from plantguard.changes.tickets import TicketError, make_ticket
from plantguard.server import audit
from plantguard.server import tables as t
from plantguard.server.api.common import Principal, db, requires
from plantguard.server.plc_changes import site_tickets, timeline

router = APIRouter(prefix="/api/v1")
Operation = Literal["write", "program", "mode", "firmware", "config"]


class TicketIn(BaseModel):
    site: str = Field(min_length=1, max_length=200)
    ticket: str = Field(min_length=1, max_length=120)
    plcs: list[str] = Field(min_length=1, max_length=256, description="addresses, networks or asset names")
    stations: list[str] = Field(min_length=1, max_length=256, description="addresses")
    start: AwareDatetime
    end: AwareDatetime
    operations: list[Operation] = Field(default_factory=list, description="none: all")


class TicketOut(BaseModel):
    site: str
    id: str
    plcs: list[str]
    stations: list[str]
    start: datetime
    end: datetime
    operations: list[str]
    source: str


class Timeline(BaseModel):
    sites: list[str]
    tickets: list[TicketOut]
    changes: list[dict[str, Any]] = Field(description="contract plc_changes records, newest first, each with "
                                                      "its verdict as of now and judged_by (central or sensor)")


def _site(session: Session, who: Principal, name: str) -> t.Site:
    if not who.sees(name):
        raise HTTPException(403, f"no access to site {name!r}")
    site = session.scalar(select(t.Site).where(t.Site.name == name))
    if site is None:
        raise HTTPException(404, "no such site")
    return site


def ticket_out(x, site: str) -> TicketOut:
    return TicketOut(site=site, id=x.id, plcs=list(x.plcs), stations=list(x.stations), start=x.start, end=x.end,
                     operations=sorted(x.operations), source=x.source)


@router.get("/changes", response_model=Timeline, summary="PLC change timeline and change tickets (of a site, or all)")
def changes(site: str | None = Query(None, max_length=200), who: Principal = Depends(requires("changes:read")),
            session: Session = Depends(db)):
    sites = [_site(session, who, site)] if site is not None else [
        s for s in session.scalars(select(t.Site).order_by(t.Site.name)) if who.sees(s.name)]
    return Timeline(sites=[s.name for s in sites],
                    tickets=[ticket_out(x, s.name) for s in sites for x in site_tickets(session, s)],
                    changes=[{**r, "site": s.name} for s in sites for r in timeline(session, s)])


def add_ticket(session: Session, who: Principal, body: TicketIn) -> TicketOut:
    """Validate, store and audit one ticket (the API and the console's form)."""
    site = _site(session, who, body.site)
    try:
        ticket = make_ticket(body.ticket, body.plcs, body.stations, start=body.start, end=body.end,
                             operations=body.operations, source=f"central:{who.actor}")
    except TicketError as exc:
        raise HTTPException(422, str(exc))
    added, _ = save_in(session, [ticket], site.name)
    audit.append(session, who.actor, "change.add" if added else "change.replace", f"ticket {ticket.id} ({site.name})",
                 after=ticket.as_dict())
    session.commit()
    return ticket_out(ticket, site.name)


@router.post("/changes", response_model=TicketOut, status_code=201, summary="Add (or replace) a change ticket")
def new_ticket(body: TicketIn, who: Principal = Depends(requires("changes:write")), session: Session = Depends(db)):
    return add_ticket(session, who, body)
