"""The overview: per site, the open alerts and failing findings by severity, the practices that
pass or fail, what changed in the last 24 hours, and the health of its sensors."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select

from plantguard.checks.base import SEVERITIES
from plantguard.server import tables as t
from plantguard.server.alert_state import effective_is
from plantguard.server.api.common import Principal, central, newest_findings, utc
from plantguard.server.console.base import page_requires, render, sites_for

router = APIRouter(include_in_schema=False)
SHOWN = tuple(reversed(SEVERITIES[1:]))          # critical first; info is not a tile


def latest_findings(session, site_id: int) -> list[t.Finding]:
    """The findings of each sensor's newest findings envelope for the site."""
    return list(session.scalars(newest_findings(select(t.Finding), site_id)
                                .where(t.Finding.site_id == site_id).order_by(t.Finding.id)))


def practices(findings: list[t.Finding]) -> list[tuple[str, str, int]]:
    """(practice, pass|fail, failing findings) from a run's findings."""
    out: dict[str, list[int]] = {}
    for f in findings:
        p = f.data.get("practice") or "other"
        out.setdefault(p, [0, 0])[f.result == "fail"] += 1   # an accepted risk does not fail its practice
    return [(p, "fail" if n[1] else "pass", n[1]) for p, n in sorted(out.items())]


@router.get("/")
def overview(request: Request, who: Principal = Depends(page_requires("sites:read"))):
    now = datetime.now(timezone.utc)
    day = now - timedelta(days=1)
    cards = []
    with central(request).sessions() as s:
        for site in sites_for(s, who):
            alerts = dict(s.execute(select(t.Alert.severity, func.count()).where(
                t.Alert.site_id == site.id, effective_is("open")).group_by(t.Alert.severity)).all())
            findings = latest_findings(s, site.id)
            failing = {sev: sum(1 for f in findings if f.result == "fail" and f.severity == sev) for sev in SHOWN}
            changed = dict(s.execute(
                select(t.AssetChange.change, func.count()).join(
                    t.Envelope, (t.Envelope.sensor_id == t.AssetChange.sensor_id) & (t.Envelope.seq == t.AssetChange.seq))
                .join(t.Asset, t.Asset.id == t.AssetChange.asset_id)
                .where(t.Asset.site_id == site.id, t.Envelope.received_at >= day)
                .group_by(t.AssetChange.change)).all())
            sensors = list(s.scalars(select(t.Sensor).where(t.Sensor.site_id == site.id).order_by(t.Sensor.name)))
            assets = s.scalar(select(func.count()).select_from(t.Asset).where(t.Asset.site_id == site.id,
                                                                             t.Asset.gone_at.is_(None)))
            cards.append({"site": site, "assets": assets, "alerts": {sev: alerts.get(sev, 0) for sev in SHOWN},
                          "failing": failing, "accepted": sum(1 for f in findings if f.result == "accepted"), "practices": practices(findings), "changed": changed,
                          "sensors": [{"s": x, "last": utc(x.last_seen_at),
                                       "lag": (now - utc(x.last_seen_at)).total_seconds() if x.last_seen_at else None}
                                      for x in sensors]})
    return render(request, who, "overview.html.j2", title="Overview", cards=cards, severities=SHOWN)
