"""Identities learnt by `plantguard probe --send`: one row per device and probe run, with the
evidence pcap it was read from; assess merges the newest into the inventory as `active`."""
from __future__ import annotations

from sqlalchemy import JSON, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plantguard.store.db import Base


class ProbeIdentityRow(Base):
    __tablename__ = "probe_identity"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    probed_at: Mapped[float] = mapped_column(Float)            # POSIX seconds (UTC)
    identity: Mapped[dict] = mapped_column(JSON)              # identity key -> value
    sources: Mapped[dict] = mapped_column(JSON)               # identity key -> {proto, frame}
    queries: Mapped[list] = mapped_column(JSON)               # the queries and how each went
    evidence: Mapped[str] = mapped_column(Text, default="")   # the evidence pcap's path
