"""Tables for checked SBOMs: one row per file with its verdict and described product (so an
assessment can link it to the devices it describes), and its components."""
from __future__ import annotations

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plantguard.store.db import Base


class SbomRecord(Base):
    __tablename__ = "sbom_document"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str | None] = mapped_column(String(32), nullable=True)
    spec_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)      # sbom | vex
    product_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    product_version: Mapped[str | None] = mapped_column(String(120), nullable=True)
    product_supplier: Mapped[str | None] = mapped_column(String(200), nullable=True)
    product_purl: Mapped[str | None] = mapped_column(Text, nullable=True)
    product_cpe: Mapped[str | None] = mapped_column(Text, nullable=True)
    verdict: Mapped[str] = mapped_column(String(16))
    components: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict] = mapped_column(JSON, default=dict)
    checked_at: Mapped[float] = mapped_column(Float)


class SbomComponentRow(Base):
    __tablename__ = "sbom_component"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sbom_id: Mapped[int] = mapped_column(ForeignKey("sbom_document.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[str | None] = mapped_column(String(120), nullable=True)
    supplier: Mapped[str | None] = mapped_column(String(200), nullable=True)
    purl: Mapped[str | None] = mapped_column(Text, nullable=True)
    cpe: Mapped[str | None] = mapped_column(Text, nullable=True)
