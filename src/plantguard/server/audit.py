"""The central audit log: append-only and hash-chained. Each row's hash is
sha256(prev_hash + canonical JSON of {id, at, actor, action, object, before, after}) in hex, where
canonical JSON is json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True,
allow_nan=False) and `at` is ISO-8601 in UTC with microseconds ("2026-01-02T03:04:05.000006+00:00");
the first row's prev_hash is 64 zeros. Editing, deleting or inserting a row in the middle breaks
the chain at that row; cutting rows off the end does not, so export the chain (events()) to a SIEM,
whose copy is the anchor.

Appends are serialised (PostgreSQL: a transaction advisory lock; SQLite: BEGIN IMMEDIATE) so two
writers never fork the chain; the id is the primary key, so a fork could not commit anyway. The
database refuses UPDATE and DELETE by triggers (APPEND_ONLY_DDL); an owner of the table can still
drop them, so the server's own database role should not own it."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from plantguard.store.db import Base, begin_write

if TYPE_CHECKING:
    from plantguard.siem.events import Event

GENESIS = "0" * 64
LOCK_KEY = 0x7067_6175_6469_74         # "pgaudit": the audit chain's pg_advisory_xact_lock key
VERIFY_BATCH = 1000
EVENTS_LIMIT = 1000
OBSERVER = "plantguard-server"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class AuditRow(Base):
    __tablename__ = "central_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))      # token:<id> user:<name> sensor:<id> cli anonymous@<ip>
    action: Mapped[str] = mapped_column(String(100))     # alert.acknowledge, token.create, enrol.refused...
    object: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


APPEND_ONLY_DDL: dict[str, list[str]] = {
    "sqlite": [
        "CREATE TRIGGER central_audit_no_update BEFORE UPDATE ON central_audit "
        "BEGIN SELECT RAISE(ABORT, 'central_audit is append-only: UPDATE refused'); END",
        "CREATE TRIGGER central_audit_no_delete BEFORE DELETE ON central_audit "
        "BEGIN SELECT RAISE(ABORT, 'central_audit is append-only: DELETE refused'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION central_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION USING MESSAGE = 'central_audit is append-only: ' || TG_OP || ' refused'; END $$",
        "CREATE TRIGGER central_audit_no_change BEFORE UPDATE OR DELETE ON central_audit "
        "FOR EACH ROW EXECUTE FUNCTION central_audit_append_only()",
        "CREATE TRIGGER central_audit_no_truncate BEFORE TRUNCATE ON central_audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION central_audit_append_only()",
    ],
}


def install_append_only(connection) -> None:
    """Create the triggers of the connection's dialect (what the migration does)."""
    for stmt in APPEND_ONLY_DDL[connection.dialect.name]:
        connection.exec_driver_sql(stmt)


# -- the chain ----------------------------------------------------------------------------------

def iso(at: datetime) -> str:
    """`at` as the chain hashes it: UTC, microseconds (SQLite hands back naive UTC times)."""
    at = at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)
    return at.isoformat(timespec="microseconds")


