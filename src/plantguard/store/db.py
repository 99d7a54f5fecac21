"""Database handle. Every table's model derives from Base; migrations live in store/migrations."""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

DEFAULT_DB = "plantguard.db"


class Base(DeclarativeBase):
    pass


def db_url(path: str | os.PathLike | None = None) -> str:
    path = path or os.environ.get("PLANTGUARD_DB") or DEFAULT_DB
    s = str(path)
    if "://" in s:
        return s
    return f"sqlite:///{Path(s).expanduser()}"


def open_engine(path: str | os.PathLike | None = None) -> Engine:
    """An engine whose schema is up to date (migrations applied)."""
    url = db_url(path)
    engine = create_engine(url, future=True)
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    from plantguard.store.migrate import upgrade
    upgrade(engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, future=True)
