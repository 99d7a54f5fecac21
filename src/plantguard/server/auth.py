"""Credentials of the central server: argon2id password and secret hashes, prefixed API tokens,
one-time secrets (sensor enrolment, admin bootstrap), cookie sessions with a CSRF secret, and the
login rate limit. Nothing here has a default credential: every secret is random and shown once.

Token text is `<prefix>_<id>_<secret>`: the id (12 lowercase base32 characters) is public and keys
the row, the secret (32 random bytes, urlsafe base64) is stored only as its argon2id hash. The
prefix says what the text is for (pgt_ API token, pge_ enrolment, pga_ admin bootstrap), so one
kind is never accepted as another and secret scanners can recognise a leaked one."""
from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import JSON, Boolean, CheckConstraint, DateTime, Integer, String, Text, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from plantguard.server.roles import ALL_ROLES, ROLES, SENSOR
from plantguard.store.db import Base
from plantguard.util.timefmt import as_utc

# argon2id, 19 MiB, 3 passes, 1 lane (above OWASP's minimum): one verification takes ~30 ms on
# the idle 2-core CI machine, ~50 ms when both cores are busy; one lane does not need a free core
HASHER = PasswordHasher(time_cost=3, memory_cost=19 * 1024, parallelism=1)

TOKEN, ENROL, BOOTSTRAP = "pgt", "pge", "pga"
PREFIXES = (TOKEN, ENROL, BOOTSTRAP)
ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"     # RFC 4648 base32, lower case
ID_LENGTH = 12
SECRET_BYTES = 32
_TOKEN_RE = re.compile(r"(pg[tea])_([a-z2-7]{12})_([A-Za-z0-9_-]{43})")
MAX_TOKEN_TEXT = 128          # longer text is not a token; checked before any regex or hash work

TOKEN_DAYS = 30               # default lifetime of a token
CACHE_SECONDS = 60.0
CACHE_ENTRIES = 10_000
LAST_USED_EVERY = 60.0        # last_used_at is written at most once a minute per token
SESSION_HOURS = 8             # a cookie session lasts a shift

LOGIN_FAILURES = 5
LOGIN_WINDOW = 300.0
LIMITER_KEYS = 50_000
MAX_USERNAME = 256


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _token_expiry() -> datetime:
    return _now() + timedelta(days=TOKEN_DAYS)


def _roles_sql(roles) -> str:
    return ", ".join(f"'{r}'" for r in roles)


# -- hashing ------------------------------------------------------------------------------------

def hash_secret(text: str) -> str:
    """The argon2id hash ($argon2id$...) of a password or a token's secret."""
    return HASHER.hash(text)


_dummy: list[str] = []


def verify_secret(hash: str | None, text: str) -> bool:
    """Whether `text` matches `hash`. False on a mismatch or a malformed hash, never an error;
    a None hash (no such user) still costs one verification, so timing does not tell."""
    if not isinstance(text, str):
        return False
    if hash is None:
        if not _dummy:
            _dummy.append(hash_secret(secrets.token_urlsafe(16)))
        try:
            HASHER.verify(_dummy[0], text)
        except VerificationError:
            pass
        return False
    if not isinstance(hash, str):
        return False
    try:
        return HASHER.verify(hash, text)
    except (VerificationError, InvalidHashError, ValueError):
        return False


# -- token text ---------------------------------------------------------------------------------

def format_token(id: str, secret: str, prefix: str = TOKEN) -> str:
    return f"{prefix}_{id}_{secret}"


def parse_token(text: str, prefix: str = TOKEN) -> tuple[str, str] | None:
    """(id, secret) of a token text with this prefix, or None for anything else."""
    if not isinstance(text, str) or len(text) > MAX_TOKEN_TEXT:
        return None
    m = _TOKEN_RE.fullmatch(text)
    if m is None or m.group(1) != prefix:
        return None
    return m.group(2), m.group(3)


def new_token(prefix: str = TOKEN) -> tuple[str, str, str]:
    """(text, id, secret_hash) of a fresh token; the text is shown once and never stored."""
    if prefix not in PREFIXES:
        raise ValueError(f"token prefix must be one of {', '.join(PREFIXES)}")
    id = "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return format_token(id, secret, prefix), id, hash_secret(secret)


