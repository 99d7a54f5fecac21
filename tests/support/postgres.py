"""A throwaway PostgreSQL cluster for the test session: initdb into a temporary directory, a
server on a unix socket there and a free 127.0.0.1 port, trust authentication, fsync off (the
data is thrown away), one fresh database per test (CREATE DATABASE from template0), stopped
with `pg_ctl stop -m immediate` and removed at the end. As root, initdb and the server run as the
`postgres` system user (initdb refuses root). No binaries: the tests skip, or fail under CI."""
from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

TOOLS = ("initdb", "pg_ctl", "postgres")
DEBIAN_BINS = "/usr/lib/postgresql/*/bin"     # Debian keeps the server binaries off PATH
SUPERUSER = "postgres"
SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "listen_addresses": "'127.0.0.1'", "max_connections": "200"}


def find_bindir() -> Path | None:
    """The directory with initdb, pg_ctl and postgres: from PATH, else the newest Debian one."""
    found = shutil.which("initdb")
    dirs = [Path(found).resolve().parent] if found else []
    dirs += sorted((Path(d) for d in glob.glob(DEBIAN_BINS)),
                   key=lambda d: [int(x) for x in re.findall(r"\d+", d.parent.name)] or [0], reverse=True)
    for d in dirs:
        if all((d / t).is_file() and os.access(d / t, os.X_OK) for t in TOOLS):
            return d
    return None


def missing_tools() -> list[str]:
    """The PostgreSQL programs the tests cannot find (for the CI tool check in conftest)."""
    return [] if find_bindir() else list(TOOLS)


def unavailable(why: str):
    """Skip, or fail under CI, where .ci/run installs PostgreSQL."""
    if os.environ.get("CI"):
        pytest.fail(f"CI=true but {why} (.ci/run installs postgresql)")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    bindir: Path
    root: Path          # the temporary directory: data/, the socket, the log
    port: int
    as_user: list[str]  # the command prefix that runs a program as the cluster's owner

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, str(self.bindir / tool), *args], capture_output=True,
                              text=True, timeout=timeout, cwd=self.root)

    def sql(self, statement: str) -> None:
        """One statement outside a transaction (CREATE/DROP DATABASE), over the unix socket."""
        import psycopg
        with psycopg.connect(host=str(self.root), port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as con:
            con.execute(statement)

    def create_database(self) -> tuple[str, str]:
        """(name, SQLAlchemy URL) of a new empty database."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name, self.url(name)

    @contextmanager
    def database(self):
        """A fresh database's URL, dropped afterwards (connections a test left open are ended)."""
        name, url = self.create_database()
        try:
            yield url
        finally:
            self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def start(self) -> None:
        p = self.run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                     "-o", f"-p {self.port}")
        if p.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {p.stderr.strip() or p.stdout.strip()}; "
                               f"log: {self.log_tail()}")

    def stop(self) -> None:
        self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", timeout=60)

    def log_tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-5:])
        except OSError:
            return "(no log)"


def _owner() -> tuple[list[str], int | None, int | None]:
    """(command prefix, uid, gid) to run the cluster as: ourselves, or `postgres` when root."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        pw = pwd.getpwnam(SUPERUSER)
    except KeyError:
        unavailable("running as root and there is no 'postgres' user to run PostgreSQL as")
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        unavailable("running as root without runuser to start PostgreSQL as 'postgres'")
    return [runuser, "-u", SUPERUSER, "--"], pw.pw_uid, pw.pw_gid


@contextmanager
def cluster():
    """A running cluster for the block; skips (or fails under CI) without the binaries."""
    bindir = find_bindir()
    if bindir is None:
        unavailable(f"PostgreSQL not installed (no {', '.join(TOOLS)} on PATH or in {DEBIAN_BINS})")
    as_user, uid, gid = _owner()
    # not under pytest's tmp_path: its parents are private to us, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="plantguard-pg-"))
    c = Cluster(bindir, root, free_port(), as_user)
    try:
        if uid is not None:
            os.chown(root, uid, gid)
        p = c.run("initdb", "-D", str(c.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        if p.returncode != 0:
            raise RuntimeError(f"initdb failed: {p.stderr.strip()}")
        conf = {**SETTINGS, "unix_socket_directories": f"'{root}'"}
        with open(c.data / "postgresql.conf", "a", encoding="utf-8") as f:
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        for attempt in range(5):      # the free port can be taken between looking and binding
            try:
                c.start()
                break
            except RuntimeError:
                if attempt == 4 or "could not bind" not in c.log_tail():
                    raise
                c.port = free_port()
                time.sleep(0.1)
        yield c
    finally:
        if (c.data / "postmaster.pid").exists():
            c.stop()
        shutil.rmtree(root, ignore_errors=True)
