"""Database handle. Every table's model derives from Base; migrations live in store/migrations.

A store that cannot be used is a StoreError: one line naming the store, 'store PATH: problem'
(exit code 2), whatever went wrong - not an SQLite file, a corrupt one, locked by another
writer for longer than the busy timeout, read-only, in a missing directory. The engine turns the
SQLite errors of every later statement into the same one line (handle_error below), so callers
catch StoreError alone.

SQLite files are opened read-write when the file and its directory are writable, else read-only
(`mode=ro`; `immutable=1` when even the WAL index cannot be opened, e.g. a copy on a read-only
medium): a read-only store at the current schema reads as usual, and writing to it fails with a
StoreError. A writer waits PLANTGUARD_DB_TIMEOUT seconds (default 30) for another before giving
up. Schema upgrades are serialised by a lock file beside the store, on PostgreSQL by an advisory
lock (store/migrate.py)."""
from __future__ import annotations

import os
import sqlite3
import stat
import sys
import time
import weakref
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from plantguard.errors import InputError

DEFAULT_DB = "plantguard.db"
TIMEOUT_ENV = "PLANTGUARD_DB_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
IN_MEMORY = "sqlite://"      # an empty store for this process only (nothing is kept)
WRITE_LOCK = 0x706C616E74777274    # "plantwrt": PostgreSQL's advisory lock for SQLite's one writer


class Base(DeclarativeBase):
    pass


class StoreError(InputError):
    """A store that cannot be used, as one line: 'store PATH: problem'."""

    def __init__(self, store: str, problem: str):
        super().__init__(f"store {store}: {problem}")
        self.store = store
        self.problem = problem


def db_url(path: str | os.PathLike | None = None) -> str:
    path = path or os.environ.get("PLANTGUARD_DB") or DEFAULT_DB
    s = str(path)
    if "://" in s:
        return s
    return f"sqlite:///{Path(s).expanduser()}"


def store_label(path: str | os.PathLike | None = None) -> str:
    """The store as the user named it (a URL without its password), for messages."""
    s = str(path or os.environ.get("PLANTGUARD_DB") or DEFAULT_DB)
    if "://" in s:
        try:
            return make_url(s).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse is shown as given
            return s
    return s


def busy_timeout() -> float:
    """Seconds a writer waits for another writer (PLANTGUARD_DB_TIMEOUT, default 30)."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value >= 0 else DEFAULT_TIMEOUT


def open_engine(path: str | os.PathLike | None = None) -> Engine:
    """An engine whose schema is up to date (migrations applied when it is not; a store already at
    the newest revision is not migrated). Raises StoreError when the store cannot be used."""
    label = store_label(path)
    url = db_url(path)
    from plantguard.store.migrate import ensure_current
    with store_errors(label):
        engine, readonly, lock_path = _create(url, label)
        try:
            ensure_current(engine, label, readonly=readonly, lock_path=lock_path, timeout=busy_timeout())
        except BaseException:
            engine.dispose()
            raise
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, future=True)


def begin_write(session: Session) -> None:
    """Take the write lock now (SQLite: BEGIN IMMEDIATE; PostgreSQL: the WRITE_LOCK advisory lock
    until the transaction ends), waiting the busy timeout for another writer, so that what the
    transaction reads first is still true when it writes. Call first thing in a write transaction."""
    conn = session.connection()
    if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, round(busy_timeout() * 1000))}")
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK})
        conn.exec_driver_sql("SET LOCAL lock_timeout = DEFAULT")


@contextmanager
def store_errors(label: str):
    """Any failure of the store inside the block becomes one StoreError naming it."""
    try:
        yield
    except StoreError:
        raise
    except (SQLAlchemyError, sqlite3.Error) as exc:
        raise StoreError(label, problem_of(exc) or _first_line(getattr(exc, "orig", None) or exc)) from exc
    except OSError as exc:
        raise StoreError(label, f"cannot be used ({exc.strerror or exc})") from exc


def problem_of(exc: BaseException) -> str | None:
    """What a failure says about the store file, in words; None for errors of the statement itself
    (a constraint, a missing table), which are not the store's fault."""
    orig = getattr(exc, "orig", None) or exc
    psycopg = sys.modules.get("psycopg")    # loaded when the store is a PostgreSQL one
    if psycopg is not None and isinstance(orig, psycopg.errors.LockNotAvailable):    # begin_write's wait
        return (f"locked by another writer for more than {busy_timeout():g} s (lock timeout); "
                f"try again when it has finished, or set {TIMEOUT_ENV} to wait longer")
    if psycopg is not None and isinstance(orig, psycopg.OperationalError) and orig.sqlstate is None:
        # libpq's own failures (no SQLSTATE): the server is not there, refuses us, or went away
        msg = _first_line(orig)
        if msg.startswith(("connection failed: ", "connection to server")):
            return f"cannot connect ({msg.removeprefix('connection failed: ')})"
        return f"lost the connection to the server ({msg})"
    if not isinstance(orig, sqlite3.Error):
        return None
    msg = _first_line(orig)
    name = getattr(orig, "sqlite_errorname", "") or ""
    kind = name.split("_")[1] if name.startswith("SQLITE_") and "_" in name else ""
    low = msg.lower()
    if kind == "NOTADB" or "file is not a database" in low:
        return "not an SQLite database (file is not a database)"
    if kind == "CORRUPT" or "malformed" in low:
        return "the database file is corrupt (database disk image is malformed); restore it from a backup or move it aside"
    if kind in ("BUSY", "LOCKED") or "database is locked" in low:
        return (f"locked by another writer for more than {busy_timeout():g} s (database is locked); "
                f"try again when it has finished, or set {TIMEOUT_ENV} to wait longer")
    if kind == "READONLY" or "readonly database" in low:
        return "read-only: the file or its directory is not writable (attempt to write a readonly database)"
    if kind == "CANTOPEN" or "unable to open" in low:
        return "cannot be opened (unable to open database file)"
    if kind == "FULL" or "database or disk is full" in low:
        return "the disk is full (database or disk is full)"
    if kind in ("IOERR", "PERM", "AUTH", "NOLFS") or "disk i/o error" in low:
        return f"cannot be read or written ({msg})"
    return None


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_OPEN: weakref.WeakSet[Engine] = weakref.WeakSet()   # every engine made here, for dispose_all()


