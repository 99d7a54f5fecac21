"""The central server's store: sites, sensors, the envelopes they delivered, and what those
envelopes said (runs, assets with their history, findings, alerts, flows, baselines, health).

Every row that came from a sensor keeps the sensor's id and the envelope's seq, and both the
time the sensor captured it (`captured_at`) and the time the server received it, so a sensor with
a skewed clock is visible instead of silently reordering history. Credentials and the audit log
are declared beside the code that uses them (server/auth.py, server/audit.py)."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, false)
from sqlalchemy.orm import Mapped, mapped_column

from plantguard.store.db import Base


def now() -> datetime:
    return datetime.now(timezone.utc)


class Site(Base):
    __tablename__ = "central_sites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Sensor(Base):
    __tablename__ = "central_sensors"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    site_id: Mapped[int] = mapped_column(ForeignKey("central_sites.id"))
    cert_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    cert_not_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    previous_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)  # valid until first use of the new one
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    enrolled_by: Mapped[str] = mapped_column(String(80), default="")
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)                 # applied
    accepted_seq: Mapped[int] = mapped_column(Integer, default=0)             # taken into the JetStream buffer
    version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    schema_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    clock_skew_s: Mapped[float | None] = mapped_column(Float, nullable=True)    # sent_at - received_at
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    health: Mapped[dict] = mapped_column(JSON, default=dict)


class Envelope(Base):
    """One row per applied envelope: the (sensor_id, seq) key that makes apply effect-once."""
    __tablename__ = "central_envelopes"
    __table_args__ = (UniqueConstraint("sensor_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sensor_id: Mapped[str] = mapped_column(ForeignKey("central_sensors.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    schema_version: Mapped[str] = mapped_column(String(20))
    captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    items: Mapped[int] = mapped_column(Integer, default=0)


class Run(Base):
    __tablename__ = "central_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("central_sites.id"), index=True)
    sensor_id: Mapped[str] = mapped_column(ForeignKey("central_sensors.id"))
    seq: Mapped[int] = mapped_column(Integer)
    run_ref: Mapped[str] = mapped_column(String(80), default="")     # the sensor's own id for the run
    kind: Mapped[str] = mapped_column(String(20))
    captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    packets: Mapped[int] = mapped_column(Integer, default=0)
    captures: Mapped[list] = mapped_column(JSON, default=list)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    report: Mapped[dict] = mapped_column(JSON, default=dict)           # zones, roadmap, patch plan, PLC changes, ...


class Asset(Base):
    __tablename__ = "central_assets"
    __table_args__ = (UniqueConstraint("site_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("central_sites.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))                      # ip, or mac for layer-2-only devices
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mac: Mapped[str | None] = mapped_column(String(32), nullable=True)
    vendor: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    role: Mapped[str] = mapped_column(String(40), default="unknown", index=True)
    zone: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    protocols: Mapped[str] = mapped_column(Text, default="")          # " modbus enip " for a LIKE filter on any backend
    product: Mapped[str | None] = mapped_column(String(200), nullable=True)    # identity, for filters
    firmware: Mapped[str | None] = mapped_column(String(200), nullable=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)            # the contract's asset record
    sensor_id: Mapped[str] = mapped_column(ForeignKey("central_sensors.id"))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))   # first envelope's captured_at
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    gone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AssetChange(Base):
    """The history of an asset's record: new, changed (before and after), gone."""
    __tablename__ = "central_asset_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("central_assets.id"), index=True)
    sensor_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)
    change: Mapped[str] = mapped_column(String(10))                   # new | changed | gone
    captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    before: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class Finding(Base):
    __tablename__ = "central_findings"
    __table_args__ = (Index("ix_central_findings_site_time", "site_id", "captured_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("central_sites.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("central_runs.id"), nullable=True, index=True)
    sensor_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)
    check_id: Mapped[str] = mapped_column(String(80), index=True)
    status: Mapped[str] = mapped_column(String(10))
    # an accepted risk (the contract's `suppressed` is set): a fail that does not count as failing
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    severity: Mapped[str] = mapped_column(String(10), index=True)
    title: Mapped[str] = mapped_column(Text)
    assets: Mapped[str] = mapped_column(Text, default="")             # " 10.0.0.1 10.0.0.2 " for a LIKE filter
    data: Mapped[dict] = mapped_column(JSON, default=dict)            # the contract's finding record
    captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def result(self) -> str:
        """fail, accepted (a fail whose risk is accepted: not failing) or pass, for every count and list."""
        return "accepted" if self.status == "fail" and self.suppressed else self.status

    @classmethod
    def failing(cls):
        """The SQL twin of result == "fail"."""
        return (cls.status == "fail") & ~cls.suppressed


class Alert(Base):
    """On PostgreSQL partitioned by month of `at` (server/retention.py); a repeated event is found by
    (site_id, event_id) under the sensor's lock, not by a unique key (which would have to hold `at`)."""
    __tablename__ = "central_alerts"
    __table_args__ = (Index("ix_central_alerts_site_event", "site_id", "event_id"),
                      Index("ix_central_alerts_site_time", "site_id", "at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("central_sites.id"))
    sensor_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(String(64))                 # the sensor's event id: repeats are one alert
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))    # when the sensor raised it
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    severity: Mapped[str] = mapped_column(String(10), index=True)
    rule_id: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="open", index=True)   # open | acknowledged | closed
    assignee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    state_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    state_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    state_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # risk accepted until


class Flow(Base):
    __tablename__ = "central_flows"
    __table_args__ = (UniqueConstraint("site_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("central_sites.id"), index=True)
    key: Mapped[str] = mapped_column(String(200))                     # src dst proto port vlan first
    src: Mapped[str] = mapped_column(String(64))
    dst: Mapped[str] = mapped_column(String(64))
    proto: Mapped[str] = mapped_column(String(10))
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    app: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    packets: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[dict] = mapped_column(JSON, default=dict)            # the contract's flow record, latest
    sensor_id: Mapped[str] = mapped_column(String(40))
    last_captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Baseline(Base):
    __tablename__ = "central_baselines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("central_sites.id"), index=True)
    sensor_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)
    captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    accepted_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)


class Health(Base):
    __tablename__ = "central_health"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sensor_id: Mapped[str] = mapped_column(ForeignKey("central_sensors.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
