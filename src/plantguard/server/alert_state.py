"""An alert's state change, in one place for the API and the console: open, acknowledged, closed
or risk-accepted (a reason for the last two; risk accepted until a time, after which the alert
counts as open again), written to the audit log with its before and after in the caller's
transaction."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import and_, or_

from plantguard.server import audit
from plantguard.server import tables as t
from plantguard.util.timefmt import as_utc

STATES = ("open", "acknowledged", "closed", "risk-accepted")
NEEDS_REASON = ("risk-accepted", "closed")


def state_of(a: t.Alert) -> dict:
    out = {"state": a.state, "assignee": a.assignee, "reason": a.state_reason}
    if a.state_until is not None:
        out["until"] = audit.iso(a.state_until)
    return out


def apply(session, actor: str, a: t.Alert, site: str, state: str, reason: str | None = None,
          assignee: str | None = None, until: datetime | None = None, action: str | None = None) -> None:
    """Set the state and audit it as `action` (default alert.<state>); the caller checked the
    reason and commits. `until` only for risk-accepted; any other state clears it."""
    before = state_of(a)
    a.state = state
    a.assignee = assignee if assignee is not None else a.assignee
    a.state_reason = reason
    a.state_until = until if state == "risk-accepted" else None
    a.state_by, a.state_at = actor, datetime.now(timezone.utc)
    audit.append(session, actor, action or f"alert.{state}", f"alert {a.id} ({site})", before=before, after=state_of(a))


def effective(a: t.Alert, now: datetime | None = None) -> str:
    """The state as shown: a risk acceptance that expired is open again."""
    if a.state == "risk-accepted" and a.state_until is not None and as_utc(a.state_until) <= (now or _now()):
        return "open"
    return a.state


def effective_is(state: str, now: datetime | None = None):
    """A WHERE condition for alerts whose effective state is `state`."""
    now = now or _now()
    expired = and_(t.Alert.state == "risk-accepted", t.Alert.state_until.is_not(None), t.Alert.state_until <= now)
    if state == "open":
        return or_(t.Alert.state == "open", expired)
    if state == "risk-accepted":
        return and_(t.Alert.state == "risk-accepted", or_(t.Alert.state_until.is_(None), t.Alert.state_until > now))
    return t.Alert.state == state


def _now() -> datetime:
    return datetime.now(timezone.utc)


