"""Sensors (health, last contact and lag, outbox, version, schema, clock skew, certificate expiry,
revocation) and the audit log (newest first, paged, with the chain verified on every visit)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, select

from plantguard.server import audit
from plantguard.server import tables as t
from plantguard.server.api.common import Principal, central, utc
from plantguard.server.console.base import PAGE_SIZE, link, page_requires, page_window, render, sites_for

router = APIRouter(include_in_schema=False)
SILENT_S = 3600              # a sensor quiet this long is shown as silent
CERT_WARN_DAYS = 7


def _health(x: t.Sensor, lag: float | None, cert_days: float | None) -> tuple[str, str]:
    """(word, css class) for a sensor's state."""
    if x.revoked_at:
        return "revoked", "bad"
    if cert_days is not None and cert_days <= 0:
        return "certificate expired", "bad"
    if lag is None:
        return "never seen", "bad"
    if lag > SILENT_S:
        return f"silent {lag / 3600:.1f} h", "bad"
    if (x.health or {}).get("dropped") or (x.health or {}).get("rejected_items"):
        return "dropping", "bad"
    if cert_days is not None and cert_days < CERT_WARN_DAYS:
        return "certificate expiring", "warn"
    return "ok", "ok"


@router.get("/sensors")
def sensors(request: Request, who: Principal = Depends(page_requires("sensors:read"))):
    now = datetime.now(timezone.utc)
    with central(request).sessions() as s:
        sites = {x.id: x.name for x in sites_for(s, who)}
        rows = list(s.scalars(select(t.Sensor).where(t.Sensor.site_id.in_(list(sites)))
                              .order_by(t.Sensor.site_id, t.Sensor.name)))
    out = []
    for x in rows:
        seen = utc(x.last_seen_at)
        lag = (now - seen).total_seconds() if seen else None
        cert_days = (utc(x.cert_not_after) - now).total_seconds() / 86400 if x.cert_not_after else None
        word, css = _health(x, lag, cert_days)
        out.append({"s": x, "site": sites[x.site_id], "seen": seen, "lag": lag, "cert": utc(x.cert_not_after),
                    "cert_days": cert_days, "health": x.health or {}, "word": word, "css": css,
                    "revoked": utc(x.revoked_at)})
    return render(request, who, "sensors.html.j2", title="Sensors", sensors=out)


def _json(v) -> str:
    return "" if v is None else json.dumps(v, sort_keys=True, ensure_ascii=False)[:600]


@router.get("/audit")
def audit_log(request: Request, offset: int = Query(0, ge=0, le=10_000_000),
              who: Principal = Depends(page_requires("audit:read"))):
    with central(request).sessions() as s:
        verdict = audit.verify(s)
        total = s.scalar(select(func.count()).select_from(audit.AuditRow))
        rows = list(s.scalars(select(audit.AuditRow).order_by(audit.AuditRow.id.desc()).offset(offset).limit(PAGE_SIZE)))
    entries = [{"r": r, "at": utc(r.at), "before": _json(r.before), "after": _json(r.after)} for r in rows]
    return render(request, who, "audit.html.j2", title="Audit log", entries=entries, verdict=verdict,
                  window=page_window(offset, total), link=lambda **kw: link("/audit", {}, **kw))
