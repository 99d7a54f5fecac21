"""Schema migrations with Alembic: every open brings the store to the newest revision, so a store
written by an older plantguard keeps its data. New tables or columns get a revision in
store/migrations/versions (see docs/development.md: `python -m plantguard.store.migrate revision MSG`).

`ensure_current` is what an open does: one cheap look at alembic_version and the table names;
a store already at the head revision with every table is used as it is (Alembic is not even
imported). Otherwise the upgrade runs under an exclusive lock on a file beside the store
(`STORE.lock`, fcntl.flock; on PostgreSQL a transaction-level advisory lock on ADVISORY_KEY in
that database), and the state is looked at again once the lock is held, so concurrent first runs
on a fresh store upgrade it once and the others wait, then find it current."""
from __future__ import annotations

import os
import re
import sys
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"
ADVISORY_KEY = 0x706C616E74677264     # "plantgrd": the one PostgreSQL advisory lock of upgrades

_REVISION = re.compile(r"^revision(?:\s*:\s*[\w\[\], |]+)?\s*=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision(?:\s*:\s*[\w\[\], |.]+)?\s*=\s*(.+)$", re.M)


def _config():
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@lru_cache(maxsize=1)
def script_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(every revision, the head revisions) of store/migrations/versions, read from the files'
    `revision` and `down_revision` lines (tests/test_store_robustness.py checks them against
    Alembic's own reading)."""
    revs: set[str] = set()
    downs: set[str] = set()
    for f in sorted((MIGRATIONS / "versions").glob("*.py")):
        src = f.read_text(encoding="utf-8")
        m = _REVISION.search(src)
        if m is None:
            continue
        revs.add(m.group(1))
        d = _DOWN.search(src)
        if d is not None:
            downs.update(re.findall(r"['\"]([^'\"]+)['\"]", d.group(1)))
    return frozenset(revs), frozenset(revs - downs)


def model_tables() -> frozenset[str]:
    from plantguard.store.db import Base
    import plantguard.store.models  # noqa: F401
    return frozenset(Base.metadata.tables)


def store_state(engine: Engine) -> tuple[frozenset[str], frozenset[str]]:
    """(the revisions recorded in the store, its table names), in one connection."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            tables = frozenset(r[0] for r in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table'"))
        else:
            tables = frozenset(inspect(conn).get_table_names())
        revs = frozenset(r[0] for r in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))) \
            if VERSION_TABLE in tables else frozenset()
    return revs, tables


def is_current(state) -> bool:
    revs, tables = state
    return bool(revs) and revs == script_revisions()[1] and model_tables() <= tables


def ensure_current(engine: Engine, label: str, readonly: bool = False, lock_path: Path | None = None,
                   timeout: float = 30.0) -> None:
    """Bring the store to the head revision unless it is there already (see the module doc).
    StoreError when it cannot be: newer than this plantguard, not a plantguard database,
    read-only and behind, or another process holding the upgrade lock for longer than `timeout`."""
    from plantguard.store.db import StoreError
    state = store_state(engine)
    if is_current(state):
        return
    _refuse_foreign(state, label, engine.dialect.name)
    if readonly:
        raise StoreError(label, "read-only, and its schema is older than this plantguard's: open it once "
                                "where it is writable to upgrade it")
    lock = advisory_lock(engine, timeout, label) if engine.dialect.name == "postgresql" \
        else migration_lock(lock_path, timeout, label)
    with lock:
        state = store_state(engine)
        if is_current(state):     # another process upgraded it while this one waited
            return
        _refuse_foreign(state, label, engine.dialect.name)
        upgrade(engine)


def _refuse_foreign(state, label: str, dialect: str) -> None:
    from plantguard.store.db import StoreError
    revs, tables = state
    unknown = sorted(revs - script_revisions()[0])
    if unknown:
        raise StoreError(label, f"written by a newer plantguard (schema revision {', '.join(unknown)} is not "
                                "known to this version); use that version or another store")
    others = tables - {VERSION_TABLE}     # an empty alembic_version: another process is creating it
    if not revs and others and not (others & model_tables()):
        shown = ", ".join(sorted(others)[:3]) + (", ..." if len(others) > 3 else "")
        kind = "a PostgreSQL" if dialect == "postgresql" else "an SQLite"
        raise StoreError(label, f"{kind} database of something else (tables {shown}), not a plantguard store")


@contextmanager
def migration_lock(lock_path: Path | None, timeout: float, label: str):
    """An exclusive flock on `lock_path` (none for an in-memory or server store), waited for at
    most `timeout` seconds."""
    try:
        import fcntl
    except ImportError:      # no flock on this platform: upgrades are not serialised
        fcntl = None
    if lock_path is None or fcntl is None:
        yield
        return
    from plantguard.store.db import StoreError
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise StoreError(label, f"cannot create the upgrade lock {lock_path} ({exc.strerror or exc})") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreError(label, f"another plantguard has been upgrading it for more than "
                                            f"{timeout:g} s (lock {lock_path})") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def advisory_lock(engine: Engine, timeout: float, label: str):
    """PostgreSQL: ADVISORY_KEY held by a transaction of its own connection for the block (ended,
    so released when the block ends however it ends), waited for at most `timeout` seconds."""
    from plantguard.store.db import StoreError
    with engine.connect() as conn:
        deadline = time.monotonic() + timeout
        while not conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ADVISORY_KEY}).scalar():
            if time.monotonic() >= deadline:
                raise StoreError(label, f"another plantguard has been upgrading it for more than "
                                        f"{timeout:g} s (advisory lock {ADVISORY_KEY})")
            time.sleep(0.05)
        yield


def upgrade(engine: Engine, create_missing: bool = True) -> None:
    from alembic import command
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


# Tables the database makes that no model declares: PostgreSQL's monthly partitions of the alert
# table (server/retention.py). Autogenerate and the model comparison leave them alone.
PARTITION_TABLE = re.compile(r"^central_alerts_(default|p\d{6})$")


def include_name(name, type_, parent_names) -> bool:
    """Alembic's include_name hook: everything but the partition tables (and their indexes)."""
    if type_ == "table":
        return not PARTITION_TABLE.match(name or "")
    if type_ == "index":
        return not PARTITION_TABLE.match(parent_names.get("table_name") or "")
    return True


def pending_changes(engine: Engine) -> list:
    """Differences between the models and the schema the migrations build (empty when in step)."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from plantguard.store.db import Base
    import plantguard.store.models  # noqa: F401
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        mc = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
        return compare_metadata(mc, Base.metadata)


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new revision from the models (a developer's tool)."""
    from alembic import command
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
