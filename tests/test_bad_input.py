"""Bad input (issue 14, item 5): every command given a path it cannot use says so in one line on
stderr naming the path, and exits 2: no traceback, no "internal error", no hang, no empty report
of no plant, no directory made for a mistyped store."""
from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys

import pytest
from conftest import shared_path

MODBUS = "pcaps/zeek/modbus/modbusSmall.pcap"
PROFINET = "pcaps/icsnpp-profinet-io-cm/profinet_io_cm_device.pcapng"
EMPTY_DNP3 = "pcaps/ICS-Security-Tools/dnp3/opendnp3-3/conformance/6.7.2/dump.pcap"   # a header, no packets


def run(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "plantguard", *map(str, args)], capture_output=True, check=False,
                          text=True, timeout=timeout)


def one_line(p, path, *words):
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr
    assert lines[0].startswith(f"plantguard: error: {path}: "), lines[0]
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    raw = shared_path(MODBUS).read_bytes()
    (d / "empty_dir").mkdir()
    (d / "dir.pcap").mkdir()                              # a directory named like a file, empty
    os.mkfifo(d / "fifo.pcap")
    os.symlink(d / "gone", d / "dangling.pcap")
    (d / "empty.pcap").write_bytes(b"")
    (d / "short.pcap").write_bytes(raw[:10])
    (d / "header_only.pcap").write_bytes(raw[:24])
    garbage = bytes(range(7, 250, 3)) * 4
    (d / "garbage.pcap").write_bytes(garbage)
    (d / "garbage.pcap.gz").write_bytes(gzip.compress(garbage))
    ng = shared_path(PROFINET).read_bytes()
    shb = struct.unpack_from("<I", ng, 4)[0]
    (d / "only_unknown.pcapng").write_bytes(ng[:shb] + struct.pack("<II", 0x77, 12) + struct.pack("<I", 12))
    return d


CAPTURE_CASES = [
    ("empty_dir", "no capture files found"),
    ("dir.pcap", "no capture files found"),
    ("fifo.pcap", "a FIFO, not a regular file"),
    ("dangling.pcap", "no such file or directory"),
    ("missing.pcap", "no such file or directory"),
    ("empty.pcap", "empty file"),
    ("short.pcap", "truncated pcap header"),
    ("header_only.pcap", "no packets"),
    ("garbage.pcap", "not a pcap or pcapng capture"),
    ("garbage.pcap.gz", "not a pcap or pcapng capture"),
    ("only_unknown.pcapng", "block of unknown type 0x77"),
]


@pytest.mark.parametrize("name,words", CAPTURE_CASES, ids=[c[0] for c in CAPTURE_CASES])
def test_assess_bad_capture(bad, tmp_path, name, words):
    out = tmp_path / "r.json"
    one_line(run("assess", bad / name, "-q", "-f", "json", "-o", out), bad / name, words)
    assert not out.exists()


@pytest.mark.parametrize("name,words", [("empty_dir", "no capture files found"), ("header_only.pcap", "no packets"),
                                        ("empty.pcap", "empty file")])
@pytest.mark.parametrize("command", [("inventory", "-q", "--no-store"), ("intel", "plan"),
                                     ("site", "init", "-o", "{tmp}/site.yaml")])
def test_other_commands_agree_with_assess(bad, tmp_path, command, name, words):
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    at = 1 if args[0] == "inventory" else 2            # the capture follows the (sub)command
    one_line(run(*args[:at], bad / name, *args[at:]), bad / name, words)


def test_a_real_capture_with_no_packets():
    path = shared_path(EMPTY_DNP3)
    one_line(run("intel", "plan", path), path, "no packets")


@pytest.mark.parametrize("command,what", [
    (("intel", "import"), "cannot read intelligence file (a FIFO"),
    (("sbom", "check", "--no-store"), "cannot read SBOM (a FIFO"),
    (("change", "import"), "cannot read (a FIFO"),
])
def test_a_fifo_never_blocks(bad, tmp_path, command, what):
    args = [*command[:2], bad / "fifo.pcap", *command[2:], "--db", tmp_path / "s.db"]
    one_line(run(*args, timeout=30), bad / "fifo.pcap", what)


def test_assess_changes_fifo(bad):
    one_line(run("assess", shared_path(MODBUS), "-q", "-o", "-", "--changes", bad / "fifo.pcap", timeout=30),
             bad / "fifo.pcap", "a FIFO")


@pytest.mark.parametrize("command,words", [(("intel", "import"), "no intelligence files found"),
                                           (("sbom", "check", "--no-store"), "no SBOM files found")])
def test_empty_folders_of_other_inputs(bad, tmp_path, command, words):
    one_line(run(*command[:2], bad / "empty_dir", *command[2:], "--db", tmp_path / "s.db"), bad / "empty_dir", words)


def test_outputs_and_stores_in_missing_directories(tmp_path):
    missing = tmp_path / "nope"
    cap = shared_path(MODBUS)
    one_line(run("intel", "plan", cap, "-o", missing / "plan.csv"), missing / "plan.csv", "does not exist")
    for command in (("assess", cap, "-q", "-f", "json", "-o", tmp_path / "r.json"), ("intel", "plan", cap)):
        p = run(*command, "--db", missing / "s.db")      # before the work: no report, one line
        assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
        assert p.stderr.startswith(f"plantguard: error: store {missing / 's.db'}: directory {missing} does not exist")
    assert not (tmp_path / "r.json").exists() and not missing.exists()


@pytest.mark.parametrize("command", [("baseline", "show"), ("baseline", "export"), ("baseline", "accept"),
                                     ("export", "--sink", "file://{tmp}/e.json"), ("monitor", "--watch", "{tmp}")])
def test_monitor_state_of_a_mistyped_store(tmp_path, command):
    missing = tmp_path / "nope"
    p = run(*(str(a).replace("{tmp}", str(tmp_path)) for a in command), "--db", missing / "s.db", timeout=30)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "no monitor state here" in p.stderr or f"directory {missing} does not exist" in p.stderr, p.stderr
    assert not missing.exists()          # nothing made for a mistyped path
