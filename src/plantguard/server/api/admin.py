"""Administration: API tokens, users, sensor revocation and the audit log. Tokens and users are
scoped to sites; every change is audited in the same transaction."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from plantguard.server import audit, auth, roles
from plantguard.server import tables as t
from plantguard.server.api.common import CURSOR, LIMIT, Page, Principal, central, db, invalid, one_in_sites, requires, utc
from plantguard.server.api.inventory import SensorOut, sensor_out

router = APIRouter(prefix="/api/v1")

MAX_EXPIRY_DAYS = 366
_DURATION = re.compile(r"^\s*(\d{1,4})\s*([hdw])\s*$")
_UNIT = {"h": 1 / 24, "d": 1, "w": 7}


def parse_duration(text: str, what: str = "expiry", max_days: int = MAX_EXPIRY_DAYS) -> timedelta:
    """'12h', '30d', '2w' as a timedelta; ValueError with the accepted forms otherwise."""
    m = _DURATION.match(text or "")
    if m is None:
        raise ValueError(f"{what} must be a number of hours, days or weeks (12h, 30d, 2w), not {text!r}")
    days = int(m.group(1)) * _UNIT[m.group(2)]
    if not 0 < days <= max_days:
        raise ValueError(f"{what} must be more than 0 and at most {max_days} days")
    return timedelta(days=days)


class TokenRequest(BaseModel):
    role: Literal["viewer", "analyst", "engineer", "admin", "sensor"]
    sites: list[str] = Field(default_factory=list, max_length=100)
    expires: str = "30d"
    name: str = Field("", max_length=200)

    @field_validator("expires")
    @classmethod
    def _expires(cls, v: str) -> str:
        parse_duration(v)
        return v


class TokenOut(BaseModel):
    id: str
    name: str
    role: str
    sites: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool
    single_use: bool
    used_at: datetime | None
    created_by: str


class NewToken(TokenOut):
    token: str = Field(description="shown once: only its argon2id hash is kept")


class UserRequest(BaseModel):
    username: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=12, max_length=1000)
    role: Literal["viewer", "analyst", "engineer", "admin"]
    sites: list[str] = Field(default_factory=list, max_length=100)


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    sites: list[str]
    created_at: datetime
    disabled: bool


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    object: str
    before: Any = None
    after: Any = None
    prev_hash: str
    hash: str


class AuditVerdict(BaseModel):
    ok: bool
    rows: int
    first_bad: int | None
    problem: str | None


def create_token(session: Session, actor: str, role: str, sites: list[str], expires: timedelta,
                 name: str = "") -> tuple[str, auth.ApiToken]:
    """A new token (its text, shown once, and its row); audited. A sensor enrolment token is single-use
    and names exactly one site."""
    if role == roles.SENSOR and len(sites) != 1:
        raise ValueError("a sensor enrolment token names exactly one site (--site)")
    text, token_id, secret_hash = auth.new_token(prefix=auth.ENROL if role == roles.SENSOR else auth.TOKEN)
    now = datetime.now(timezone.utc)
    row = auth.ApiToken(id=token_id, name=name, role=role, sites=list(sites), secret_hash=secret_hash,
                        created_at=now, expires_at=now + expires, single_use=role == roles.SENSOR,
                        created_by=actor)
    session.add(row)
    audit.append(session, actor, "token.create", f"token {token_id}",
                 after={"role": role, "sites": list(sites), "expires_at": row.expires_at.isoformat(), "name": name})
    return text, row


def token_out(r: auth.ApiToken) -> dict:
    return dict(id=r.id, name=r.name or "", role=r.role, sites=list(r.sites or []), created_at=utc(r.created_at),
                expires_at=utc(r.expires_at), last_used_at=utc(r.last_used_at), revoked=r.revoked_at is not None,
                single_use=bool(r.single_use), used_at=utc(r.used_at), created_by=r.created_by or "")


@router.post("/tokens", response_model=NewToken, status_code=201, summary="Create an API or sensor enrolment token")
def new_token(body: TokenRequest, who: Principal = Depends(requires("tokens:manage")),
              session: Session = Depends(db)):
    if who.sites and not set(body.sites or ["*"]) <= set(who.sites):
        raise HTTPException(403, "a token may not reach sites its creator cannot")
    try:
        text, row = create_token(session, who.actor, body.role, body.sites, parse_duration(body.expires), body.name)
    except ValueError as exc:
        raise invalid(("body", "sites"), str(exc), body.sites)
    session.commit()
    return NewToken(token=text, **token_out(row))


@router.get("/tokens", response_model=list[TokenOut], summary="Every token (never its secret)")
def list_tokens(who: Principal = Depends(requires("tokens:manage")), session: Session = Depends(db)):
    return [token_out(r) for r in session.scalars(select(auth.ApiToken).order_by(auth.ApiToken.created_at))]


@router.delete("/tokens/{token_id}", response_model=TokenOut, summary="Revoke a token")
def revoke_token(token_id: str, request: Request, request_who: Principal = Depends(requires("tokens:manage")),
                 session: Session = Depends(db)):
    row = session.get(auth.ApiToken, token_id)
    if row is None:
        raise HTTPException(404, "no such token")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(timezone.utc)
        audit.append(session, request_who.actor, "token.revoke", f"token {token_id}", before={"revoked": False},
                     after={"revoked": True})
        session.commit()
    central(request).tokens.drop(token_id)
    return token_out(row)


@router.post("/users", response_model=UserOut, status_code=201, summary="Create a console user")
def new_user(body: UserRequest, who: Principal = Depends(requires("users:manage")), session: Session = Depends(db)):
    if session.scalar(select(auth.User).where(auth.User.username == body.username)) is not None:
        raise HTTPException(409, "a user of that name exists")
    user = auth.User(username=body.username, password_hash=auth.hash_secret(body.password), role=body.role,
                     sites=body.sites, created_at=datetime.now(timezone.utc), disabled=False)
    session.add(user)
    session.flush()
    audit.append(session, who.actor, "user.create", f"user {body.username}",
                 after={"role": body.role, "sites": body.sites})
    session.commit()
    return UserOut(id=user.id, username=user.username, role=user.role, sites=user.sites or [],
                   created_at=utc(user.created_at), disabled=False)


@router.post("/sensors/{sensor_id}/revoke", response_model=SensorOut, summary="Revoke a sensor's certificate")
def revoke_sensor(sensor_id: str, who: Principal = Depends(requires("sensors:manage")),
                  session: Session = Depends(db)):
    sensor, site = one_in_sites(session, who, t.Sensor, sensor_id, "sensor")
    if sensor.revoked_at is None:
        sensor.revoked_at = datetime.now(timezone.utc)
        audit.append(session, who.actor, "sensor.revoke", f"sensor {sensor_id}", before={"revoked": False},
                     after={"revoked": True})
        session.commit()
    return sensor_out(sensor, site)


@router.get("/audit", response_model=Page[AuditOut], summary="The audit log, oldest first")
def audit_log(action: str | None = Query(None, description="this action, or actions starting with it and a dot"),
              limit: int = LIMIT, cursor: int | None = CURSOR,
              who: Principal = Depends(requires("audit:read")), session: Session = Depends(db)):
    q = select(audit.AuditRow)
    if cursor is not None:
        q = q.where(audit.AuditRow.id > cursor)
    if action is not None:
        q = q.where((audit.AuditRow.action == action) | audit.AuditRow.action.startswith(action + ".", autoescape=True))
    rows = session.scalars(q.order_by(audit.AuditRow.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [AuditOut(id=r.id, at=utc(r.at), actor=r.actor, action=r.action, object=r.object,
                               before=r.before, after=r.after, prev_hash=r.prev_hash, hash=r.hash) for r in rows],
            "next_cursor": rows[-1].id if more else None}


@router.get("/audit/verify", response_model=AuditVerdict, summary="Check the audit log's hash chain")
def audit_verify(who: Principal = Depends(requires("audit:read")), session: Session = Depends(db)):
    v = audit.verify(session)
    return AuditVerdict(ok=v.ok, rows=v.rows, first_bad=v.first_bad, problem=v.problem)