class TokenCache:
    """Token texts verified in the last CACHE_SECONDS, keyed by their sha256, so a client's
    requests do not each pay an argon2 verification. Bounded (oldest dropped); thread-safe."""

    def __init__(self, ttl: float = CACHE_SECONDS, max_entries: int = CACHE_ENTRIES, clock=time.monotonic):
        self.ttl, self.max_entries, self._clock = ttl, max_entries, clock
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, text: str) -> str | None:
        key = self._key(text)
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            if self._clock() >= hit[1]:
                del self._entries[key]
                return None
            return hit[0]

    def put(self, text: str, id: str) -> None:
        key = self._key(text)
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (id, self._clock() + self.ttl)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def drop(self, id: str) -> None:
        """Forget every cached text of token `id` (call when it is revoked)."""
        with self._lock:
            for key in [k for k, (i, _) in self._entries.items() if i == id]:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


# -- tables -------------------------------------------------------------------------------------

class ApiToken(Base):
    """API tokens (pgt_) and single-use enrolment tokens (pge_). Human tokens always expire."""
    __tablename__ = "central_tokens"
    __table_args__ = (
        CheckConstraint(f"role IN ({_roles_sql(ALL_ROLES)})", name="ck_central_tokens_role"),
        CheckConstraint(f"role = '{SENSOR}' OR expires_at IS NOT NULL", name="ck_central_tokens_expires"),
    )
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    sites: Mapped[list] = mapped_column(JSON, default=list)          # empty: every site
    secret_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True,
                                                        default=_token_expiry)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    single_use: Mapped[bool] = mapped_column(Boolean, default=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[str] = mapped_column(String(200), default="")

    def usable(self, now: datetime | None = None) -> bool:
        now = now or _now()
        expires = as_utc(self.expires_at)
        return (self.revoked_at is None and (expires is None or now < expires)
                and not (self.single_use and self.used_at is not None))


class User(Base):
    __tablename__ = "central_users"
    __table_args__ = (CheckConstraint(f"role IN ({_roles_sql(ROLES)})", name="ck_central_users_role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(MAX_USERNAME), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    sites: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class Bootstrap(Base):
    """The one-time admin bootstrap secret (pga_) printed by `server init`: one row, id 1."""
    __tablename__ = "central_bootstrap"
    __table_args__ = (CheckConstraint("id = 1", name="ck_central_bootstrap_one"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    secret_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebSession(Base):
    """A cookie session; the row key is the sha256 of the cookie, so a database dump holds none."""
    __tablename__ = "central_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# -- using them ---------------------------------------------------------------------------------

def authenticate_token(db: Session, text: str, cache: TokenCache | None = None, *,
                       now: datetime | None = None) -> ApiToken | None:
    """The usable API token row for `text`, or None. The row is read on every call (a revocation
    or expiry takes effect at once, in every process); the cache only spares the argon2 check.
    last_used_at is brought up to date at most once a minute; the caller commits."""
    parsed = parse_token(text)
    if parsed is None:
        return None
    now = now or _now()
    id, secret = parsed
    row = db.get(ApiToken, id)
    if row is None or row.single_use or not row.usable(now):
        return None
    if cache is None or cache.get(text) != id:
        if not verify_secret(row.secret_hash, secret):
            return None
        if cache is not None:
            cache.put(text, id)
    last = as_utc(row.last_used_at)
    if last is None or (now - last).total_seconds() >= LAST_USED_EVERY:
        row.last_used_at = now
    return row


def redeem_enrolment(db: Session, text: str, *, now: datetime | None = None) -> ApiToken | None:
    """Spend a single-use enrolment token (pge_): the row, marked used, or None when the text is
    wrong, expired, revoked or already spent. Two concurrent redemptions: one wins (the UPDATE
    only takes an unused row). The caller commits."""
    parsed = parse_token(text, ENROL)
    if parsed is None:
        return None
    now = now or _now()
    id, secret = parsed
    row = db.get(ApiToken, id)
    if row is None or not row.single_use or not row.usable(now) or not verify_secret(row.secret_hash, secret):
        return None
    won = db.execute(update(ApiToken).where(ApiToken.id == id, ApiToken.used_at.is_(None))
                     .values(used_at=now, last_used_at=now).execution_options(synchronize_session=False))
    if won.rowcount != 1:
        return None
    db.refresh(row)
    return row


def redeem_bootstrap(db: Session, text: str, *, now: datetime | None = None) -> bool:
    """Spend the admin bootstrap secret (pga_): True once, for the right text. The caller commits."""
    parsed = parse_token(text, BOOTSTRAP)
    row = db.get(Bootstrap, 1)
    if parsed is None or row is None or row.used_at is not None:
        return False
    # there is one bootstrap row: the text's id part is not stored, its secret alone is checked
    if not verify_secret(row.secret_hash, parsed[1]):
        return False
    won = db.execute(update(Bootstrap).where(Bootstrap.id == 1, Bootstrap.used_at.is_(None))
                     .values(used_at=now or _now()).execution_options(synchronize_session=False))
    return won.rowcount == 1


def new_session(db: Session, user_id: int, *, now: datetime | None = None,
                hours: float = SESSION_HOURS) -> tuple[str, WebSession]:
    """(cookie value, row) of a fresh session for the user; the caller sets the cookie and commits."""
    now = now or _now()
    cookie = secrets.token_urlsafe(SECRET_BYTES)
    row = WebSession(id=_session_key(cookie), user_id=user_id, csrf=secrets.token_urlsafe(SECRET_BYTES),
                     created_at=now, expires_at=now + timedelta(hours=hours))
    db.add(row)
    return cookie, row


def find_session(db: Session, cookie: str, *, now: datetime | None = None) -> WebSession | None:
    """The unexpired session of a cookie value, or None."""
    if not isinstance(cookie, str) or not cookie or len(cookie) > MAX_TOKEN_TEXT:
        return None
    row = db.get(WebSession, _session_key(cookie))
    if row is None or (now or _now()) >= as_utc(row.expires_at):
        return None
    return row


def check_csrf(web_session: WebSession | None, presented: str | None) -> bool:
    """Whether the CSRF value a state-changing request presents (header) is the session's own."""
    if web_session is None or not isinstance(presented, str) or not presented:
        return False
    return hmac.compare_digest(web_session.csrf.encode(), presented.encode("utf-8", "surrogatepass"))


def _session_key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "surrogatepass")).hexdigest()


# -- login rate limit ---------------------------------------------------------------------------

class LoginLimiter:
    """At most LOGIN_FAILURES failed logins per (username, client ip) in any LOGIN_WINDOW seconds;
    beyond that, retry_after() says how long to wait (HTTP 429 with Retry-After). In memory,
    bounded: past LIMITER_KEYS pairs the stalest is forgotten. Thread-safe."""

    def __init__(self, failures: int = LOGIN_FAILURES, window: float = LOGIN_WINDOW,
                 max_keys: int = LIMITER_KEYS, clock=time.monotonic):
        self.failures, self.window, self.max_keys, self._clock = failures, window, max_keys, clock
        self._seen: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key, now: float) -> list[float]:
        times = [t for t in self._seen.get(key, ()) if now - t < self.window]
        if times:
            self._seen[key] = times
        else:
            self._seen.pop(key, None)
        return times

    def retry_after(self, username: str, ip: str) -> int | None:
        """Whole seconds until this pair may try again, or None when it may try now."""
        key = (str(username)[:MAX_USERNAME], str(ip))
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            if len(times) < self.failures:
                return None
            return max(1, math.ceil(times[-self.failures] + self.window - now))

    def failed(self, username: str, ip: str) -> None:
        key = (str(username)[:MAX_USERNAME], str(ip))
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            self._seen[key] = (times + [now])[-self.failures:]
            self._seen.move_to_end(key)
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)

    def succeeded(self, username: str, ip: str) -> None:
        with self._lock:
            self._seen.pop((str(username)[:MAX_USERNAME], str(ip)), None)
