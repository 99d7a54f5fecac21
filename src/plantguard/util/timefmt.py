"""Timestamps as ISO 8601 UTC text, the one format in every output."""
from __future__ import annotations

from datetime import datetime, timezone


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None


def as_utc(t: datetime | None) -> datetime | None:
    """A stored time with its zone: SQLite hands datetimes back naive, and every one stored is UTC."""
    return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t
