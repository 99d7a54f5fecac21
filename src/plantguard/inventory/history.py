"""Successive runs accumulate in the store; each run is compared with the previous one of the same
site to say which assets are new, changed (role, vendor, identity, services, MAC) or gone."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import Engine

from plantguard.inventory.asset import Asset
from plantguard.store.db import begin_write, session_factory
from plantguard.store.inventory_tables import AssetRow, AssetSnapshot, Run

FINGERPRINT_KEYS = ("mac", "vendor", "role", "identity", "services")


@dataclass
class Changes:
    run_id: int
    previous_run_id: int | None
    new: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)   # key -> changed fields
    gone: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"run": self.run_id, "previous_run": self.previous_run_id, "new": self.new,
                "changed": self.changed, "gone": self.gone}


def fingerprint(asset_dict: dict) -> dict:
    ident = {k: v for k, v in (asset_dict.get("identity") or {}).items() if k != "sources"}
    fp = {k: asset_dict.get(k) for k in FINGERPRINT_KEYS}
    fp["identity"] = ident
    fp["services"] = sorted(f"{s['proto']}/{s['port']}" for s in asset_dict.get("services") or [])
    return fp


def record_run(engine: Engine, assets: list[Asset], kind: str, captures: list[dict],
               site: str | None = None) -> Changes:
    """Store this run's assets and return what changed since the previous run of the site.
    Concurrent runs are serialised (the write lock is taken before the previous run is looked
    up), so each is compared with the one stored just before it. StoreError when the store
    cannot be written."""
    site_key = site or ""
    Session = session_factory(engine)
    with Session.begin() as s:
        begin_write(s)
        prev = s.execute(select(Run.id).where(Run.site == site_key).order_by(Run.id.desc()).limit(1)).scalar()
        run = Run(kind=kind, site=site_key, captures=captures,
                  packets=sum(int(c.get("packets") or 0) for c in captures))
        s.add(run)
        s.flush()
        previous: dict[str, dict] = {}
        if prev is not None:
            for key, fp in s.execute(select(AssetSnapshot.key, AssetSnapshot.fingerprint)
                                     .where(AssetSnapshot.run_id == prev)):
                previous[key] = json.loads(fp)
        changes = Changes(run.id, prev)
        existing = {r.key: r for r in s.execute(select(AssetRow).where(AssetRow.site == site_key)).scalars()}
        current = set()
        for a in assets:
            d = a.as_dict()
            fp = fingerprint(d)
            current.add(a.key)
            s.add(AssetSnapshot(run_id=run.id, key=a.key, fingerprint=json.dumps(fp, sort_keys=True, default=str)))
            if prev is not None:
                old = previous.get(a.key)
                if old is None:
                    changes.new.append(a.key)
                else:
                    diff = [k for k in fp if _norm(fp[k]) != _norm(old.get(k))]
                    if diff:
                        changes.changed[a.key] = diff
            row = existing.get(a.key)
            if row is None:
                row = AssetRow(site=site_key, key=a.key, first_run=run.id, last_run=run.id,
                               first_seen=a.first_seen)
                s.add(row)
            row.ip, row.mac, row.vendor, row.role, row.zone = a.ip, a.mac, a.vendor, a.role, a.zone
            row.data = json.loads(json.dumps(d, default=str))
            if a.first_seen is not None and (row.first_seen is None or a.first_seen < row.first_seen):
                row.first_seen = a.first_seen
            if a.last_seen is not None and (row.last_seen is None or a.last_seen > row.last_seen):
                row.last_seen = a.last_seen
            row.last_run = run.id
        if prev is not None:
            changes.gone = sorted(k for k in previous if k not in current)
    return changes


def _norm(v):
    return json.loads(json.dumps(v, sort_keys=True, default=str))


def accumulated_assets(engine: Engine, site: str | None = None) -> list[dict]:
    """Every asset ever seen for the site, newest data per asset."""
    Session = session_factory(engine)
    with Session() as s:
        rows = s.execute(select(AssetRow).where(AssetRow.site == (site or "")).order_by(AssetRow.key)).scalars()
        return [dict(r.data, first_run=r.first_run, last_run=r.last_run) for r in rows]
