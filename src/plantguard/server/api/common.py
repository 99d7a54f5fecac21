"""What every route shares: who is asking (Principal), the permission each route declares
(`requires`), the database session, site scoping and keyset pagination.

A request is authenticated by exactly one of: an API token (`Authorization: Bearer pgt_…`), a
console session cookie (unsafe methods also need the session's CSRF token in `X-CSRF-Token`), or
a sensor's client certificate (mutual TLS; only for the sensor permissions). A route that declares
no permission is refused by tests/test_server_rbac.py unless roles.PUBLIC names its path."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Annotated, Generic, Iterator, TypeVar

from fastapi import HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from plantguard.server import auth, pki, roles
from plantguard.server import tables as t
from plantguard.store.db import begin_write
from plantguard.util.timefmt import as_utc as utc  # noqa: F401 - the routes' name for it

SESSION_COOKIE = "pg_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_LIMIT = 500
MAX_INT = 2**31 - 1           # ids are INTEGER columns: PostgreSQL refuses a larger number, SQLite past 2**63

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Principal:
    kind: str                      # token | user | sensor
    id: str
    role: str
    sites: tuple[str, ...] = ()    # empty: every site
    name: str = ""

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name or self.id}"

    def sees(self, site: str) -> bool:
        return not self.sites or site in self.sites


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: int | None = None


def central(request: Request):
    return request.app.state.central


def db(request: Request) -> Iterator[Session]:
    with central(request).sessions() as session:
        if request.method not in SAFE_METHODS:
            begin_write(session)      # SQLite: take the write lock before the first read (audit chain)
        yield session


def client_label(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Require:
    """The dependency a route declares: `Depends(requires("assets:read"))`. It resolves the caller and
    refuses (401 no or bad credential, 403 a role without the permission)."""

    def __init__(self, permission: str):
        if permission not in roles.PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        self.permission = permission

    def __call__(self, request: Request) -> Principal:
        # a session of its own, ended before the route's: the route's write lock is taken first thing
        with central(request).sessions() as session:
            who = authenticate(request, session, sensor=roles.PERMISSIONS[self.permission].role == roles.SENSOR)
        if not roles.allows(who.role, self.permission):
            raise HTTPException(403, f"{who.role} may not {self.permission}")
        return who


def requires(permission: str) -> Require:
    return Require(permission)


def authenticate(request: Request, session: Session, *, sensor: bool) -> Principal:
    if sensor:
        return _sensor(request, session)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return _token(request, session, header[7:].strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return _web_session(request, session, cookie)
    raise HTTPException(401, "a credential is needed (Authorization: Bearer <token>)",
                        headers={"WWW-Authenticate": "Bearer"})


def _token(request: Request, session: Session, text: str) -> Principal:
    row = auth.authenticate_token(session, text, central(request).tokens)
    if row is None:
        raise HTTPException(401, "unknown, expired or revoked token", headers={"WWW-Authenticate": "Bearer"})
    if row.role == roles.SENSOR:
        raise HTTPException(401, "an enrolment token is not an API token", headers={"WWW-Authenticate": "Bearer"})
    if session.dirty:
        session.commit()          # last_used_at, at most once a minute per token
    return Principal("token", row.id, row.role, tuple(row.sites or ()), row.name or row.id)


def _web_session(request: Request, session: Session, cookie: str) -> Principal:
    row = auth.find_session(session, cookie)
    if row is None:
        raise HTTPException(401, "session expired: log in again")
    if request.method not in SAFE_METHODS and not auth.check_csrf(row, request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, "missing or wrong CSRF token")
    user = session.get(auth.User, row.user_id)
    if user is None or user.disabled:
        raise HTTPException(401, "session expired: log in again")
    return Principal("user", str(user.id), user.role, tuple(user.sites or ()), user.username)


def _sensor(request: Request, session: Session) -> Principal:
    from plantguard.server import audit
    der = (request.scope.get("state") or {}).get("peer_cert_der")
    if not der:
        raise HTTPException(401, "a sensor client certificate is needed (mutual TLS)")
    fp = pki.fingerprint(der)
    row = session.scalar(select(t.Sensor).where((t.Sensor.cert_fingerprint == fp) | (t.Sensor.previous_fingerprint == fp)))
    problem = None
    if row is None:
        problem = "unknown certificate"
    elif row.revoked_at is not None:
        problem = "sensor revoked"
    elif pki.not_after(der) <= datetime.now(timezone.utc):
        problem = "certificate expired"
    if problem:
        audit.append(session, f"anonymous@{client_label(request)}", "sensor.refused", f"certificate {fp[:16]}",
                     after={"reason": problem, "sensor": row.id if row else None})
        session.commit()
        raise HTTPException(401, f"client certificate refused: {problem}")
    if row.previous_fingerprint == fp and row.cert_fingerprint != fp:
        pass                              # the old certificate still works until the renewed one is used
    elif row.previous_fingerprint is not None:
        row.previous_fingerprint = None   # the renewed certificate is in use: the old one is done
        session.commit()
    site = session.get(t.Site, row.site_id)
    return Principal("sensor", row.id, roles.SENSOR, (site.name,), row.name)


# ------------------------------------------------------------------------------ queries
def scoped_sites(session: Session, who: Principal, site: str | None) -> list[int] | None:
    """The site ids the caller may see, narrowed to `site` when given; None: every site."""
    if site is not None:
        if not who.sees(site):
            raise HTTPException(403, f"no access to site {site!r}")
        row = session.scalar(select(t.Site).where(t.Site.name == site))
        return [row.id] if row else []
    if not who.sites:
        return None
    return list(session.scalars(select(t.Site.id).where(t.Site.name.in_(who.sites))))


def in_sites(query, column, ids: list[int] | None):
    """The query narrowed to the site ids scoped_sites gave (None: no narrowing)."""
    return query if ids is None else query.where(column.in_(ids))


def site_rows(model, *columns):
    """select (row, its site's name, *columns), joined to the row's site."""
    return select(model, t.Site.name, *columns).join(t.Site, t.Site.id == model.site_id)


def one_in_sites(session: Session, who: Principal, model, row_id, noun: str, *columns, lock: bool = False):
    """(row, site name, *columns) of one object the caller may see; 404 for another site's too."""
    query = site_rows(model, *columns).where(model.id == row_id)
    if lock:
        query = query.with_for_update(of=model)
    row = session.execute(query).first()
    if row is None or not who.sees(row[1]):
        raise HTTPException(404, f"no such {noun}")
    return tuple(row)


def newest_findings(query, site_id: int | None = None):
    """The query (over Finding) kept to each sensor's newest findings envelope: its latest run."""
    newest = select(t.Finding.sensor_id, func.max(t.Finding.seq).label("seq"))
    if site_id is not None:
        newest = newest.where(t.Finding.site_id == site_id)
    newest = newest.group_by(t.Finding.sensor_id).subquery()
    return query.join(newest, (newest.c.sensor_id == t.Finding.sensor_id) & (newest.c.seq == t.Finding.seq))


def paged(query, id_column, cursor: int | None, limit: int):
    if cursor is not None:
        query = query.where(id_column > cursor)
    return query.order_by(id_column).limit(limit + 1)


def page_of(rows: list, limit: int, item) -> dict:
    """A page of (row, site name) results fetched with paged(): the cursor is the last row's id."""
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [item(*r) for r in rows], "next_cursor": rows[-1][0].id if more else None}


def invalid(loc: tuple, msg: str, value=None) -> RequestValidationError:
    """A 422 shaped like FastAPI's own (the documented HTTPValidationError) for a check no model makes."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg, "input": value}])


LIMIT = Query(100, ge=1, le=MAX_LIMIT, description="items per page")
CURSOR = Query(None, ge=0, le=MAX_INT, description="next_cursor of the previous page")
# Annotated: FastAPI copies the Path per parameter (a shared Path() default would take the first one's name)
ObjectId = Annotated[int, Path(ge=0, le=MAX_INT, description="the object's id")]
