"""PLC changes on the central server: the changes each pushed assessment lists (contract
plc_changes) judged against the site's change tickets kept here, with the same verdict function
the sensor's checks use (changes.tickets.verdict). A site with tickets on the server is judged by
them, now (a ticket added later turns a change authorised on the timeline); a site without keeps
the sensor's own verdict (its tickets or engineering stations).

When a run arrives, every change that is not authorised raises an alert (plc.unauthorized-write or
plc.unauthorized-program-change), once per change (its station, controller, protocol, operation
and times), naming the reason."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from plantguard.changes.store import tickets_in
from plantguard.changes.tickets import Change, verdict
from plantguard.changes.timeline import by_of
from plantguard.model import PROGRAM_CATEGORIES
from plantguard.server import tables as t

RULE_PROGRAM, RULE_WRITE = "plc.unauthorized-program-change", "plc.unauthorized-write"


def _epoch(v) -> float | None:
    try:
        return datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp() if v else None
    except ValueError:
        return None


def change_of(record: dict, names: tuple[str, ...] = ()) -> Change:
    return Change(station=str(record.get("station")), controller=str(record.get("controller")),
                  protocol=str(record.get("protocol")), operation=str(record.get("operation")),
                  category=str(record.get("category")), count=int(record.get("count") or 0),
                  first=_epoch(record.get("first")), last=_epoch(record.get("last")), controller_names=names)


def judge(records: list[dict], tickets: list, names_of=lambda ip: ()) -> list[dict]:
    """The records with their verdict as of now: by the server's tickets when the site has some
    (`judged_by: central`), else the sensor's (`judged_by: sensor`)."""
    out = []
    for r in records:
        if not isinstance(r, dict):
            continue
        if tickets:
            v = verdict(change_of(r, names_of(r.get("controller"))), tickets)
            r = {**r, "verdict": {"authorised": v.authorised, "ticket": v.ticket, "reason": v.reason, "by": by_of(v)},
                 "judged_by": "central"}
        else:
            r = {**r, "judged_by": "sensor"}
        out.append(r)
    return out


def site_tickets(session, site: t.Site) -> list:
    return tickets_in(session, site.name)


def alert_rows(session, site: t.Site, sensor: t.Sensor, seq: int, at: datetime, records: list[dict]) -> list[t.Alert]:
    """New alerts for the changes of a run that are not authorised (repeats of a known change: none)."""
    judged = judge(records, site_tickets(session, site))
    rows = []
    for r in judged:
        v = r.get("verdict") or {}
        if v.get("authorised"):
            continue
        key = "\x1f".join(str(r.get(k)) for k in ("station", "controller", "protocol", "operation", "first", "last"))
        eid = "plc-" + hashlib.sha256(f"{site.id}\x1f{key}".encode("utf-8", "surrogatepass")).hexdigest()[:28]
        program = r.get("category") in PROGRAM_CATEGORIES
        when = _epoch(r.get("first"))
        message = (f"{r.get('count')} × {r.get('operation')} ({r.get('category')}) to {r.get('controller')} over "
                   f"{r.get('protocol')} from {r.get('station')}: not authorised ({v.get('reason')})")
        rows.append(t.Alert(site_id=site.id, sensor_id=sensor.id, seq=seq, event_id=eid,
                            at=datetime.fromtimestamp(when, timezone.utc) if when else at,
                            severity="critical" if program else "high", rule_id=RULE_PROGRAM if program else RULE_WRITE,
                            message=message[:4000],
                            data={"kind": "alert", "message": message, "rule": {"id": RULE_PROGRAM if program else RULE_WRITE},
                                  "source": {"ip": r.get("station")}, "destination": {"ip": r.get("controller")},
                                  "plc_change": r}))
    return rows


MAX_RUNS = 200            # the newest runs of a site whose changes make the timeline
MAX_TIMELINE = 20_000


def timeline(session, site: t.Site) -> list[dict]:
    """Every change the site's newest runs listed (once each: the same station, controller,
    operation and times pushed again is one), judged as of now, newest first."""
    from sqlalchemy import select
    seen, records = set(), []
    for run in session.scalars(select(t.Run).where(t.Run.site_id == site.id).order_by(t.Run.id.desc()).limit(MAX_RUNS)):
        for r in (run.report or {}).get("plc_changes") or []:
            if not isinstance(r, dict):
                continue
            key = tuple(str(r.get(k)) for k in ("station", "controller", "protocol", "operation", "first", "last"))
            if key in seen:
                continue
            seen.add(key)
            records.append({**r, "run": run.id, "sensor": run.sensor_id})
            if len(records) >= MAX_TIMELINE:
                break
    names = _controller_names(session, site)
    judged = judge(records, site_tickets(session, site), lambda ip: names.get(ip, ()))
    return sorted(judged, key=lambda r: str(r.get("first") or ""), reverse=True)


def _controller_names(session, site: t.Site) -> dict[str, tuple[str, ...]]:
    """address -> the names a ticket may call a controller by (hostnames, declared name)."""
    from sqlalchemy import select
    out = {}
    for key, data in session.execute(select(t.Asset.key, t.Asset.data).where(t.Asset.site_id == site.id)):
        names = [*(data.get("hostnames") or []), (data.get("declared") or {}).get("name")]
        out[key] = tuple(str(n) for n in names if n)
    return out
