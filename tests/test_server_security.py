"""Roles, permissions and credentials of the central server (server/roles.py, server/auth.py):
the permission matrix of every role, argon2id hashes, token text, the verified-token cache, the
login limiter, and the token, enrolment, bootstrap and session rows on a real database (an SQLite
file and a PostgreSQL database)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plantguard.server import auth, roles
from plantguard.store.db import Base

READS = {"sites:read", "sensors:read", "assets:read", "flows:read", "findings:read", "alerts:read",
         "baselines:read", "runs:read", "session:self", "changes:read"}
GRANTS = {
    "viewer": READS,
    "analyst": READS | {"alerts:ack", "alerts:state"},
    "engineer": READS | {"alerts:ack", "alerts:state", "baselines:accept", "changes:write"},
    "admin": READS | {"alerts:ack", "alerts:state", "baselines:accept", "changes:write",
                      "sensors:manage", "tokens:manage", "users:manage", "audit:read"},
    "sensor": {"ingest:push", "sensor:renew"},
}


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- roles --------------------------------------------------------------------------------------

def test_roles_are_ordered_and_sensor_stands_apart():
    assert roles.ROLES == ("viewer", "analyst", "engineer", "admin")
    assert roles.SENSOR == "sensor" and roles.SENSOR not in roles.ROLES
    assert roles.ALL_ROLES == (*roles.ROLES, roles.SENSOR)


def test_every_permission_is_declared_once_with_an_existing_role():
    assert set(roles.PERMISSIONS) == set().union(*GRANTS.values())
    for name, perm in roles.PERMISSIONS.items():
        assert perm.name == name and perm.description
        assert perm.role in roles.ALL_ROLES, f"{name}: role {perm.role!r} does not exist"
    assert set(roles.PUBLIC) == {"/api/v1/health", "/api/v1/enrol", "/api/v1/bootstrap", "/api/v1/login",
                                 "/openapi.json", "/login", "/static/console.css"}
    assert all(why for why in roles.PUBLIC.values())


@pytest.mark.parametrize("role", roles.ALL_ROLES)
def test_allows_matrix(role):
    got = {p for p in roles.PERMISSIONS if roles.allows(role, p)}
    assert got == GRANTS[role]


def test_allows_refuses_unknown_roles_and_permissions():
    for role in ("", "root", "Admin", "admin ", None):
        assert not any(roles.allows(role, p) for p in roles.PERMISSIONS)
    for role in roles.ALL_ROLES:
        assert not roles.allows(role, "everything") and not roles.allows(role, "")


# -- hashes -------------------------------------------------------------------------------------

def test_secret_hash_is_argon2id_and_verifies():
    h = auth.hash_secret("correct horse battery staple")
    assert h.startswith("$argon2id$v=19$m=19456,t=3,p=1$"), h
    assert auth.hash_secret("correct horse battery staple") != h          # salted
    assert auth.verify_secret(h, "correct horse battery staple")
    assert not auth.verify_secret(h, "correct horse battery stapl")


@pytest.mark.parametrize("bad", ["", "junk", "$argon2id$v=19$m=19456,t=3,p=1$AAAA$BBBB", "$2b$12$abc", None, 17])
def test_verify_secret_never_raises(bad):
    assert auth.verify_secret(bad, "anything") is False


# -- token text ---------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", auth.PREFIXES)
def test_token_round_trip(prefix):
    text, id, secret_hash = auth.new_token(prefix)
    assert text.startswith(f"{prefix}_") and len(id) == 12 and set(id) <= set(auth.ID_ALPHABET)
    parsed = auth.parse_token(text, prefix)
    assert parsed is not None and parsed[0] == id
    assert auth.format_token(*parsed, prefix=prefix) == text
    assert auth.verify_secret(secret_hash, parsed[1])
    assert secret_hash.startswith("$argon2id$") and parsed[1] not in secret_hash
    # one kind of secret is never taken for another
    assert all(auth.parse_token(text, other) is None for other in auth.PREFIXES if other != prefix)


def test_new_tokens_differ_and_unknown_prefix_refused():
    texts = {auth.new_token()[0] for _ in range(3)}
    assert len(texts) == 3
    with pytest.raises(ValueError):
        auth.new_token("xyz")


def test_parse_token_rejects_malformed_text():
    text, id, _ = auth.new_token()
    secret = auth.parse_token(text)[1]
    bad = [
        "", "pgt_", "pgt__", text + " ", " " + text, text + "\n", text + "A", text[:-1],
        text.upper(), f"pgt_{id.upper()}_{secret}", f"pgt_{id[:-1]}_{secret}", f"pgt_{id}1_{secret}",
        f"pgt_{id}_{secret}_x", f"pgt-{id}-{secret}", f"pgx_{id}_{secret}", f"pgt_{id}_{secret[:-1]}+",
        f"pgt_{id[:-1]}0_{secret}", f"pgt_{id}_{secret}" + "A" * 200, "pgt_" + "a" * 10_000,
        None, text.encode(), 42,
    ]
    for t in bad:
        assert auth.parse_token(t) is None, t


# -- token cache --------------------------------------------------------------------------------

def test_token_cache_expires_and_drops():
    clock = Clock()
    cache = auth.TokenCache(clock=clock)
    cache.put("pgt_a", "id-a")
    cache.put("pgt_b", "id-b")
    assert cache.get("pgt_a") == "id-a" and cache.get("pgt_c") is None
    clock.t += 59.9
    assert cache.get("pgt_a") == "id-a"
    cache.put("pgt_b", "id-b")                  # verified again: another 60 s
    clock.t += 0.1
    assert cache.get("pgt_a") is None and len(cache) == 1
    assert cache.get("pgt_b") == "id-b"
    cache.drop("id-b")
    assert cache.get("pgt_b") is None


def test_token_cache_is_bounded():
    cache = auth.TokenCache(max_entries=3, clock=Clock())
    for i in range(10):
        cache.put(f"t{i}", f"id{i}")
    assert len(cache) == 3
    assert [cache.get(f"t{i}") for i in range(10)] == [None] * 7 + ["id7", "id8", "id9"]


def test_token_cache_keys_by_hash_not_text():
    cache = auth.TokenCache(clock=Clock())
    cache.put("pgt_secret_text", "id1")
    assert all("pgt_secret_text" not in k for k in cache._entries)


# -- login limiter ------------------------------------------------------------------------------

def test_login_limiter_blocks_after_five_failures_and_recovers():
    clock = Clock()
    lim = auth.LoginLimiter(clock=clock)
    for _ in range(5):
        assert lim.retry_after("alice", "10.0.0.1") is None
        lim.failed("alice", "10.0.0.1")
        clock.t += 10
    assert lim.retry_after("alice", "10.0.0.1") == 300 - 50           # the first failure was 50 s ago
    assert lim.retry_after("alice", "10.0.0.2") is None                # another client
    assert lim.retry_after("bob", "10.0.0.1") is None                  # another user
    clock.t += 249
    assert lim.retry_after("alice", "10.0.0.1") == 1
    clock.t += 1                                                       # the first failure left the window
    assert lim.retry_after("alice", "10.0.0.1") is None
    lim.failed("alice", "10.0.0.1")                                    # five in the window again
    assert lim.retry_after("alice", "10.0.0.1") == 10
    clock.t += 300
    assert lim.retry_after("alice", "10.0.0.1") is None


def test_login_limiter_success_clears_and_memory_is_bounded():
    clock = Clock()
    lim = auth.LoginLimiter(clock=clock, max_keys=100)
    for _ in range(4):
        lim.failed("alice", "ip")
    lim.succeeded("alice", "ip")
    for _ in range(4):
        lim.failed("alice", "ip")
    assert lim.retry_after("alice", "ip") is None
    for i in range(1000):
        lim.failed(f"user{i}" * 100, "ip")
    assert len(lim._seen) == 100


# -- rows ---------------------------------------------------------------------------------------

TABLES = [auth.ApiToken.__table__, auth.User.__table__, auth.Bootstrap.__table__, auth.WebSession.__table__]
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def db(store_url):
    engine = create_engine(store_url)
    Base.metadata.create_all(engine, tables=TABLES)
    with Session(engine, expire_on_commit=False) as s:
        yield s
    engine.dispose()


def _token(db, role="viewer", prefix=auth.TOKEN, **kw):
    text, id, h = auth.new_token(prefix)
    db.add(auth.ApiToken(id=id, name="t", role=role, secret_hash=h, created_by="cli", **kw))
    db.commit()
    return text, id


def _raw_token(db, role, expires_at):
    db.execute(insert(auth.ApiToken).values(id=auth.new_token()[1], role=role, secret_hash="x",
                                            expires_at=expires_at))
    db.commit()


def test_human_tokens_always_expire(db):
    _, id = _token(db)
    got = db.get(auth.ApiToken, id).expires_at
    assert timedelta(days=29) < got.replace(tzinfo=got.tzinfo or timezone.utc) - datetime.now(timezone.utc) <= timedelta(days=30)
    _raw_token(db, "sensor", None)                 # the database itself refuses a human one
    for role in roles.ROLES:
        with pytest.raises(IntegrityError):
            _raw_token(db, role, None)
        db.rollback()
    with pytest.raises(IntegrityError):
        _raw_token(db, "root", NOW)


def test_authenticate_token(db):
    cache = auth.TokenCache()
    text, id = _token(db, expires_at=NOW + timedelta(days=30))
    row = auth.authenticate_token(db, text, cache, now=NOW)
    assert row is not None and row.id == id and row.last_used_at == NOW
    assert cache.get(text) == id
    db.commit()
    # cached: same answer; last use written again only a minute later
    assert auth.authenticate_token(db, text, cache, now=NOW + timedelta(seconds=30)).last_used_at == NOW
    later = NOW + timedelta(seconds=61)
    assert auth.authenticate_token(db, text, cache, now=later).last_used_at == later
    wrong = text[:-1] + ("A" if text[-1] != "A" else "B")
    assert auth.authenticate_token(db, wrong, cache, now=NOW) is None
    assert auth.authenticate_token(db, "pgt_nonsense", cache, now=NOW) is None
    assert auth.authenticate_token(db, text, cache, now=NOW + timedelta(days=30)) is None      # expired
    db.get(auth.ApiToken, id).revoked_at = NOW
    db.commit()
    assert auth.authenticate_token(db, text, cache, now=NOW) is None      # revocation beats the cache


def test_enrolment_token_is_single_use_and_not_an_api_token(db):
    text, id = _token(db, role="sensor", prefix=auth.ENROL, single_use=True, expires_at=NOW + timedelta(days=1))
    assert auth.authenticate_token(db, text, now=NOW) is None
    assert auth.authenticate_token(db, text.replace("pge_", "pgt_", 1), now=NOW) is None
    row = auth.redeem_enrolment(db, text, now=NOW)
    assert row is not None and row.id == id and row.used_at is not None
    db.commit()
    assert auth.redeem_enrolment(db, text, now=NOW) is None
    late, _ = _token(db, role="sensor", prefix=auth.ENROL, single_use=True, expires_at=NOW)
    assert auth.redeem_enrolment(db, late, now=NOW) is None


def test_bootstrap_secret_is_single_use(db):
    text, _, h = auth.new_token(auth.BOOTSTRAP)
    db.add(auth.Bootstrap(secret_hash=h))
    db.commit()
    assert not auth.redeem_bootstrap(db, auth.new_token(auth.BOOTSTRAP)[0])
    assert not auth.redeem_bootstrap(db, text.replace("pga_", "pgt_", 1))
    assert auth.redeem_bootstrap(db, text)
    db.commit()
    assert not auth.redeem_bootstrap(db, text)


def test_sessions_and_csrf(db):
    db.add(auth.User(username="alice", password_hash=auth.hash_secret("pw"), role="analyst"))
    db.commit()
    user = db.query(auth.User).one()
    cookie, row = auth.new_session(db, user.id, now=NOW)
    db.commit()
    assert row.id != cookie and len(row.id) == 64
    found = auth.find_session(db, cookie, now=NOW + timedelta(hours=7))
    assert found is not None and found.user_id == user.id
    assert auth.find_session(db, cookie, now=NOW + timedelta(hours=8)) is None
    assert auth.find_session(db, cookie + "x", now=NOW) is None and auth.find_session(db, "", now=NOW) is None
    assert auth.check_csrf(found, row.csrf)
    assert not auth.check_csrf(found, row.csrf[:-1]) and not auth.check_csrf(found, "")
    assert not auth.check_csrf(found, None) and not auth.check_csrf(None, row.csrf)
    with pytest.raises(IntegrityError):
        db.add(auth.User(username="bob", password_hash="x", role="sensor"))    # sensors are not users
        db.commit()
