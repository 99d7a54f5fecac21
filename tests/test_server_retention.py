"""Alert partitions and retention, on SQLite and PostgreSQL: every month with alerts gets its own
partition (rows that landed in the default partition first are moved), new alerts are routed to
their month, and pruning drops whole old months and deletes the older rest; audited."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, text

from plantguard.central.envelope import SCHEMA_VERSION, Envelope
from plantguard.server import audit, retention
from plantguard.server import tables as t
from plantguard.server.ingest import apply_batch
from plantguard.store.db import open_engine, session_factory


def alerts_env(seq: int, *times: datetime) -> Envelope:
    return Envelope(sensor_id="s-1", seq=seq, schema_version=SCHEMA_VERSION, kind="alerts", site="Plant A",
                    captured_at=times[0], body={"alerts": [{"id": f"e{seq}-{i}", "message": "write", "severity": "high",
                                                            "time": at.timestamp()} for i, at in enumerate(times)]})


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


def test_partitions_and_pruning(store_url):
    engine = open_engine(store_url)
    sessions = session_factory(engine)
    with sessions() as s:
        site = t.Site(name="Plant A")
        s.add(site)
        s.flush()
        s.add(t.Sensor(id="s-1", name="line-1", site_id=site.id, health={}))
        s.commit()
    with sessions() as s:
        apply_batch(s, "s-1", [alerts_env(1, utc(2024, 1, 5), utc(2024, 1, 20), utc(2024, 2, 10), utc(2024, 2, 20))])
    made = retention.ensure_partitions(engine, now=utc(2024, 2, 25))
    pg = engine.dialect.name == "postgresql"
    if pg:
        assert made == ["central_alerts_p202401", "central_alerts_p202402", "central_alerts_p202403",
                        "central_alerts_p202404"]
        with sessions() as s:
            apply_batch(s, "s-1", [alerts_env(2, utc(2024, 1, 25))])        # routed to its month's partition
        with engine.connect() as conn:
            where = dict(conn.execute(text("SELECT tableoid::regclass::text, count(*) FROM central_alerts "
                                           "GROUP BY 1")).all())
        assert where == {"central_alerts_p202401": 3, "central_alerts_p202402": 2}
        assert retention.ensure_partitions(engine, now=utc(2024, 2, 25)) == []
    else:
        assert made == [] and retention.partitions(engine) == {}
        with sessions() as s:
            apply_batch(s, "s-1", [alerts_env(2, utc(2024, 1, 25))])
    done = retention.prune(engine, timedelta(days=30), now=utc(2024, 3, 15))      # cutoff 2024-02-14
    with sessions() as s:
        left = sorted(a.at.replace(tzinfo=timezone.utc) for a in s.scalars(select(t.Alert)))
        assert s.scalar(select(func.count()).select_from(t.Alert)) == 1
        assert audit.verify(s).ok
        last = s.scalars(select(audit.AuditRow).order_by(audit.AuditRow.id.desc())).first()
    assert left == [utc(2024, 2, 20)]
    if pg:
        assert done.partitions_dropped == ["central_alerts_p202401"] and done.alerts == 1
        assert "central_alerts_p202401" not in retention.partitions(engine)
    else:
        assert done.partitions_dropped == [] and done.alerts == 4
    assert last.action == "retention.prune" and last.after["partitions_dropped"] == done.partitions_dropped
    engine.dispose()
