"""A store that cannot be used is one line naming it (exit code 2) and never costs the results:
`inventory` writes its table or JSON first, `assess` writes its report with the checks that need
the store marked not run. A read-only store at the current schema is read; a store already at
the head revision is not migrated; concurrent first runs on a fresh store do not race. What is
not about SQLite files runs on SQLite and on PostgreSQL (the store_url fixture)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select, text

from conftest import shared_path
from plantguard.store.db import WRITE_LOCK, StoreError, db_url, open_engine
from plantguard.store.inventory_tables import Run
from plantguard.store.migrate import ADVISORY_KEY, script_revisions
from support.postgres import free_port

ENIP = "pcaps/icsnpp-enip/enip_cip_example.pcap"


def run(*args, env=None, cwd=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "plantguard", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=e, cwd=cwd)


def error_line(p) -> str:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    # the capture's own warnings come first (ENIP has 11 records cut by its snapshot length)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    assert len(lines) == 1, p.stderr
    return lines[0]


def inventory_keeps_its_output(db, *words, env=None) -> str:
    """`inventory --db DB -f json`: the JSON is complete on stdout, then one error line, exit 2."""
    p = run("inventory", shared_path(ENIP), "--db", db, "-q", "-f", "json", env=env)
    line = error_line(p)
    doc = json.loads(p.stdout)
    assert doc["assets"] and doc.get("changes") is None
    assert line.startswith(f"plantguard: error: store {db}: ") and line.endswith("; this run was not recorded")
    for w in words:
        assert w in line, line
    return line


def sql(db, statement: str) -> list:
    """Run one statement on the store (a path or a URL), committed; the rows' first column."""
    engine = create_engine(db_url(db))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement))
            return [r[0] for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def table_names(db) -> list[str]:
    engine = create_engine(db_url(db))
    try:
        return sorted(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def stored_runs(db) -> int:
    return sql(db, "SELECT count(*) FROM runs")[0]


@contextlib.contextmanager
def read_only(*paths: Path):
    """Make files and directories read-only for this process: permission bits for a user, the
    immutable attribute for root (who writes through permission bits)."""
    if os.geteuid() != 0:
        modes = [(p, p.stat().st_mode) for p in paths]
        for p, m in modes:
            p.chmod(m & ~0o222)
        try:
            yield
        finally:
            for p, m in modes:
                p.chmod(m)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("running as root without chattr: cannot make a file read-only")
    done = []
    try:
        for p in paths:
            if subprocess.run([chattr, "+i", str(p)], capture_output=True).returncode != 0:
                pytest.skip("running as root on a file system without the immutable attribute")
            done.append(p)
        if os.access(paths[0], os.W_OK):
            pytest.skip("the immutable attribute does not stop root writing here")
        yield
    finally:
        for p in reversed(done):
            subprocess.run([chattr, "-i", str(p)], capture_output=True)


def with_one_run(db):
    p = run("inventory", shared_path(ENIP), "--db", db, "-q", "-f", "json")
    assert p.returncode == 0, p.stderr
    return db


@pytest.fixture
def store(tmp_path):
    """An SQLite store file at the head revision with one inventory run."""
    return with_one_run(tmp_path / "pg.db")


@pytest.fixture
def any_store(store_url):
    """The same on SQLite and on PostgreSQL (its URL)."""
    return with_one_run(store_url)


# --- each failure: one line naming the store; the inventory is written all the same ----------

def test_not_a_database(tmp_path):
    db = tmp_path / "pg.db"
    db.write_bytes(os.urandom(4096))
    inventory_keeps_its_output(db, "not an SQLite database")


def test_corrupt_schema_page(store):
    with open(store, "r+b") as f:
        f.seek(100)
        f.write(b"\xa5" * 3000)
    inventory_keeps_its_output(store, "corrupt (database disk image is malformed)")


def test_corrupt_table_pages_found_while_writing(store):
    size = store.stat().st_size
    with open(store, "r+b") as f:
        f.seek(4096)
        f.write(b"\x5a" * (size - 4096))
    inventory_keeps_its_output(store, "corrupt")


@contextlib.contextmanager
def another_writer(db):
    """A writer in the middle of its transaction: SQLite's BEGIN IMMEDIATE, PostgreSQL's write lock."""
    if not str(db).startswith("postgresql"):
        holder = sqlite3.connect(db.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK})
            yield
    finally:
        engine.dispose()


def test_locked_by_another_writer_beyond_the_busy_timeout(any_store):
    with another_writer(any_store):
        inventory_keeps_its_output(any_store, "locked by another writer for more than 0.5 s",
                                   env={"PLANTGUARD_DB_TIMEOUT": "0.5"})
    assert stored_runs(any_store) == 1


def test_missing_directory(tmp_path):
    db = tmp_path / "no" / "such" / "pg.db"
    inventory_keeps_its_output(db, f"directory {db.parent} does not exist")
    assert not (tmp_path / "no").exists()


def test_directory_or_device_instead_of_a_file(tmp_path):
    inventory_keeps_its_output(tmp_path, "is a directory, not a store file")
    if os.path.exists("/dev/zero"):
        inventory_keeps_its_output(Path("/dev/zero"), "is a character device, not a store file")


def test_database_of_something_else_is_left_alone(store_url):
    sql(store_url, "CREATE TABLE recipes (name TEXT)")
    kind = "a PostgreSQL" if store_url.startswith("postgresql") else "an SQLite"
    inventory_keeps_its_output(store_url, f"{kind} database of something else (tables recipes)")
    assert table_names(store_url) == ["recipes"]


def test_store_from_a_newer_plantguard(any_store):
    sql(any_store, "UPDATE alembic_version SET version_num = 'ffffffffffff'")
    inventory_keeps_its_output(any_store, "written by a newer plantguard (schema revision ffffffffffff")
    assert stored_runs(any_store) == 1


def test_read_only_store_is_read_and_not_written(store):
    before = store.read_bytes()
    with read_only(store):
        inventory_keeps_its_output(store, "read-only")
    assert store.read_bytes() == before and stored_runs(store) == 1


def test_read_only_directory(store):
    with read_only(store.parent):
        inventory_keeps_its_output(store, "read-only")
    assert stored_runs(store) == 1


def test_read_only_store_behind_the_head_is_refused_not_migrated(store):
    with sqlite3.connect(store) as con:
        con.execute("UPDATE alembic_version SET version_num = '6527902a9d7f'")
    (store.parent / "pg.db.lock").unlink(missing_ok=True)
    with read_only(store, store.parent):
        inventory_keeps_its_output(store, "read-only, and its schema is older than this plantguard's")
    assert not (store.parent / "pg.db.lock").exists()


def test_store_errors_in_process_are_store_errors(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    with pytest.raises(StoreError) as exc:
        open_engine(bad)
    assert str(exc.value).startswith(f"store {bad}: ") and "\n" not in str(exc.value)


def test_postgresql_server_not_running_is_one_line(tmp_path):
    """No server on the port: inventory writes its JSON, then the one line; assess writes its
    report with the vulnerability checks not run, saying why."""
    db = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/plantguard"
    cannot = f"store {db}: cannot connect (connection to server at \"127.0.0.1\""
    line = inventory_keeps_its_output(db)
    assert line.startswith(f"plantguard: error: {cannot}") and "Connection refused" in line, line
    with pytest.raises(StoreError) as exc:
        open_engine(db)
    assert str(exc.value).startswith(cannot) and "\n" not in str(exc.value)
    out = tmp_path / "report.json"
    p = run("assess", shared_path(ENIP), "--db", db, "-q", "-f", "json", "-o", out)
    assert p.returncode == 2 and p.stderr.rstrip().splitlines()[-1].startswith(f"plantguard: error: {cannot}"), p.stderr
    reasons = {nr["check"]: nr["reason"] for nr in json.loads(out.read_text())["checks_not_run"]}
    assert reasons["vuln.advisory"].startswith(cannot)


# --- assess: the report is written, the vulnerability checks say why they did not run ---------

def test_assess_with_a_corrupt_store_writes_the_report(tmp_path):
    db = tmp_path / "intel.db"
    db.write_bytes(os.urandom(8192))
    out = tmp_path / "report.json"
    p = run("assess", shared_path(ENIP), "--db", db, "-q", "-f", "json", "-o", out)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    # the summary of the written report, then the error on one line
    assert "report:" in p.stderr
    assert p.stderr.rstrip().splitlines()[-1] == \
        f"plantguard: error: store {db}: not an SQLite database (file is not a database)"
    doc = json.loads(out.read_text())
    assert doc["assets"] and doc["findings"]
    reasons = {nr["check"]: nr["reason"] for nr in doc["checks_not_run"]}
    for check in ("vuln.known-exploited", "vuln.advisory"):
        assert reasons[check] == f"store {db}: not an SQLite database (file is not a database)"
    assert any(n.startswith(f"store {db}: ") and "not run" in n for n in doc["notes"])


def test_intel_store_is_read(store_url):
    from plantguard.knowledge.intel import import_paths
    engine = open_engine(store_url)
    import_paths(engine, [shared_path("vuln/csaf/2018/icsa-18-310-02.json")])
    engine.dispose()
    p = run("assess", shared_path(ENIP), "--db", store_url, "-q", "-f", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    advisories = {f["detail"]["advisory"] for f in doc["findings"]
                  if f["check"] == "vuln.advisory" and f["status"] == "fail"}
    assert advisories == {"ICSA-18-310-02"}


def test_read_only_intel_store_is_read(tmp_path):
    from plantguard.knowledge.intel import import_paths
    db = tmp_path / "intel.db"
    engine = open_engine(db)
    import_paths(engine, [shared_path("vuln/csaf/2018/icsa-18-310-02.json")])
    engine.dispose()
    with read_only(db, tmp_path):
        p = run("assess", shared_path(ENIP), "--db", db, "-q", "-f", "json")
        assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    advisories = {f["detail"]["advisory"] for f in doc["findings"]
                  if f["check"] == "vuln.advisory" and f["status"] == "fail"}
    assert advisories == {"ICSA-18-310-02"}
    assert "vuln.advisory" not in {nr["check"] for nr in doc["checks_not_run"]}


# --- migrations: skipped at the head, serialised when needed ------------------------------------

def test_revisions_read_from_the_files_match_alembic():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from plantguard.store.migrate import MIGRATIONS
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    sd = ScriptDirectory.from_config(cfg)
    revs, heads = script_revisions()
    assert heads == frozenset(sd.get_heads())
    assert revs == frozenset(r.revision for r in sd.walk_revisions())


def test_a_store_at_the_head_is_not_migrated(any_store, monkeypatch):
    import plantguard.store.migrate as migrate

    def no_upgrade(*a, **k):
        raise AssertionError("upgrade called on a store at the head revision")
    monkeypatch.setattr(migrate, "upgrade", no_upgrade)
    open_engine(any_store).dispose()
    # nor is Alembic imported for it (what the skip saves, ~0.1-0.3 s a run)
    code = ("import sys\nfrom plantguard.store.db import open_engine\nopen_engine(sys.argv[1])\n"
            "print('alembic' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code, str(any_store)], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "False", p.stderr


def test_a_store_behind_the_head_is_upgraded(store_url):
    from alembic import command

    from plantguard.store.migrate import _config
    db = store_url
    engine = create_engine(db)
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "6527902a9d7f")     # the first revision only
    engine.dispose()
    e = open_engine(db)
    with e.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() in script_revisions()[1]
    e.dispose()


def test_concurrent_opens_of_a_fresh_store_upgrade_it_once(new_store_url, tmp_path):
    """Five processes open the same fresh store at the same moment (a start file releases them
    together); without the lock (the file, or PostgreSQL's advisory lock), some failed with
    'table runs already exists'."""
    code = ("import os, sys, time\n"
            "from plantguard.store.db import open_engine\n"
            "while not os.path.exists(sys.argv[2]):\n    time.sleep(0.005)\n"
            "open_engine(sys.argv[1]).dispose()\n")
    for attempt in range(2):
        db, go = new_store_url(), tmp_path / f"go{attempt}"
        procs = [subprocess.Popen([sys.executable, "-c", code, str(db), str(go)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(5)]
        time.sleep(1.5)      # all of them imported and waiting
        go.touch()
        for pr in procs:
            _, err = pr.communicate(timeout=120)
            assert pr.returncode == 0, err
        assert sql(db, "SELECT count(*) FROM alembic_version") == [1]


def test_five_parallel_inventory_runs_on_a_fresh_store_are_all_stored(store_url):
    cap = shared_path(ENIP)
    db = store_url
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-m", "plantguard", "inventory", str(cap), "--db", str(db),
                               "-q", "-f", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env)
             for _ in range(5)]
    results = []
    for pr in procs:
        out, err = pr.communicate(timeout=300)
        results.append((pr.returncode, out, err))
    for rc, out, err in results:
        assert rc == 0, err
    changes = [json.loads(out)["changes"] for _, out, _ in results]
    assert sorted(c["run"] for c in changes) == [1, 2, 3, 4, 5]
    # serialised: each run was compared with the one stored just before it
    assert sorted((c["previous_run"] or 0) for c in changes) == [0, 1, 2, 3, 4]
    e = open_engine(db)
    with e.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Run)) == 5
    e.dispose()


def test_an_upgrade_held_by_another_is_waited_for_then_refused(pg_url, monkeypatch):
    """PostgreSQL: another process holding the upgrade lock past the busy timeout is one line;
    once it lets go, the open upgrades the database."""
    monkeypatch.setenv("PLANTGUARD_DB_TIMEOUT", "0.5")
    holder = create_engine(pg_url)
    try:
        with holder.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_KEY})
            t0 = time.monotonic()
            with pytest.raises(StoreError) as exc:
                open_engine(pg_url)
            assert time.monotonic() - t0 >= 0.5
            assert str(exc.value) == (f"store {pg_url}: another plantguard has been upgrading it for more "
                                      f"than 0.5 s (advisory lock {ADVISORY_KEY})")
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
    finally:
        holder.dispose()
    open_engine(pg_url).dispose()
    assert sql(pg_url, "SELECT version_num FROM alembic_version")[0] in script_revisions()[1]