def dispose_all() -> None:
    """Close the connections of every engine still open (an SQLite store's write-ahead log is
    folded back into its file as its last connection closes): what the collector's pass at
    exit would have done, done before the command line leaves the run's objects to the end of
    the process (cli._Group.main)."""
    for engine in list(_OPEN):
        engine.dispose()


def _create(url: str, label: str) -> tuple[Engine, bool, Path | None]:
    """(engine, read-only?, migration lock file) for the URL; SQLite files are checked first."""
    engine, readonly, lock = _create_engine(url, label)
    _OPEN.add(engine)
    return engine, readonly, lock


def _create_engine(url: str, label: str) -> tuple[Engine, bool, Path | None]:
    u = make_url(url)
    database = u.database or ""
    is_file = (u.get_backend_name() == "sqlite" and database not in ("", ":memory:")
               and not database.startswith("file:") and "uri" not in u.query)
    if not is_file:
        engine = create_engine(url, future=True)
        if u.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        _one_line_errors(engine, label)
        return engine, False, None
    file = Path(database)
    readonly = _check_file(file, label)
    engine = create_engine(url, future=True,
                           creator=partial(_connect_file, str(file), readonly, busy_timeout()))
    _one_line_errors(engine, label)
    return engine, readonly, file.with_name(file.name + ".lock")


def _check_file(file: Path, label: str) -> bool:
    """Whether the existing store must be opened read-only; StoreError when it cannot be a store."""
    parent = file.parent
    try:
        st = os.stat(file)
    except FileNotFoundError:
        if not parent.is_dir():
            raise StoreError(label, f"directory {parent} does not exist" if not parent.exists()
                             else f"{parent} is not a directory") from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(label, f"does not exist and cannot be created: directory {parent} is not writable") from None
        return False
    except OSError as exc:
        raise StoreError(label, f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        from plantguard.capture.sources import file_kind
        raise StoreError(label, f"is {file_kind(st.st_mode)}, not a store file")
    if not os.access(file, os.R_OK):
        raise StoreError(label, "is not readable (permission denied)")
    return not (os.access(file, os.W_OK) and os.access(parent, os.W_OK | os.X_OK))


def _connect_file(file: str, readonly: bool, timeout: float) -> sqlite3.Connection:
    if not readonly:
        con = sqlite3.connect(file, timeout=timeout, check_same_thread=False)
        try:
            _sqlite_pragmas(con, None)
        except BaseException:
            con.close()
            raise
        return con
    uri = f"file:{quote(os.path.abspath(file))}?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()   # opens the file and its WAL index
    except sqlite3.OperationalError as exc:
        con.close()
        if "unable to open" not in str(exc):
            raise
        # a WAL store whose directory is read-only has no -shm to share: read the file as it is
        con = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=timeout, check_same_thread=False)
    con.execute("PRAGMA foreign_keys=ON")
    return con


def _sqlite_pragmas(con, _record) -> None:
    cur = con.cursor()
    try:
        _wal(cur)
        cur.execute("PRAGMA foreign_keys=ON")
    finally:
        cur.close()


def _wal(cur) -> None:
    """Put the store in WAL mode, once. Switching needs the file to itself and SQLite may answer
    "locked" at once, without its busy wait, while another process creates or migrates the store:
    wait for it here, up to the writer timeout (a store already in WAL mode needs nothing)."""
    if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + busy_timeout()
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _one_line_errors(engine: Engine, label: str) -> None:
    @event.listens_for(engine, "handle_error")
    def _store_problem(ctx):
        problem = problem_of(ctx.original_exception)
        if problem is not None:
            raise StoreError(label, problem) from ctx.original_exception
