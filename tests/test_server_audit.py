"""The central audit log (server/audit.py) on a real database, an SQLite file and a PostgreSQL
database: the hash chain verifies, tampering done behind the triggers' back (raw SQL with the
triggers dropped) is found at the row it touched, the triggers refuse UPDATE and DELETE, two
writers at once never fork the chain, and rows export as SIEM audit events."""
from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from plantguard.server import audit
from plantguard.siem import ecs
from plantguard.siem.events import Event, event_id
from plantguard.store.db import Base

DROP_TRIGGERS = {
    "sqlite": ["DROP TRIGGER central_audit_no_update", "DROP TRIGGER central_audit_no_delete"],
    "postgresql": ["DROP TRIGGER central_audit_no_change ON central_audit",
                   "DROP TRIGGER central_audit_no_truncate ON central_audit"],
}
T0 = datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=timezone.utc)


@pytest.fixture
def engine(store_url):
    eng = create_engine(store_url, **({"connect_args": {"timeout": 30}} if store_url.startswith("sqlite") else {}))
    Base.metadata.create_all(eng, tables=[audit.AuditRow.__table__])
    with eng.begin() as conn:
        audit.install_append_only(conn)
    yield eng
    eng.dispose()


def fill(engine, n: int) -> None:
    with Session(engine) as s:
        for i in range(n):
            audit.append(s, f"user:u{i % 3}", "alert.acknowledge", f"alert:{i}",
                         before={"state": "open"}, after={"state": "acknowledged", "n": i, "t": (1, 2.5)},
                         now=T0 + timedelta(seconds=i))
            if i % 10 == 9:
                s.commit()
        s.commit()


def raw(engine, *stmts) -> None:
    with engine.begin() as conn:
        for stmt in DROP_TRIGGERS[engine.dialect.name]:
            conn.execute(text(stmt))
        for stmt in stmts:
            conn.execute(text(stmt))


def check(engine) -> audit.VerifyResult:
    with Session(engine) as s:
        return audit.verify(s, batch=17)       # a batch size that does not divide the row count


def test_chain_of_100_verifies(engine):
    fill(engine, 100)
    assert check(engine) == audit.VerifyResult(True, 100, None, None)
    with Session(engine) as s:
        rows = s.query(audit.AuditRow).order_by(audit.AuditRow.id).all()
    assert [r.id for r in rows] == list(range(1, 101))
    assert rows[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))
    assert rows[5].after == {"state": "acknowledged", "n": 5, "t": [1, 2.5]}


def test_hash_is_the_documented_one(engine):
    fill(engine, 1)
    with Session(engine) as s:
        row = s.get(audit.AuditRow, 1)
    body = json.dumps({"id": 1, "at": "2026-03-01T08:00:00.123456+00:00", "actor": "user:u0",
                       "action": "alert.acknowledge", "object": "alert:0", "before": {"state": "open"},
                       "after": {"state": "acknowledged", "n": 0, "t": [1, 2.5]}},
                      sort_keys=True, separators=(",", ":"))
    assert row.hash == hashlib.sha256(("0" * 64 + body).encode()).hexdigest()


def test_empty_log_verifies(engine):
    assert check(engine) == audit.VerifyResult(True, 0, None, None)


@pytest.mark.parametrize("column, value", [("after", "'{\"state\": \"open\"}'"), ("actor", "'user:mallory'"),
                                           ("action", "'alert.close'"), ("at", None)])
def test_edited_row_is_found_at_that_row(engine, column, value):
    fill(engine, 100)
    if column == "at":
        with Session(engine) as s:
            value = "'" + str(s.get(audit.AuditRow, 42).at.replace(tzinfo=None) + timedelta(seconds=1)) + "'"
    raw(engine, f"UPDATE central_audit SET {column} = {value} WHERE id = 42")
    result = check(engine)
    assert (result.ok, result.rows, result.first_bad) == (False, 41, 42)
    assert result.problem.startswith("hash mismatch: row 42"), result.problem


def test_edited_row_with_its_hash_recomputed_breaks_the_next_link(engine):
    fill(engine, 30)
    with Session(engine) as s:
        r = s.get(audit.AuditRow, 10)
        forged = audit.row_hash(r.prev_hash, r.id, r.at, "user:mallory", r.action, r.object, r.before, r.after)
    raw(engine, f"UPDATE central_audit SET actor = 'user:mallory', hash = '{forged}' WHERE id = 10")
    result = check(engine)
    assert (result.ok, result.first_bad) == (False, 11)
    assert result.problem.startswith("broken link: row 11"), result.problem


def test_deleted_row_is_found(engine):
    fill(engine, 100)
    raw(engine, "DELETE FROM central_audit WHERE id = 57")
    result = check(engine)
    assert (result.ok, result.rows, result.first_bad) == (False, 56, 58)
    assert result.problem.startswith("gap in ids: row 58 follows row 56"), result.problem


