"""Read routes for what the sensors reported: sites, sensors, assets (with history), flows, runs
and baselines. Asset, flow and finding records are the JSON report contract's own models."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from plantguard import contract
from plantguard.server import tables as t
from plantguard.server.api.common import (CURSOR, LIMIT, ObjectId, Page, Principal, db, in_sites, one_in_sites,
                                          page_of, paged, requires, scoped_sites, site_rows, utc)

router = APIRouter(prefix="/api/v1")


class SiteOut(BaseModel):
    name: str
    created_at: datetime
    sensors: int
    assets: int
    open_alerts: int


class SensorOut(BaseModel):
    id: str
    name: str
    site: str
    enrolled_at: datetime
    last_seen_at: datetime | None
    last_seq: int
    version: str | None
    schema_version: str | None
    clock_skew_s: float | None
    cert_not_after: datetime | None
    revoked: bool
    health: dict[str, Any]


class AssetOut(BaseModel):
    id: int
    site: str
    key: str
    sensor: str
    first_seen_at: datetime
    last_seen_at: datetime
    received_at: datetime
    gone_at: datetime | None
    asset: contract.Asset


class AssetChangeOut(BaseModel):
    id: int
    change: str
    sensor: str
    seq: int
    captured_at: datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class FlowOut(BaseModel):
    id: int
    site: str
    sensor: str
    last_captured_at: datetime
    flow: contract.Flow


class RunOut(BaseModel):
    id: int
    site: str
    sensor: str
    kind: str
    run_ref: str
    captured_at: datetime
    received_at: datetime
    packets: int
    captures: list[Any]
    summary: dict[str, Any]


class BaselineOut(BaseModel):
    id: int
    site: str
    sensor: str
    captured_at: datetime
    accepted: bool
    accepted_by: str | None
    baseline: dict[str, Any]



@router.get("/sites", response_model=list[SiteOut], summary="Sites the caller may see")
def sites(who: Principal = Depends(requires("sites:read")), session: Session = Depends(db)):
    ids = scoped_sites(session, who, None)
    rows = session.scalars(in_sites(select(t.Site), t.Site.id, ids).order_by(t.Site.name)).all()

    def count(model, *where):
        return dict(session.execute(select(model.site_id, func.count()).where(*where).group_by(model.site_id)).all())
    sensors, assets = count(t.Sensor), count(t.Asset, t.Asset.gone_at.is_(None))
    alerts = count(t.Alert, t.Alert.state == "open")
    return [SiteOut(name=s.name, created_at=utc(s.created_at), sensors=sensors.get(s.id, 0),
                    assets=assets.get(s.id, 0), open_alerts=alerts.get(s.id, 0)) for s in rows]


@router.get("/sensors", response_model=list[SensorOut], summary="Enrolled sensors: health, lag, versions")
def sensors(site: str | None = None, who: Principal = Depends(requires("sensors:read")),
            session: Session = Depends(db)):
    ids = scoped_sites(session, who, site)
    q = in_sites(site_rows(t.Sensor), t.Sensor.site_id, ids)
    return [sensor_out(s, name) for s, name in session.execute(q.order_by(t.Sensor.name)).all()]


def sensor_out(s: t.Sensor, site: str) -> SensorOut:
    return SensorOut(id=s.id, name=s.name, site=site, enrolled_at=utc(s.enrolled_at), last_seen_at=utc(s.last_seen_at),
                     last_seq=s.last_seq, version=s.version, schema_version=s.schema_version,
                     clock_skew_s=s.clock_skew_s, cert_not_after=utc(s.cert_not_after),
                     revoked=s.revoked_at is not None, health=s.health or {})


@router.get("/assets", response_model=Page[AssetOut], summary="Assets, filtered and paged")
def assets(site: str | None = None, zone: str | None = None, role: str | None = None,
           vendor: str | None = Query(None, description="vendor name contains this (any case)"),
           protocol: str | None = None,
           firmware: str | None = Query(None, max_length=200, description="firmware version contains this (any case)"),
           q: str | None = Query(None, description="address, vendor or product contains this (any case)"),
           new_since: datetime | None = Query(None, description="first reported at or after this time"),
           since: datetime | None = Query(None, description="last reported at or after this time"),
           include_gone: bool = False, limit: int = LIMIT, cursor: int | None = CURSOR,
           who: Principal = Depends(requires("assets:read")), session: Session = Depends(db)):
    query = asset_query(session, who, site=site, zone=zone, role=role, vendor=vendor, protocol=protocol, q=q,
                        new_since=new_since, since=since, include_gone=include_gone, firmware=firmware)
    rows = session.execute(paged(query, t.Asset.id, cursor, limit)).all()
    return page_of(rows, limit, asset_out)


def asset_query(session: Session, who: Principal, *, site=None, zone=None, role=None, vendor=None, protocol=None,
                q=None, new_since=None, since=None, include_gone=False, firmware=None):
    """(Asset, site name) rows the caller may see, filtered: the one filter of the API and the console."""
    ids = scoped_sites(session, who, site)
    query = in_sites(site_rows(t.Asset), t.Asset.site_id, ids)
    if zone:
        query = query.where(t.Asset.zone == zone)
    if role:
        query = query.where(t.Asset.role == role)
    if vendor:
        query = query.where(func.lower(t.Asset.vendor).contains(vendor.lower(), autoescape=True))
    if protocol:
        query = query.where(t.Asset.protocols.contains(f" {protocol} ", autoescape=True))
    if firmware:
        query = query.where(func.lower(func.coalesce(t.Asset.firmware, "")).contains(firmware.lower(), autoescape=True))
    if q:
        needle = q.lower()
        query = query.where(func.lower(t.Asset.key).contains(needle, autoescape=True)
                            | func.lower(func.coalesce(t.Asset.vendor, "")).contains(needle, autoescape=True)
                            | func.lower(func.coalesce(t.Asset.product, "")).contains(needle, autoescape=True))
    if new_since is not None:
        query = query.where(t.Asset.first_seen_at >= new_since)
    if since is not None:
        query = query.where(t.Asset.last_seen_at >= since)
    if not include_gone:
        query = query.where(t.Asset.gone_at.is_(None))
    return query


def asset_out(a: t.Asset, site: str) -> AssetOut:
    return AssetOut(id=a.id, site=site, key=a.key, sensor=a.sensor_id, first_seen_at=utc(a.first_seen_at),
                    last_seen_at=utc(a.last_seen_at), received_at=utc(a.received_at), gone_at=utc(a.gone_at),
                    asset=contract.Asset.model_validate(a.data))


@router.get("/assets/{asset_id}", response_model=AssetOut, summary="One asset")
def asset(asset_id: ObjectId, who: Principal = Depends(requires("assets:read")), session: Session = Depends(db)):
    return asset_out(*one_in_sites(session, who, t.Asset, asset_id, "asset"))


@router.get("/assets/{asset_id}/history", response_model=list[AssetChangeOut], summary="An asset's record over time")
def asset_history(asset_id: ObjectId, who: Principal = Depends(requires("assets:read")), session: Session = Depends(db)):
    one_in_sites(session, who, t.Asset, asset_id, "asset")
    rows = session.scalars(select(t.AssetChange).where(t.AssetChange.asset_id == asset_id)
                           .order_by(t.AssetChange.id)).all()
    return [AssetChangeOut(id=r.id, change=r.change, sensor=r.sensor_id, seq=r.seq, captured_at=utc(r.captured_at),
                           before=r.before, after=r.after) for r in rows]


@router.get("/flows", response_model=Page[FlowOut], summary="Flow summaries, filtered and paged")
def flows(site: str | None = None, protocol: str | None = Query(None, description="application protocol"),
          address: str | None = Query(None, description="source or destination"),
          port: int | None = Query(None, ge=0, le=65535), since: datetime | None = None, limit: int = LIMIT, cursor: int | None = CURSOR,
          who: Principal = Depends(requires("flows:read")), session: Session = Depends(db)):
    ids = scoped_sites(session, who, site)
    query = in_sites(site_rows(t.Flow), t.Flow.site_id, ids)
    if protocol is not None:
        query = query.where(t.Flow.app == protocol)
    if address is not None:
        query = query.where((t.Flow.src == address) | (t.Flow.dst == address))
    if port is not None:
        query = query.where(t.Flow.port == port)
    if since is not None:
        query = query.where(t.Flow.last_captured_at >= since)
    rows = session.execute(paged(query, t.Flow.id, cursor, limit)).all()
    return page_of(rows, limit, lambda f, s: FlowOut(id=f.id, site=s, sensor=f.sensor_id,
                                                     last_captured_at=utc(f.last_captured_at),
                                                     flow=contract.Flow.model_validate(f.data)))


@router.get("/runs", response_model=Page[RunOut], summary="Assessment, inventory and monitor runs")
def runs(site: str | None = None, since: datetime | None = None, limit: int = LIMIT, cursor: int | None = CURSOR,
         who: Principal = Depends(requires("runs:read")), session: Session = Depends(db)):
    ids = scoped_sites(session, who, site)
    query = in_sites(site_rows(t.Run), t.Run.site_id, ids)
    if since is not None:
        query = query.where(t.Run.captured_at >= since)
    rows = session.execute(paged(query, t.Run.id, cursor, limit)).all()
    return page_of(rows, limit, lambda r, s: RunOut(id=r.id, site=s, sensor=r.sensor_id, kind=r.kind, run_ref=r.run_ref,
                                                    captured_at=utc(r.captured_at), received_at=utc(r.received_at),
                                                    packets=r.packets, captures=r.captures or [],
                                                    summary=r.summary or {}))


@router.get("/baselines", response_model=Page[BaselineOut], summary="Baselines the sensors learnt or accepted")
def baselines(site: str | None = None, limit: int = LIMIT, cursor: int | None = CURSOR,
              who: Principal = Depends(requires("baselines:read")), session: Session = Depends(db)):
    ids = scoped_sites(session, who, site)
    query = in_sites(site_rows(t.Baseline),
                         t.Baseline.site_id, ids)
    rows = session.execute(paged(query, t.Baseline.id, cursor, limit)).all()
    return page_of(rows, limit, baseline_out)


def baseline_out(b: t.Baseline, site: str) -> BaselineOut:
    return BaselineOut(id=b.id, site=site, sensor=b.sensor_id, captured_at=utc(b.captured_at), accepted=b.accepted,
                       accepted_by=b.accepted_by, baseline=b.data or {})
