"""Findings and alerts: read with filters; acknowledge, assign, close or accept an alert's risk
(analyst); accept a baseline (engineer). Every change is written to the audit log with its before
and after, in the same transaction as the change."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from plantguard import contract
from plantguard.checks.base import SEVERITIES, severities_at_least
from plantguard.server import alert_state, audit
from plantguard.server import tables as t
from plantguard.server.api.common import (CURSOR, LIMIT, MAX_INT, ObjectId, Page, Principal, db, in_sites, invalid,
                                          newest_findings, one_in_sites, page_of, paged, requires, scoped_sites,
                                          site_rows, utc)
from plantguard.server.api.inventory import BaselineOut, baseline_out

router = APIRouter(prefix="/api/v1")


class FindingOut(BaseModel):
    id: int
    site: str
    sensor: str
    run_id: int | None
    captured_at: datetime
    suppressed: bool = Field(False, description="an accepted risk (finding.suppressed is set): not counted as failing")
    finding: contract.Finding


class AlertOut(BaseModel):
    id: int
    site: str
    sensor: str
    event_id: str
    at: datetime
    received_at: datetime
    severity: str
    rule_id: str | None
    message: str
    state: str
    assignee: str | None
    state_reason: str | None
    state_by: str | None
    state_at: datetime | None
    event: dict[str, Any]


class StateChange(BaseModel):
    state: Literal["open", "acknowledged", "closed", "risk-accepted"]
    reason: str | None = Field(None, max_length=2000)
    assignee: str | None = Field(None, max_length=200)


def _at_least(column, severity: str | None):
    if severity is None:
        return None
    shown = severities_at_least(severity)
    if shown is None:
        raise invalid(("query", "severity"), f"severity must be one of {', '.join(SEVERITIES)}", severity)
    return column.in_(shown)


@router.get("/findings", response_model=Page[FindingOut], summary="Findings, filtered and paged")
def findings(site: str | None = None,
             severity: str | None = Query(None, description="at or above this severity"),
             check: str | None = Query(None, description="check ID"),
             status: Literal["pass", "fail"] | None = None,
             asset: str | None = Query(None, description="an address the finding concerns"),
             suppressed: bool | None = Query(None, description="true: accepted risks only; false: none of them "
                                             "(status=fail&suppressed=false: the failing findings)"),
             run: int | None = Query(None, ge=0, le=MAX_INT,
                                     description="one run; default: each sensor's latest run with findings"),
             since: datetime | None = None, limit: int = LIMIT, cursor: int | None = CURSOR,
             who: Principal = Depends(requires("findings:read")), session: Session = Depends(db)):
    query = in_sites(site_rows(t.Finding), t.Finding.site_id, scoped_sites(session, who, site))
    if run is not None:
        query = query.where(t.Finding.run_id == run)
    elif since is None:
        query = newest_findings(query)
    if since is not None:
        query = query.where(t.Finding.captured_at >= since)
    cond = _at_least(t.Finding.severity, severity)
    if cond is not None:
        query = query.where(cond)
    if check is not None:
        query = query.where(t.Finding.check_id == check)
    if status is not None:
        query = query.where(t.Finding.status == status)
    if suppressed is not None:
        query = query.where(t.Finding.suppressed == suppressed)
    if asset is not None:
        query = query.where(t.Finding.assets.contains(f" {asset} ", autoescape=True))
    rows = session.execute(paged(query, t.Finding.id, cursor, limit)).all()
    return page_of(rows, limit, lambda f, s: FindingOut(id=f.id, site=s, sensor=f.sensor_id, run_id=f.run_id,
                                                        captured_at=utc(f.captured_at),
                                                        suppressed=f.suppressed, finding=contract.Finding.model_validate(f.data)))


@router.get("/alerts", response_model=Page[AlertOut], summary="Alerts, filtered and paged")
def alerts(site: str | None = None,
           severity: str | None = Query(None, description="at or above this severity"),
           check: str | None = Query(None, description="rule / check ID"),
           state: Literal["open", "acknowledged", "closed", "risk-accepted"] | None = None,
           since: datetime | None = Query(None, description="raised at or after this time"),
           until: datetime | None = Query(None, description="raised before this time"),
           limit: int = LIMIT, cursor: int | None = CURSOR,
           who: Principal = Depends(requires("alerts:read")), session: Session = Depends(db)):
    query = in_sites(site_rows(t.Alert), t.Alert.site_id, scoped_sites(session, who, site))
    cond = _at_least(t.Alert.severity, severity)
    if cond is not None:
        query = query.where(cond)
    if check is not None:
        query = query.where(t.Alert.rule_id == check)
    if state is not None:
        query = query.where(t.Alert.state == state)
    if since is not None:
        query = query.where(t.Alert.at >= since)
    if until is not None:
        query = query.where(t.Alert.at < until)
    rows = session.execute(paged(query, t.Alert.id, cursor, limit)).all()
    return page_of(rows, limit, alert_out)


def alert_out(a: t.Alert, site: str) -> AlertOut:
    return AlertOut(id=a.id, site=site, sensor=a.sensor_id, event_id=a.event_id, at=utc(a.at),
                    received_at=utc(a.received_at), severity=a.severity, rule_id=a.rule_id, message=a.message,
                    state=a.state, assignee=a.assignee, state_reason=a.state_reason, state_by=a.state_by,
                    state_at=utc(a.state_at), event=a.data or {})


def _change(session: Session, who: Principal, alert_id: int, change: StateChange) -> AlertOut:
    a, site = one_in_sites(session, who, t.Alert, alert_id, "alert", lock=True)
    if change.state in alert_state.NEEDS_REASON and not (change.reason or "").strip():
        raise invalid(("body", "reason"), f"a reason is needed to set {change.state}", change.reason)
    alert_state.apply(session, who.actor, a, site, change.state, change.reason, change.assignee)
    session.commit()
    return alert_out(a, site)


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut, summary="Acknowledge an alert")
def acknowledge(alert_id: ObjectId, who: Principal = Depends(requires("alerts:ack")), session: Session = Depends(db)):
    return _change(session, who, alert_id, StateChange(state="acknowledged"))


@router.post("/alerts/{alert_id}/state", response_model=AlertOut,
             summary="Set an alert's state: open, acknowledged, closed, risk-accepted (with a reason)")
def set_state(alert_id: ObjectId, change: StateChange, who: Principal = Depends(requires("alerts:state")),
              session: Session = Depends(db)):
    return _change(session, who, alert_id, change)


@router.post("/baselines/{baseline_id}/accept", response_model=BaselineOut, summary="Accept a learnt baseline")
def accept_baseline(baseline_id: ObjectId, who: Principal = Depends(requires("baselines:accept")),
                    session: Session = Depends(db)):
    b, site = one_in_sites(session, who, t.Baseline, baseline_id, "baseline")
    before = {"accepted": b.accepted, "accepted_by": b.accepted_by}
    b.accepted, b.accepted_by = True, who.actor
    audit.append(session, who.actor, "baseline.accept", f"baseline {b.id} ({site})", before=before,
                 after={"accepted": True, "accepted_by": who.actor})
    session.commit()
    return baseline_out(b, site)
