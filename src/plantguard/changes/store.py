"""Change tickets kept in the store (store/change_tables.py): saved by `plantguard change add` and
`change import`, read by `assess --db` and later by the central server. A ticket id is unique:
saving it again replaces it (a re-imported export updates its tickets)."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from sqlalchemy import select

from plantguard.changes.tickets import Ticket
from plantguard.store.change_tables import ChangeTicketRow
from plantguard.store.db import begin_write, session_factory, store_errors

MAX_STORED = 100_000     # tickets an assessment reads from the store (newest windows first)


def save_tickets(engine, tickets: list[Ticket], label: str = "store", site: str = "") -> tuple[int, int]:
    """(added, replaced)."""
    with store_errors(label), session_factory(engine).begin() as s:
        begin_write(s)
        return save_in(s, tickets, site)


def save_in(s, tickets: list[Ticket], site: str = "") -> tuple[int, int]:
    """save_tickets inside the caller's transaction (the central server audits in the same one)."""
    added = replaced = 0
    for t in tickets:
        row = s.execute(select(ChangeTicketRow).where(ChangeTicketRow.site == site,
                                                      ChangeTicketRow.ticket == t.id)).scalar_one_or_none()
        if row is None:
            row = ChangeTicketRow(site=site, ticket=t.id)
            s.add(row)
            added += 1
        else:
            replaced += 1
        row.plcs, row.stations = list(t.plcs), list(t.stations)
        row.starts_at, row.ends_at = t.start.timestamp(), t.end.timestamp()
        row.operations = sorted(t.operations)
        row.source, row.added_at = t.source, time.time()
    return added, replaced


def stored_tickets(engine, label: str = "store", site: str = "") -> list[Ticket]:
    """The store's tickets (of one central site), in window order."""
    with store_errors(label), session_factory(engine)() as s:
        return tickets_in(s, site)


def tickets_in(s, site: str = "") -> list[Ticket]:
    rows = s.execute(select(ChangeTicketRow).where(ChangeTicketRow.site == site)
                     .order_by(ChangeTicketRow.starts_at.desc()).limit(MAX_STORED)).scalars().all()
    out = [Ticket(r.ticket, tuple(r.plcs), tuple(r.stations), _utc(r.starts_at), _utc(r.ends_at),
                  frozenset(r.operations), r.source) for r in rows]
    return out[::-1]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)
