"""Tables for the accumulated inventory: runs, assets (accumulated across runs) and the per-run
snapshot used to say what is new, changed or gone since the previous run."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from plantguard.store.db import Base


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))            # "inventory" | "assess"
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    site: Mapped[str | None] = mapped_column(String(200), nullable=True)
    captures: Mapped[list] = mapped_column(JSON, default=list)
    packets: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)


class AssetRow(Base):
    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("site", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(200), default="")
    key: Mapped[str] = mapped_column(String(64))              # ip, or mac for layer-2-only devices
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mac: Mapped[str | None] = mapped_column(String(32), nullable=True)
    vendor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    role: Mapped[str] = mapped_column(String(40), default="unknown")
    zone: Mapped[str | None] = mapped_column(String(100), nullable=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)    # the full asset record (as_dict)
    first_seen: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)
    first_run: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    last_run: Mapped[int] = mapped_column(ForeignKey("runs.id"))


class AssetSnapshot(Base):
    __tablename__ = "asset_snapshots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(Text)            # what "changed" compares (JSON text)
