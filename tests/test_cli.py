"""The command line as a user meets it: one-line errors with exit code 2, never a traceback."""
import json
import subprocess
import sys

import pytest

from conftest import shared_path


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "plantguard", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def assert_one_line_error(p, *words):
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    for w in words:
        assert w in lines[0]


def test_missing_capture_is_a_one_line_error(tmp_path):
    assert_one_line_error(run("inventory", tmp_path / "nope.pcap", "--no-store"), "nope.pcap", "no such file")


def test_non_capture_file_is_a_one_line_error(tmp_path):
    f = tmp_path / "notes.pcap"
    f.write_text("this is not a capture\n")
    assert_one_line_error(run("inventory", f, "--no-store"), "notes.pcap", "not a pcap")


def test_truncated_capture_keeps_what_is_readable(tmp_path):
    src = shared_path("pcaps/icsnpp-enip/enip_cip_example.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(src[: len(src) // 2 + 7])
    p = run("inventory", cut, "--no-store", "--format", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    cap = doc["captures"][0]
    assert 0 < cap["packets"] < 776 and any("truncated" in w for w in cap["warnings"])
    assert doc["assets"]


def test_inventory_records_runs_and_reports_changes(tmp_path):
    cap = shared_path("pcaps/icsnpp-enip/enip_cip_example.pcap")
    db = tmp_path / "pg.db"
    first = json.loads(run("inventory", cap, "--db", db, "-f", "json").stdout)
    second = json.loads(run("inventory", cap, "--db", db, "-f", "json").stdout)
    assert first["changes"]["previous_run"] is None
    assert second["changes"]["previous_run"] == first["changes"]["run"]
    assert second["changes"]["new"] == [] and second["changes"]["gone"] == []


def test_inventory_csv_has_a_row_per_asset(tmp_path):
    cap = shared_path("pcaps/icsnpp-enip/enip_cip_example.pcap")
    p = run("inventory", cap, "--no-store", "-f", "csv")
    rows = p.stdout.strip().splitlines()
    n_assets = len(json.loads(run("inventory", cap, "--no-store", "-f", "json").stdout)["assets"])
    assert rows[0].startswith("ip,mac,vendor,role") and len(rows) == 1 + n_assets >= 1 + 6


def test_bad_fail_on_is_a_usage_error(tmp_path):
    cap = shared_path("pcaps/icsnpp-enip/enip_cip_example.pcap")
    assert_one_line_error(run("assess", cap, "--fail-on", "bogus", "-f", "json"), "--fail-on")
