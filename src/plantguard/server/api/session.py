"""Liveness, the first admin (from the one-time secret `server init` printed), console log-in and
log-out. Log-in failures are rate limited per user name and client address, and audited."""
from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from plantguard import __version__
from plantguard.server import audit, auth
from plantguard.server.api.common import SESSION_COOKIE, Principal, central, client_label, db, requires, utc

router = APIRouter(prefix="/api/v1")



@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return auth.hash_secret("not a password of anyone")


class Health(BaseModel):
    status: str
    version: str


class Bootstrap(BaseModel):
    secret: str = Field(max_length=200)
    username: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=12, max_length=1000)


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=1000)


class LoggedIn(BaseModel):
    username: str
    role: str
    sites: list[str]
    csrf: str = Field(description="send it back in X-CSRF-Token with every POST/DELETE of this session")
    expires_at: datetime


class WhoAmI(BaseModel):
    kind: str
    id: str
    name: str
    role: str
    sites: list[str]


@router.get("/health", response_model=Health, summary="Liveness (no credential, no data)")
def health():
    return Health(status="ok", version=__version__)


@router.post("/bootstrap", response_model=WhoAmI, status_code=201,
             summary="Create the first admin with the one-time secret printed by `server init`")
def bootstrap(body: Bootstrap, request: Request, session: Session = Depends(db)):
    if session.scalar(select(auth.User).where(auth.User.username == body.username)) is not None \
            or not auth.redeem_bootstrap(session, body.secret):
        session.rollback()
        audit.append(session, f"anonymous@{client_label(request)}", "bootstrap.refused", "admin bootstrap")
        session.commit()
        raise HTTPException(401, "bootstrap refused: unknown or already used secret")
    user = auth.User(username=body.username, password_hash=auth.hash_secret(body.password), role="admin",
                     sites=[], created_at=datetime.now(timezone.utc), disabled=False)
    session.add(user)
    session.flush()
    audit.append(session, f"bootstrap@{client_label(request)}", "user.create", f"user {body.username}",
                 after={"role": "admin", "sites": []})
    session.commit()
    return WhoAmI(kind="user", id=str(user.id), name=user.username, role="admin", sites=[])


@router.post("/login", response_model=LoggedIn, summary="Console log-in: a session cookie and its CSRF token")
def login(body: Login, request: Request, response: Response, session: Session = Depends(db)):
    try:
        cookie, ws, user = sign_in(session, central(request).logins, client_label(request), body.username,
                                   body.password)
    except LoginRefused as exc:
        raise HTTPException(exc.status, exc.detail, headers={"Retry-After": str(exc.wait)} if exc.wait else None)
    set_session_cookie(response, cookie)
    return LoggedIn(username=user.username, role=user.role, sites=user.sites or [], csrf=ws.csrf,
                    expires_at=utc(ws.expires_at))


class LoginRefused(Exception):
    def __init__(self, status: int, detail: str, wait: int | None = None):
        super().__init__(detail)
        self.status, self.detail, self.wait = status, detail, wait


def sign_in(session: Session, limiter, client: str, username: str, password: str):
    """(cookie, session row, user) for a right password, audited; LoginRefused (429 with the seconds
    to wait, or 401, audited) otherwise. The API's log-in and the console's form both come here."""
    key = (username, client)
    wait = limiter.retry_after(*key)
    if wait:
        raise LoginRefused(429, "too many failed log-ins; try again later", wait)
    user = session.scalar(select(auth.User).where(auth.User.username == username))
    ok = user is not None and not user.disabled and auth.verify_secret(user.password_hash, password)
    if not ok:
        if user is None:
            auth.verify_secret(_dummy_hash(), password)     # the same time for unknown and known names
        limiter.failed(*key)
        audit.append(session, f"anonymous@{client}", "login.failed", f"user {username[:120]}")
        session.commit()
        raise LoginRefused(401, "wrong user name or password")
    limiter.succeeded(*key)
    cookie, ws = auth.new_session(session, user.id)
    audit.append(session, f"user:{user.username}", "login", f"user {user.username}")
    session.commit()
    return cookie, ws, user


def set_session_cookie(response: Response, cookie: str) -> None:
    response.set_cookie(SESSION_COOKIE, cookie, max_age=int(auth.SESSION_HOURS * 3600), httponly=True, secure=True,
                        samesite="strict", path="/")


@router.post("/logout", status_code=204, summary="End the console session")
def logout(request: Request, response: Response, who: Principal = Depends(requires("session:self")),
           session: Session = Depends(db)):
    cookie = request.cookies.get(SESSION_COOKIE)
    if who.kind == "user" and cookie:
        row = auth.find_session(session, cookie)
        if row is not None:
            session.delete(row)
            session.commit()
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = 204
    return response


@router.get("/whoami", response_model=WhoAmI, summary="The caller's identity, role and sites")
def whoami(who: Principal = Depends(requires("session:self"))):
    return WhoAmI(kind=who.kind, id=who.id, name=who.name, role=who.role, sites=list(who.sites))
