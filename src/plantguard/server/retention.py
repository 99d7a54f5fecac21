"""Time partitions and retention of the central store.

On PostgreSQL `central_alerts` is partitioned by month of `at` (declarative RANGE partitioning):
`ensure_partitions` gives every month that holds alerts, and the next ones, a partition of its own.
Rows that arrived in the DEFAULT partition first (a month without a partition yet, or a sensor
replaying captures from years ago) are moved into the new partition in the same transaction, as
PostgreSQL refuses a partition whose range the default partition already holds. `prune` then ends
whole months by dropping their partitions, which costs nothing however many alerts they hold,
and deletes the rest of what is older than the cutoff (in SQLite: everything, row by row).

Envelope rows, health reports and sensor-side history older than the cutoff go too; a sensor's
last applied seq lives on its own row, so effect-once holds after the envelope rows are gone."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, text
from sqlalchemy.engine import Engine

from plantguard.server import audit
from plantguard.server import tables as t
from plantguard.store.db import begin_write, session_factory

ALERTS = "central_alerts"
DEFAULT_PARTITION = "central_alerts_default"
MONTHS_AHEAD = 2


def _month(d: datetime) -> datetime:
    return datetime(d.year, d.month, 1, tzinfo=timezone.utc)


def _next(d: datetime) -> datetime:
    return datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=timezone.utc)


def partition_name(month: datetime) -> str:
    return f"{ALERTS}_p{month:%Y%m}"


def partitions(engine: Engine) -> dict[str, tuple[datetime, datetime] | None]:
    """name -> (from, to) of the alert table's partitions (None for the default one); {} off PostgreSQL."""
    if engine.dialect.name != "postgresql":
        return {}
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'central_alerts'::regclass")).all()
    out: dict[str, tuple[datetime, datetime] | None] = {}
    for name, bound in rows:
        if name == DEFAULT_PARTITION:
            out[name] = None
        else:
            month = datetime.strptime(name.rsplit("_p", 1)[1], "%Y%m").replace(tzinfo=timezone.utc)
            out[name] = (month, _next(month))
    return out


def ensure_partitions(engine: Engine, now: datetime | None = None, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the missing monthly partitions (months with alerts in the default partition, this
    month and the next ones); the names created."""
    if engine.dialect.name != "postgresql":
        return []
    now = now or datetime.now(timezone.utc)
    have = partitions(engine)
    with engine.connect() as conn:
        stray = [r[0] for r in conn.execute(text(
            f"SELECT DISTINCT date_trunc('month', at AT TIME ZONE 'UTC') FROM {DEFAULT_PARTITION}"))]
    months = {_month(m.replace(tzinfo=timezone.utc)) for m in stray}
    m = _month(now)
    for _ in range(months_ahead + 1):
        months.add(m)
        m = _next(m)
    made = []
    for month in sorted(months):
        name = partition_name(month)
        if name in have:
            continue
        lo, hi = month.isoformat(), _next(month).isoformat()
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(7263001)"))     # one maintainer at a time
            conn.execute(text(f'CREATE TABLE "{name}" (LIKE {ALERTS} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'))
            conn.execute(text(f'WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE at >= :lo AND at < :hi '
                              f'RETURNING *) INSERT INTO "{name}" SELECT * FROM moved'), {"lo": lo, "hi": hi})
            conn.execute(text(f"ALTER TABLE {ALERTS} ATTACH PARTITION \"{name}\" FOR VALUES FROM ('{lo}') TO ('{hi}')"))
        made.append(name)
    return made


@dataclasses.dataclass
class Pruned:
    partitions_dropped: list[str]
    alerts: int              # rows deleted (besides the dropped partitions)
    envelopes: int
    health: int
    history: int


def prune(engine: Engine, keep: timedelta, *, actor: str = "cli", now: datetime | None = None) -> Pruned:
    """Remove what is older than `keep` (alerts by when they were raised, the rest by receive or
    capture time); audited."""
    now = now or datetime.now(timezone.utc)
    cutoff = now - keep
    dropped = []
    for name, bounds in partitions(engine).items():
        if bounds is not None and bounds[1] <= cutoff:
            with engine.begin() as conn:
                conn.execute(text(f'ALTER TABLE {ALERTS} DETACH PARTITION "{name}"'))
                conn.execute(text(f'DROP TABLE "{name}"'))
            dropped.append(name)
    with session_factory(engine)() as s:
        begin_write(s)
        alerts = s.execute(delete(t.Alert).where(t.Alert.at < cutoff)).rowcount
        envelopes = s.execute(delete(t.Envelope).where(t.Envelope.received_at < cutoff)).rowcount
        health = s.execute(delete(t.Health).where(t.Health.received_at < cutoff)).rowcount
        history = s.execute(delete(t.AssetChange).where(t.AssetChange.captured_at < cutoff)).rowcount
        result = Pruned(sorted(dropped), alerts, envelopes, health, history)
        audit.append(s, actor, "retention.prune", f"older than {cutoff.isoformat()}",
                     after=dataclasses.asdict(result))
        s.commit()
    return result
