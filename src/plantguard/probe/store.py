"""The identities a probe learnt, kept in the store (store/probe_tables.py), and read back by
assess to merge into the inventory as `active` identity with its time and evidence."""
from __future__ import annotations

import calendar
import time

from plantguard.store.db import begin_write, open_engine, session_factory


def save(db: str, records: list[dict]) -> int:
    """One row per target that gave identity; returns how many."""
    from plantguard.store.probe_tables import ProbeIdentityRow
    engine = open_engine(db)
    rows = [ProbeIdentityRow(ip=r["ip"], probed_at=_posix(r["probed_at"]), identity=r["identity"],
                             sources=r["sources"], queries=r["queries"], evidence=r.get("evidence") or "")
            for r in records if r["identity"]]
    with session_factory(engine)() as s:
        begin_write(s)
        s.add_all(rows)
        s.commit()
    engine.dispose()
    return len(rows)


def latest(engine) -> dict[str, dict]:
    """{ip: {key: (value, source)}}: per device and identity key, the newest probe's value."""
    from sqlalchemy import inspect, select

    from plantguard.store.probe_tables import ProbeIdentityRow
    if not inspect(engine).has_table(ProbeIdentityRow.__tablename__):
        return {}
    out: dict[str, dict] = {}
    with session_factory(engine)() as s:
        for row in s.scalars(select(ProbeIdentityRow).order_by(ProbeIdentityRow.probed_at)):
            fields = out.setdefault(row.ip, {})
            for key, value in (row.identity or {}).items():
                src = (row.sources or {}).get(key) or {}
                fields[key] = (value, {"via": "active", "proto": src.get("proto"), "capture": row.evidence,
                                       "frame": src.get("frame"), "at": _iso(row.probed_at)})
    return out


def _posix(iso: str) -> float:
    return float(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
