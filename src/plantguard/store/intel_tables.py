"""Tables for vulnerability intelligence: advisories (CSAF, NVD), the products they name,
their vulnerabilities and remediations, CISA KEV and EPSS. One row per imported file in
intel_source says what is loaded and how old it is."""
from __future__ import annotations

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plantguard.store.db import Base


class IntelSource(Base):
    """One imported document (an advisory file, the KEV catalogue, an NVD feed, an EPSS file)."""
    __tablename__ = "intel_source"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)     # csaf | kev | nvd | epss
    doc_id: Mapped[str] = mapped_column(String(200))               # advisory id, catalogue version, file name
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    doc_date: Mapped[str | None] = mapped_column(String(40), nullable=True)   # the document's own date
    imported_at: Mapped[float] = mapped_column(Float)
    records: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (Index("ix_intel_source_kind_doc", "kind", "doc_id", unique=True),)


class Advisory(Base):
    __tablename__ = "intel_advisory"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)   # ICSA-18-310-02, CVE-2021-1 (NVD)
    source: Mapped[str] = mapped_column(String(16))                  # csaf | nvd
    category: Mapped[str | None] = mapped_column(String(40), nullable=True)   # csaf_security_advisory, csaf_vex
    title: Mapped[str] = mapped_column(Text, default="")
    publisher: Mapped[str | None] = mapped_column(String(200), nullable=True)
    published: Mapped[str | None] = mapped_column(String(40), nullable=True)
    updated: Mapped[str | None] = mapped_column(String(40), nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("intel_source.id", ondelete="CASCADE"),
                                                  nullable=True)


class AdvisoryProduct(Base):
    """A product (and version range) an advisory names. status is per product only for the
    vulnerability-independent case; per-CVE status lives in AdvisoryVuln's lists."""
    __tablename__ = "intel_product"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    advisory_id: Mapped[str] = mapped_column(ForeignKey("intel_advisory.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[str] = mapped_column(String(120))             # CSAF product_id / NVD match id
    vendor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    vendor_key: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    product_name: Mapped[str] = mapped_column(Text, default="")      # the product_name branch
    full_name: Mapped[str] = mapped_column(Text, default="")
    version_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    version_kind: Mapped[str] = mapped_column(String(16), default="range")   # range | exact | none
    model_numbers: Mapped[list] = mapped_column(JSON, default=list)
    cpe: Mapped[str | None] = mapped_column(Text, nullable=True)
    purl: Mapped[str | None] = mapped_column(Text, nullable=True)


class AdvisoryVuln(Base):
    __tablename__ = "intel_vuln"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    advisory_id: Mapped[str] = mapped_column(ForeignKey("intel_advisory.id", ondelete="CASCADE"), index=True)
    cve: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    cwe: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cvss_version: Mapped[str | None] = mapped_column(String(8), nullable=True)
    cvss_vector: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cvss_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    severity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    affected: Mapped[list] = mapped_column(JSON, default=list)       # product ids
    fixed: Mapped[list] = mapped_column(JSON, default=list)
    not_affected: Mapped[list] = mapped_column(JSON, default=list)
    remediations: Mapped[list] = mapped_column(JSON, default=list)   # [{category, details, url, product_ids}]


class KevEntry(Base):
    __tablename__ = "intel_kev"
    cve: Mapped[str] = mapped_column(String(40), primary_key=True)
    vendor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    product: Mapped[str | None] = mapped_column(String(200), nullable=True)
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    date_added: Mapped[str | None] = mapped_column(String(20), nullable=True)
    due_date: Mapped[str | None] = mapped_column(String(20), nullable=True)
    ransomware: Mapped[str | None] = mapped_column(String(20), nullable=True)
    required_action: Mapped[str | None] = mapped_column(Text, nullable=True)


class EpssScore(Base):
    __tablename__ = "intel_epss"
    cve: Mapped[str] = mapped_column(String(40), primary_key=True)
    epss: Mapped[float] = mapped_column(Float)
    percentile: Mapped[float | None] = mapped_column(Float, nullable=True)
    score_date: Mapped[str | None] = mapped_column(String(20), nullable=True)