def test_deleted_first_row_is_found(engine):
    fill(engine, 5)
    raw(engine, "DELETE FROM central_audit WHERE id = 1")
    result = check(engine)
    assert (result.ok, result.rows, result.first_bad) == (False, 0, 2)
    assert result.problem.startswith("gap in ids"), result.problem


def test_row_inserted_in_the_middle_is_found(engine):
    fill(engine, 10)
    # renumber rows 6.. upwards to make room, as a forger must (UPDATE, so the triggers go first)
    raw(engine, "UPDATE central_audit SET id = id + 100 WHERE id >= 6",
        "UPDATE central_audit SET id = id - 99 WHERE id >= 106")
    with Session(engine) as s:
        r5 = s.get(audit.AuditRow, 5)
        h = audit.row_hash(r5.hash, 6, T0, "cli", "token.create", "token:x", None, {"role": "admin"})
        s.add(audit.AuditRow(id=6, at=T0, actor="cli", action="token.create", object="token:x", before=None,
                             after={"role": "admin"}, prev_hash=r5.hash, hash=h))
        s.commit()
    result = check(engine)
    assert (result.ok, result.first_bad) == (False, 7)
    assert result.problem.startswith("broken link: row 7"), result.problem


def test_unreadable_row_is_reported_not_raised(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's json type refuses invalid JSON at the UPDATE already")
    fill(engine, 20)
    raw(engine, "UPDATE central_audit SET after = '{not json' WHERE id = 13")
    result = check(engine)
    assert (result.ok, result.rows, result.first_bad) == (False, 12, 13)
    assert result.problem.startswith("unreadable row"), result.problem


@pytest.mark.parametrize("stmt", ["UPDATE central_audit SET actor = 'user:mallory' WHERE id = 2",
                                  "UPDATE central_audit SET hash = hash",
                                  "DELETE FROM central_audit WHERE id = 3",
                                  "DELETE FROM central_audit"])
def test_triggers_refuse_update_and_delete(engine, stmt):
    fill(engine, 5)
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text(stmt))
    assert check(engine) == audit.VerifyResult(True, 5, None, None)


def test_truncate_refused_on_postgresql(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE (DELETE without WHERE is refused above)")
    fill(engine, 3)
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE central_audit"))


def test_two_writers_at_once_never_fork_the_chain(engine):
    per_writer, errors = 60, []
    start = threading.Barrier(2)

    def writer(name):
        try:
            start.wait()
            with Session(engine) as s:
                for i in range(per_writer):
                    audit.append(s, f"sensor:{name}", "ingest.apply", f"seq:{i}", after={"i": i})
                    s.commit()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert check(engine) == audit.VerifyResult(True, 2 * per_writer, None, None)
    with Session(engine) as s:
        actors = [a for (a,) in s.query(audit.AuditRow.actor).order_by(audit.AuditRow.id)]
    assert sorted(set(actors)) == ["sensor:a", "sensor:b"] and len(actors) == 2 * per_writer


def test_append_refuses_what_json_cannot_hold(engine):
    with Session(engine) as s:
        with pytest.raises(ValueError):
            audit.append(s, "cli", "x", "y", after={"v": float("nan")})
        with pytest.raises(TypeError):
            audit.append(s, "cli", "x", "y", after={"t": T0})


def test_events_map_rows_to_siem_audit_events(engine):
    fill(engine, 12)
    with Session(engine) as s:
        audit.append(s, "anonymous@192.0.2.7", "enrol.refused", "token:abc")
        s.commit()
        first = audit.events(s, 0, limit=5)
        rest = audit.events(s, 5)
        again = audit.events(s, 0)
    assert [e.seq for e in first] == [1, 2, 3, 4, 5] and [e.seq for e in rest] == list(range(6, 14))
    assert all(isinstance(e, Event) and e.kind == "audit" for e in first + rest)
    assert [e.id for e in again] == [e.id for e in first + rest]           # exported twice: same ids
    assert len({e.id for e in again}) == 13
    e = first[2]
    assert e.time == (T0 + timedelta(seconds=2)).timestamp()
    assert e.action == "alert.acknowledge" and e.key == "alert.acknowledge|alert:2"
    assert e.id == event_id("audit", e.key, 3) and e.severity == "info"
    with Session(engine) as s:
        assert s.get(audit.AuditRow, 3).hash in e.message and "user:u2" in e.message
    refused = rest[-1]
    assert refused.severity == "medium" and "anonymous@192.0.2.7" in refused.message
    doc = ecs.document(refused)                                          # a SIEM format renders it
    assert doc["event"]["action"] == "enrol.refused" and doc["event"]["sequence"] == 13
