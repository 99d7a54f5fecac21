"""Applying a sensor's envelopes: effect-once on top of at-least-once delivery, in order per sensor.

A batch is applied in one transaction that first locks the sensor's row, so two deliveries of the
same batch (a retry racing the original, two ingest workers) serialise: the second finds the seq
already applied and counts it as a duplicate. An envelope is applied only when its seq is the
sensor's next one; a seq beyond it stops the batch (the sender resends from `next_seq`), a seq at or
below it is a duplicate. (sensor_id, seq) is also a unique key of central_envelopes, so even a
bug in this order check could not apply one envelope twice.

Items a sensor sends are validated with the JSON report contract's own models; an item that does
not validate is skipped and counted in the sensor's health (`rejected_items`) rather than blocking
the sensor's outbox forever."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from plantguard import contract
from plantguard.server import tables as t
from plantguard.store.db import begin_write

MAX_ITEMS = 100_000          # items per envelope; a larger body is cut and the rest counted as rejected


class IngestRefused(Exception):
    """The whole batch is refused: status is the HTTP status, detail one line."""

    def __init__(self, status: int, detail: str, next_seq: int | None = None):
        super().__init__(detail)
        self.status, self.detail, self.next_seq = status, detail, next_seq


@dataclasses.dataclass
class Applied:
    applied: list[int]
    duplicates: list[int]
    next_seq: int
    gap: bool = False            # the batch went beyond next_seq: resend from there


def site_named(session: Session, name: str) -> t.Site:
    site = session.scalar(select(t.Site).where(t.Site.name == name))
    if site is None:
        site = t.Site(name=name)
        session.add(site)
        session.flush()
    return site


def apply_batch(session: Session, sensor_id: str, envelopes: list, *, received_at: datetime | None = None) -> Applied:
    """Apply envelopes (central.envelope.Envelope) from the sensor sensor_id; commits."""
    from plantguard.central.envelope import version_verdict
    received_at = received_at or datetime.now(timezone.utc)
    if session.get_bind().dialect.name == "sqlite":
        begin_write(session)      # PostgreSQL: the sensor's row lock below is enough, sensors apply in parallel
    sensor = session.scalar(select(t.Sensor).where(t.Sensor.id == sensor_id).with_for_update())
    if sensor is None or sensor.revoked_at is not None:
        raise IngestRefused(403, f"sensor {sensor_id} is not enrolled or was revoked")
    site = session.get(t.Site, sensor.site_id)
    applied: list[int] = []
    duplicates: list[int] = []
    gap = False
    rejected = 0
    for env in envelopes:
        if env.sensor_id != sensor_id:
            raise IngestRefused(403, f"envelope {env.seq} names sensor {env.sensor_id}, but sensor {sensor_id} sent it")
        verdict = version_verdict(env.schema_version)
        if verdict == "too-old":
            raise IngestRefused(426, f"envelope schema {env.schema_version} is too old for this server; "
                                     f"upgrade plantguard on sensor {sensor.name}", sensor.last_seq + 1)
        if verdict == "newer":
            raise IngestRefused(426, f"envelope schema {env.schema_version} is newer than this server "
                                     f"understands; upgrade the central server", sensor.last_seq + 1)
        if env.site != site.name:
            raise IngestRefused(403, f"sensor {sensor.name} is enrolled for site {site.name!r}, "
                                     f"not {env.site!r}")
        if env.seq <= sensor.last_seq:
            duplicates.append(env.seq)
            continue
        if env.seq != sensor.last_seq + 1:
            gap = True
            break
        items, bad = _apply(session, site, sensor, env, received_at)
        rejected += bad
        session.add(t.Envelope(sensor_id=sensor_id, seq=env.seq, kind=env.kind, schema_version=env.schema_version,
                               captured_at=_utc(env.captured_at), sent_at=_utc(env.sent_at),
                               received_at=received_at, items=items))
        sensor.last_seq = env.seq
        sensor.schema_version = env.schema_version
        applied.append(env.seq)
        if env.sent_at is not None:
            sensor.clock_skew_s = round((_utc(env.sent_at) - received_at).total_seconds(), 3)
    sensor.last_seen_at = received_at
    if rejected:
        health = dict(sensor.health or {})
        health["rejected_items"] = int(health.get("rejected_items", 0)) + rejected
        sensor.health = health
    session.commit()
    return Applied(applied, duplicates, sensor.last_seq + 1, gap)


# ------------------------------------------------------------------------------ per kind
def _apply(session: Session, site: t.Site, sensor: t.Sensor, env, received_at: datetime) -> tuple[int, int]:
    """(items applied, items rejected) of one envelope."""
    body = scrub(env.body) if isinstance(env.body, dict) else {}
    at = _utc(env.captured_at)
    return _KIND[env.kind](session, site, sensor, env.seq, at, body)


def _run(session, site, sensor, seq, at, body) -> tuple[int, int]:
    report = body.get("report") if isinstance(body.get("report"), dict) else {}
    changes = report.get("plc_changes")
    if isinstance(changes, list) and changes:
        from plantguard.server.plc_changes import alert_rows
        fresh = alert_rows(session, site, sensor, seq, at, changes)
        known = set(session.scalars(select(t.Alert.event_id).where(
            t.Alert.site_id == site.id, t.Alert.event_id.in_([a.event_id for a in fresh])))) if fresh else set()
        session.add_all([a for a in fresh if a.event_id not in known])
    session.add(t.Run(site_id=site.id, sensor_id=sensor.id, seq=seq, run_ref=str(body.get("run_id", ""))[:80],
                      kind=str(body.get("kind", "assess"))[:20], captured_at=at,
                      packets=_int(body.get("packets")), captures=_list(body.get("captures")),
                      summary=body.get("summary") if isinstance(body.get("summary"), dict) else {},
                      report=body.get("report") if isinstance(body.get("report"), dict) else {}))
    return 1, 0


def _inventory(session, site, sensor, seq, at, body) -> tuple[int, int]:
    good, bad = _valid(contract.Asset, body.get("assets"))
    keys = [r.get("ip") or r.get("mac") for r in good]
    existing = _rows_by_key(session, t.Asset, site.id, [k for k in keys if k])
    for record, key in zip(good, keys):
        if not key:
            bad += 1
            continue
        row = existing.get(key)
        if row is None:
            row = existing[key] = t.Asset(site_id=site.id, key=key, first_seen_at=at, last_seen_at=at,
                                          sensor_id=sensor.id, data={})
            session.add(row)
            session.flush()
            change, before = "new", None
        else:
            change, before = ("changed" if row.data != record else "seen"), row.data
            if row.gone_at is not None:
                change = "new"
        _fill_asset(row, record, sensor.id, at)
        if change != "seen":
            session.add(t.AssetChange(asset_id=row.id, sensor_id=sensor.id, seq=seq, change=change,
                                      captured_at=at, before=before, after=record))
    for key in _list(body.get("gone")):
        row = session.scalar(select(t.Asset).where(t.Asset.site_id == site.id, t.Asset.key == str(key)))
        if row is None or row.gone_at is not None:
            continue
        row.gone_at = at
        session.add(t.AssetChange(asset_id=row.id, sensor_id=sensor.id, seq=seq, change="gone",
                                  captured_at=at, before=row.data, after=None))
    return len(good), bad


def _fill_asset(row: t.Asset, record: dict, sensor_id: str, at: datetime) -> None:
    row.ip, row.mac = record.get("ip"), record.get("mac")
    row.vendor, row.role, row.zone = record.get("vendor"), record.get("role") or "unknown", record.get("zone")
    row.protocols = " " + " ".join(str(p) for p in record.get("protocols") or []) + " "
    identity = record.get("identity") if isinstance(record.get("identity"), dict) else {}
    row.product = _text(identity.get("product"))
    row.firmware = _text(identity.get("firmware"))
    row.data, row.sensor_id, row.gone_at = record, sensor_id, None
    row.last_seen_at = max(_utc(row.last_seen_at), at) if row.last_seen_at else at


def _findings(session, site, sensor, seq, at, body) -> tuple[int, int]:
    good, bad = _valid(contract.Finding, body.get("findings"))
    run_ref = str(body.get("run_id", ""))
    run = session.scalar(select(t.Run).where(t.Run.sensor_id == sensor.id, t.Run.run_ref == run_ref)
                         .order_by(t.Run.id.desc()).limit(1)) if run_ref else None
    for f in good:
        session.add(t.Finding(site_id=site.id, run_id=run.id if run else None, sensor_id=sensor.id, seq=seq,
                              check_id=f["check"], status=f["status"], suppressed=bool(f.get("suppressed")),
                              severity=f["severity"], title=f["title"],
                              assets=" " + " ".join(f.get("assets") or []) + " ", data=f, captured_at=at))
    return len(good), bad


def _alerts(session, site, sensor, seq, at, body) -> tuple[int, int]:
    from plantguard.siem.events import event_id
    fresh: dict[str, dict] = {}
    bad = 0
    for a in _list(body.get("alerts"))[:MAX_ITEMS]:
        if not isinstance(a, dict) or not isinstance(a.get("message"), str):
            bad += 1
            continue
        eid = str(a.get("id") or event_id(str(a.get("kind", "alert")), str(a.get("key", "")), _int(a.get("seq"))))[:64]
        fresh.setdefault(eid, a)
    known = set()
    ids = list(fresh)
    for i in range(0, len(ids), 500):        # the same event delivered again under another envelope is one alert
        known.update(session.scalars(select(t.Alert.event_id).where(t.Alert.site_id == site.id,
                                                                    t.Alert.event_id.in_(ids[i:i + 500]))))
    rows = []
    now = datetime.now(timezone.utc)
    for eid, a in fresh.items():
        if eid in known:
            continue
        rule = a.get("rule") if isinstance(a.get("rule"), dict) else {}
        when = a.get("time")
        try:
            raised = datetime.fromtimestamp(float(when), timezone.utc) if isinstance(when, (int, float)) else at
        except (OverflowError, OSError, ValueError):
            raised = at
        severity = a.get("severity") if a.get("severity") in _SEVERITIES else "info"
        rows.append({"site_id": site.id, "sensor_id": sensor.id, "seq": seq, "event_id": eid, "at": raised,
                     "received_at": now, "severity": severity, "state": "open",
                     "rule_id": str(rule.get("id"))[:80] if rule.get("id") else None,
                     "message": a["message"][:4000], "data": a})
    if rows:            # one multi-row INSERT: alerts are the bulk of what sensors send
        session.execute(insert(t.Alert), rows)
    return len(rows), bad + max(0, len(_list(body.get("alerts"))) - MAX_ITEMS)


def _flows(session, site, sensor, seq, at, body) -> tuple[int, int]:
    good, bad = _valid(contract.Flow, body.get("flows"))
    # the contract lists one flow per connection: the same five-tuple at another time is another flow
    keys = [f"{f['src']} {f['dst']} {f['proto']} {f.get('port')} {f.get('vlan')} {f.get('first')}"[:200] for f in good]
    existing = _rows_by_key(session, t.Flow, site.id, keys)
    for f, key in zip(good, keys):
        row = existing.get(key)
        if row is None:
            row = existing[key] = t.Flow(site_id=site.id, key=key, src=f["src"], dst=f["dst"], proto=f["proto"], port=f.get("port"))
            session.add(row)
        row.app, row.packets, row.bytes = f.get("app"), f["packets"], f["bytes"]
        row.data, row.sensor_id, row.last_captured_at = f, sensor.id, at
    return len(good), bad


def _baseline(session, site, sensor, seq, at, body) -> tuple[int, int]:
    data = body.get("baseline") if isinstance(body.get("baseline"), dict) else {}
    session.add(t.Baseline(site_id=site.id, sensor_id=sensor.id, seq=seq, captured_at=at, data=data))
    return 1, 0


def _health(session, site, sensor, seq, at, body) -> tuple[int, int]:
    session.add(t.Health(sensor_id=sensor.id, seq=seq, captured_at=at, data=body))
    sensor.health = {**{k: v for k, v in (sensor.health or {}).items() if k == "rejected_items"}, **body,
                     "captured_at": at.isoformat()}
    if isinstance(body.get("version"), str):
        sensor.version = body["version"][:40]
    return 1, 0


_KIND = {"run": _run, "inventory": _inventory, "findings": _findings, "alerts": _alerts, "flows": _flows,
         "baseline": _baseline, "health": _health}
_SEVERITIES = ("info", "low", "medium", "high", "critical")


# ------------------------------------------------------------------------------ helpers
NUL = "\x00"
NUL_SHOWN = "\u2400"          # ␀: PostgreSQL text and JSON cannot hold NUL, a device's text may


def scrub(v: Any) -> Any:
    """The body with every NUL character in its texts (keys too) shown as ␀, so a device that put
    NULs in a name cannot make its sensor's envelopes unstorable (and its outbox stuck)."""
    if isinstance(v, str):
        return v.replace(NUL, NUL_SHOWN) if NUL in v else v
    if isinstance(v, dict):
        return {scrub(k): scrub(x) for k, x in v.items()}
    if isinstance(v, list):
        return [scrub(x) for x in v]
    return v


def _rows_by_key(session: Session, model, site_id: int, keys: list[str]) -> dict:
    out = {}
    unique = list(dict.fromkeys(keys))
    for i in range(0, len(unique), 500):
        for row in session.scalars(select(model).where(model.site_id == site_id, model.key.in_(unique[i:i + 500]))):
            out[row.key] = row
    return out


def _valid(model, items: Any) -> tuple[list[dict], int]:
    """The items that validate against a contract model (as the model dumps them), and how many did not."""
    good: list[dict] = []
    bad = 0
    for item in _list(items)[:MAX_ITEMS]:
        try:
            good.append(model.model_validate(item).model_dump(mode="json", exclude_none=False))
        except ValidationError:
            bad += 1
    return good, bad + max(0, len(_list(items)) - MAX_ITEMS)


def _text(v: Any, limit: int = 200) -> str | None:
    return str(v)[:limit] if v not in (None, "") else None


def _list(v: Any) -> list:
    return v if isinstance(v, list) else []


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _utc(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)
