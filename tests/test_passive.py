"""Passive means passive: `inventory`, `assess` and `demo` open no network socket, connect nowhere
and send nothing - checked with strace on every system call of the process and its children
(-f -e trace=network). Only AF_UNIX sockets (local IPC) are allowed.

Needs strace (Debian package `strace`) and permission to ptrace: outside CI the tests skip when
either is missing; in CI (CI set) that is a failure."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, shared_path

NETWORK_CALLS = ("socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendto",
                 "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg", "getsockname", "getpeername",
                 "setsockopt", "getsockopt", "shutdown")
CALL = re.compile(r"^(?:\[pid\s+)?(\d+)?\]?\s*(\w+)\((.*)$")
LOCAL = ("AF_UNIX", "AF_LOCAL", "<UNIX")


def strace() -> str:
    exe = shutil.which("strace")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("strace is not installed (Debian package strace) but CI is set")
        pytest.skip("strace not installed (apt-get install strace)")
    probe = subprocess.run([exe, "-f", "-qq", "-e", "trace=network", "-o", os.devnull, "true"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"strace cannot trace here: {probe.stderr.strip()}")
        pytest.skip(f"strace cannot trace here (ptrace not permitted?): {probe.stderr.strip()}")
    return exe


def traced(tmp_path: Path, *cmd: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run cmd under strace; (the process, every network system call, one per line)."""
    log = tmp_path / "strace.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PLANTGUARD_DB", "http_proxy", "https_proxy")}
    env["PLANTGUARD_SHARED_DATA"] = str(SHARED_DATA)
    p = subprocess.run([strace(), "-f", "-qq", "-yy", "-s", "64", "-e", "trace=network", "-o", str(log), *cmd],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    calls = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return p, calls


def not_local(calls: list[str]) -> list[str]:
    """The calls that touch anything but an AF_UNIX socket: socket() of another family, connect()
    or sendto() to another address or on another kind of socket (strace -yy names it)."""
    bad = []
    for line in calls:
        m = CALL.match(line)
        if not m or m.group(2) not in NETWORK_CALLS:
            continue
        if any(tag in m.group(3) for tag in LOCAL):
            continue
        bad.append(line)
    return bad


def test_the_check_sees_a_socket():
    """The harness itself: a Python that opens a UDP socket and sends one datagram is caught."""
    code = "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('127.0.0.1', 9))"
    _, calls = traced(Path(os.environ.get("TMPDIR", "/tmp")), sys.executable, "-c", code)
    bad = not_local(calls)
    assert any(c.split("(")[0].split()[-1] == "socket" and "AF_INET" in c for c in bad), calls
    assert any("sendto(" in c for c in bad), calls
    code = "import socket; a, b = socket.socketpair(); a.send(b'x')"     # local IPC is allowed
    _, calls = traced(Path(os.environ.get("TMPDIR", "/tmp")), sys.executable, "-c", code)
    assert calls and not not_local(calls), calls


def plantguard(*args) -> list[str]:
    return [sys.executable, "-m", "plantguard", *map(str, args)]


def test_inventory_opens_no_socket(tmp_path):
    cap = shared_path("pcaps/icsnpp-enip/enip_cip_example.pcap")
    p, calls = traced(tmp_path, *plantguard("inventory", cap, "--db", tmp_path / "pg.db", "-f", "json", "-q"))
    assert p.returncode == 0, p.stderr
    assert not not_local(calls), not_local(calls)[:10]


def test_assess_opens_no_socket(tmp_path):
    cap = shared_path("pcaps/icsnpp-enip/enip_cip_example.pcap")
    for fmt in ("html", "sarif"):
        p, calls = traced(tmp_path, *plantguard("assess", cap, "-f", fmt, "-o", tmp_path / f"r.{fmt}", "-q"))
        assert p.returncode == 0, p.stderr
        assert not not_local(calls), not_local(calls)[:10]


def test_demo_opens_no_socket(tmp_path):
    p, calls = traced(tmp_path, *plantguard("demo", "--out", tmp_path / "demo"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "demo" / "plantguard-report.html").exists()
    assert not not_local(calls), not_local(calls)[:10]


# Every module of the active probe imported first (its queries declared, its raw-socket layer
# loaded), then the command: importing the probe opens nothing, and the passive commands stay
# passive with it loaded in the same process.
WITH_PROBE_LOADED = ("import importlib, pkgutil, sys\n"
                     "import plantguard.probe as p\n"
                     "for m in pkgutil.walk_packages(p.__path__, 'plantguard.probe.'):\n"
                     "    importlib.import_module(m.name)\n"
                     "from plantguard.probe.queries import all_queries\n"
                     "assert {q.transport for q in all_queries()} >= {'tcp', 'l2'}\n"
                     "sys.argv = ['plantguard', *sys.argv[1:]]\n"
                     "from plantguard.cli import main\n"
                     "main()\n")


def test_inventory_opens_no_socket_with_the_probe_loaded(tmp_path):
    cap = shared_path("pcaps/icsnpp-enip/enip_cip_example.pcap")
    p, calls = traced(tmp_path, sys.executable, "-c", WITH_PROBE_LOADED, "inventory", str(cap),
                      "--db", str(tmp_path / "pg.db"), "-f", "json", "-q")
    assert p.returncode == 0, p.stderr
    assert not not_local(calls), not_local(calls)[:10]


def test_probe_dry_run_opens_no_socket(tmp_path):
    """`plantguard probe` without --send builds and validates every frame (TCP, and DCP to a MAC
    from the neighbour table) and touches no network socket, raw or otherwise."""
    site = tmp_path / "site.yaml"
    site.write_text("site: t\nzones:\n  - {name: a, kind: ot-control, networks: [192.0.2.0/24]}\n"
                    "probe:\n  owner: tests\n  windows: ignored\n  allow:\n"
                    "    - {zones: [a], protocols: [modbus, enip, dcp]}\n", encoding="utf-8")
    p, calls = traced(tmp_path, *plantguard("probe", "--site", site, "--targets", "192.0.2.10,192.0.2.11",
                                            "-f", "json"))
    assert p.returncode == 0, p.stderr
    assert '"dry_run": true' in p.stdout and '"sent": 0' in p.stdout
    assert not not_local(calls), not_local(calls)[:10]
