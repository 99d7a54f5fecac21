"""Shared test fixtures. Tests that need the third-party captures and baselines in
../shared/data skip with a clear reason when it is absent (a user's fresh clone); CI has it."""
from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
from pathlib import Path

import pytest

from support import postgres

SHARED_DATA = Path(os.environ.get("PLANTGUARD_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))


CI_TOOLS = ("tshark", "chromium", "strace", "rsyslogd", "tcpreplay", "tcpdump", "ip", "nft", "iptables-restore",
            "ipset")   # peers and probes tests need


def pytest_sessionstart(session):
    """CI must have the shared data and the tools: there a missing one is an error, not a skip."""
    if not os.environ.get("CI"):
        return
    if not SHARED_DATA.is_dir():
        raise pytest.UsageError(f"CI=true but the shared test data is missing at {SHARED_DATA}")
    missing = [tool for tool in CI_TOOLS if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None]
    missing += postgres.missing_tools()      # initdb, pg_ctl, postgres: off PATH on Debian
    if missing:
        raise pytest.UsageError(f"CI=true but {', '.join(missing)} not installed (.ci/run installs them)")


def shared_path(rel: str) -> Path:
    """A path under ../shared/data, or skip the test when the shared data set is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (set PLANTGUARD_SHARED_DATA)")
    p = SHARED_DATA / rel
    if not p.exists():
        pytest.skip(f"{rel} missing from the shared data set")
    return p


@pytest.fixture
def shared():
    return shared_path


@functools.lru_cache(maxsize=64)
def _analyze_cached(path: str):
    from plantguard.capture.engine import analyze
    return analyze([path])


def analyze_shared(rel: str):
    """AnalysisResult for a shared capture (cached across tests; treat as read-only)."""
    return _analyze_cached(str(shared_path(rel)))


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL cluster for the session (tests/support/postgres.py); skips without
    PostgreSQL, fails under CI."""
    with postgres.cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster):
    """SQLAlchemy URL of a fresh, empty PostgreSQL database for this test."""
    with pg_cluster.database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store_url(request, tmp_path):
    """A maker of fresh stores' URLs, for a test that needs several: SQLite files in tmp_path, or
    PostgreSQL databases (dropped after the test)."""
    if request.param == "sqlite":
        numbers = itertools.count()
        return lambda: f"sqlite:///{tmp_path / f'store{next(numbers)}.db'}"
    cluster = request.getfixturevalue("pg_cluster")
    databases = contextlib.ExitStack()
    request.addfinalizer(databases.close)
    return lambda: databases.enter_context(cluster.database())


@pytest.fixture
def store_url(new_store_url):
    """A fresh store's URL, once on an SQLite file and once on a PostgreSQL database."""
    return new_store_url()
