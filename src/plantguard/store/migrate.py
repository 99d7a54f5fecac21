"""Schema migrations with Alembic: every open brings the store to the newest revision, so a store
written by an older plantguard keeps its data. New tables or columns get a revision in
store/migrations/versions (see docs/development.md: `python -m plantguard.store.migrate revision MSG`)."""
from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, create_missing: bool = True) -> None:
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    if not create_missing:
        return
    # A table whose revision is not written yet (during development) is still created, so work
    # in progress runs; tests/test_store_migrations.py fails until the revision exists.
    from plantguard.store.db import Base
    import plantguard.store.models  # noqa: F401
    Base.metadata.create_all(engine)


def pending_changes(engine: Engine) -> list:
    """Differences between the models and the schema the migrations build (empty when in step)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from plantguard.store.db import Base
    import plantguard.store.models  # noqa: F401
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        mc = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(mc, Base.metadata)


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new revision from the models (a developer's tool)."""
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)


if __name__ == "__main__":  # python -m plantguard.store.migrate revision "message" [DB]
    from sqlalchemy import create_engine
    if len(sys.argv) >= 3 and sys.argv[1] == "revision":
        db = sys.argv[3] if len(sys.argv) > 3 else "sqlite:///:memory:"
        eng = create_engine(db if "://" in db else f"sqlite:///{db}")
        upgrade(eng, create_missing=False)   # scratch db at head: only the difference is generated
        revision(eng, sys.argv[2])
    else:
        print("usage: python -m plantguard.store.migrate revision MESSAGE [DB]")