def _dumps(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def row_hash(prev_hash: str, id: int, at: datetime, actor: str, action: str, object: str,
             before, after) -> str:
    body = _dumps({"id": id, "at": iso(at), "actor": actor, "action": action, "object": object,
                   "before": before, "after": after})
    return hashlib.sha256((prev_hash + body).encode("ascii")).hexdigest()


def _lock(session: Session) -> None:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    else:
        begin_write(session)


def append(session: Session, actor: str, action: str, object: str, before=None, after=None, *,
           now: datetime | None = None) -> AuditRow:
    """Add the next row of the chain (flushed, not committed: the caller commits it with the
    change it records). Call it before other reads of the transaction on SQLite, so the write
    lock is taken first. before/after must be JSON-safe (ValueError otherwise)."""
    # what is stored is exactly what was hashed (tuples become lists, keys strings)
    before, after = (None if v is None else json.loads(_dumps(v)) for v in (before, after))
    _lock(session)
    last = session.execute(select(AuditRow.id, AuditRow.hash).order_by(AuditRow.id.desc()).limit(1)).first()
    id, prev = (last.id + 1, last.hash) if last else (1, GENESIS)
    at = now or _now()
    row = AuditRow(id=id, at=at, actor=actor, action=action, object=object, before=before, after=after,
                   prev_hash=prev, hash=row_hash(prev, id, at, actor, action, object, before, after))
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int                  # rows that verified before the first bad one (all of them when ok)
    first_bad: int | None      # id of the first row that does not verify
    problem: str | None        # what is wrong there, in words


def verify(session: Session, *, batch: int = VERIFY_BATCH) -> VerifyResult:
    """Walk the chain in id order, in batches (bounded memory); stop at the first bad row."""
    good, prev_id, prev_hash = 0, 0, GENESIS
    while True:
        rows = _batch(session, prev_id, batch)
        if not rows:
            return VerifyResult(True, good, None, None)
        for row in rows:
            if isinstance(row, tuple):                       # (id, why) of a row that cannot be read
                return VerifyResult(False, good, row[0], f"unreadable row: {row[1]}")
            problem = _check(row, prev_id, prev_hash)
            if problem:
                return VerifyResult(False, good, row.id, problem)
            good, prev_id, prev_hash = good + 1, row.id, row.hash


def _check(row: AuditRow, prev_id: int, prev_hash: str) -> str | None:
    if row.id != prev_id + 1:
        after = f"follows row {prev_id}" if prev_id else "is the first row"
        return f"gap in ids: row {row.id} {after} (rows {prev_id + 1}..{row.id - 1} are missing)"
    if row.prev_hash != prev_hash:
        return (f"broken link: row {row.id}'s prev_hash is not " +
                (f"row {prev_id}'s hash" if prev_id else "the genesis value (64 zeros)"))
    try:
        expected = row_hash(row.prev_hash, row.id, row.at, row.actor, row.action, row.object,
                            row.before, row.after)
    except (TypeError, ValueError, AttributeError) as exc:
        return f"unreadable row: {exc}"
    if row.hash != expected:
        return f"hash mismatch: row {row.id}'s contents do not hash to its stored hash"
    return None


def _batch(session: Session, after_id: int, n: int) -> list:
    """The next rows after `after_id`; a row the database cannot hand back as an AuditRow (its
    JSON or time edited into nonsense) comes back as (id, reason) instead of ending verify()."""
    q = select(AuditRow).where(AuditRow.id > after_id).order_by(AuditRow.id).limit(n)
    try:
        return list(session.execute(q).scalars())
    except (TypeError, ValueError):
        session.rollback()
    ids = list(session.execute(select(AuditRow.id).where(AuditRow.id > after_id).order_by(AuditRow.id).limit(n)).scalars())
    out = []
    for id in ids:
        try:
            out.append(session.execute(select(AuditRow).where(AuditRow.id == id)).scalar_one())
        except (TypeError, ValueError) as exc:
            session.rollback()
            out.append((id, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
            break
    return out


# -- SIEM export --------------------------------------------------------------------------------

def events(session: Session, since_id: int = 0, *, limit: int = EVENTS_LIMIT) -> list[Event]:
    """Audit rows after `since_id` (at most `limit`, in id order) as SIEM audit events. The
    event's seq is the row id, so a row exported twice has the same event id; the message carries
    the row's hash, so the SIEM's copy anchors the chain."""
    from plantguard.siem.events import default_observer   # the store imports this module: keep it light
    rows = session.execute(select(AuditRow).where(AuditRow.id > since_id).order_by(AuditRow.id)
                           .limit(limit)).scalars()
    obs = default_observer(OBSERVER)
    return [_event(r, obs) for r in rows]


def _event(r: AuditRow, obs) -> Event:
    from plantguard.siem.events import Event
    at = r.at.replace(tzinfo=timezone.utc) if r.at.tzinfo is None else r.at
    refused = r.action.endswith((".refused", ".denied", ".failed"))
    return Event("audit", f"{r.action}|{r.object}", at.timestamp(),
                 f"{r.actor} {r.action} {r.object} (audit row {r.id}, hash {r.hash})",
                 "medium" if refused else "info", seq=r.id, observer=obs, action=r.action)
