"""Change tickets (changes/tickets.py): one row per ticket, its window as POSIX seconds (UTC)."""
from __future__ import annotations

from sqlalchemy import JSON, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from plantguard.store.db import Base


class ChangeTicketRow(Base):
    __tablename__ = "change_ticket"
    __table_args__ = (UniqueConstraint("site", "ticket"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(200), default="")   # the central server's site; "" in a local store
    ticket: Mapped[str] = mapped_column(String(120))
    plcs: Mapped[list] = mapped_column(JSON)                 # addresses, networks or asset names
    stations: Mapped[list] = mapped_column(JSON)             # addresses
    starts_at: Mapped[float] = mapped_column(Float)
    ends_at: Mapped[float] = mapped_column(Float)
    operations: Mapped[list] = mapped_column(JSON)           # empty: all
    source: Mapped[str] = mapped_column(Text, default="")
    added_at: Mapped[float] = mapped_column(Float)
