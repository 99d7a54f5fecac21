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


# --- the --format choices come from the renderer registry (report.registry) ---

FORMAT_OPTIONS = [(["assess"], "assess"), (["demo"], "assess"), (["inventory"], "inventory"),
                  (["intel", "plan"], "plan")]


def cli_formats(*command) -> list[str]:
    """The --format choices a command's help offers."""
    import re
    from typer.testing import CliRunner
    from plantguard.cli import app
    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "240"})
    assert res.exit_code == 0, res.output
    return re.search(r"--format\s+-f\s+<([^>]+)>", res.stdout).group(1).split("|")


@pytest.mark.parametrize("command,target", FORMAT_OPTIONS)
def test_format_choices_are_the_registry(command, target):
    from plantguard.report.registry import names
    assert cli_formats(*command) == list(names(target))


def test_builtin_format_choices_and_defaults():
    assert cli_formats("assess") == ["html", "md", "json", "sarif", "csv", "pdf"]
    assert cli_formats("inventory") == ["table", "json", "csv"]
    assert cli_formats("intel", "plan") == ["csv", "json", "text"]


@pytest.fixture
def toy_renderer():
    from plantguard.report.registry import Renderer, register, unregister
    toy = register(Renderer("toy", "toy", "text/plain",
                            lambda c: f"toy report: {c['summary']['assets']} assets\n", ("assess",)))
    yield toy
    unregister("toy")


def test_a_renderer_registered_at_run_time_is_a_format(tmp_path, toy_renderer):
    from typer.testing import CliRunner
    from plantguard.cli import app
    from plantguard.demo import build_demo
    from plantguard.report import FORMATS
    pcap, site = build_demo(tmp_path / "plant")
    assert "toy" in FORMATS and "toy" in cli_formats("assess") and "toy" in cli_formats("demo")
    assert "toy" not in cli_formats("inventory")
    res = CliRunner().invoke(app, ["assess", str(pcap), "--site", str(site), "--format", "toy", "-q"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("toy report: ") and res.stdout.endswith(" assets\n")
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "-f", "toy"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "d" / "plantguard-report.toy").read_text().startswith("toy report: ")


def test_an_unregistered_format_is_refused(tmp_path, toy_renderer):
    from typer.testing import CliRunner
    from plantguard.cli import app
    from plantguard.report.registry import unregister
    unregister("toy")
    res = CliRunner().invoke(app, ["assess", str(tmp_path / "x.pcap"), "-f", "toy"], env={"COLUMNS": "240"})
    assert res.exit_code == 2 and "'toy' is not one of 'html', 'md', 'json', 'sarif', 'csv'" in res.output


def test_a_broken_subcommand_fails_loudly():
    """No command silently disappears from the CLI when its module cannot be imported."""
    p = subprocess.run([sys.executable, "-c", "import sys; sys.modules['plantguard.cli.sbom'] = None; "
                        "from plantguard.cli import main; main()", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "ModuleNotFoundError" in p.stderr and "plantguard.cli.sbom" in p.stderr


def test_console_script_entry_point_is_the_package_main():
    from importlib.metadata import entry_points
    from plantguard.cli import main
    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "plantguard"]
    assert ep.value == "plantguard.cli:main" and ep.load() is main


# --- command-line conventions -------------------------------------------------------------------

def demo_capture(tmp_path):
    from plantguard.demo import build_demo
    pcap, site = build_demo(tmp_path / "plant")
    return pcap, site


@pytest.mark.parametrize("args,words", [
    (["assess", "x.pcap", "--bogus"], ["No such option: --bogus", "see '", "assess --help'"]),
    (["assess"], ["Missing argument", "assess --help'"]),
    (["inventory", "x.pcap", "-f", "pdf"], ["'pdf' is not one of", "inventory --help'"]),
    (["bogus"], ["No such command 'bogus'", "--help'"]),
    (["intel", "plan", "x.pcap", "--format", "xml"], ["'xml' is not one of", "intel plan --help'"]),
])
def test_bad_options_are_one_line_naming_help(tmp_path, args, words):
    """Not Click's usage box: one line, what is wrong, where to look; exit code 2."""
    p = run(*args, cwd=tmp_path)
    assert_one_line_error(p, "plantguard: error:", *words)
    assert "Usage:" not in p.stderr and "╭" not in p.stderr and p.stdout == ""


def test_no_command_shows_the_help():
    p = run()
    assert p.returncode == 2 and "Commands" in p.stdout and "Traceback" not in p.stderr


@pytest.mark.parametrize("level", ["High", "HIGH", "high", " critical "])
def test_fail_on_is_case_insensitive(tmp_path, level):
    pcap, site = demo_capture(tmp_path)
    p = run("assess", pcap, "--site", site, "-f", "json", "-o", tmp_path / "r.json", "--fail-on", level, "-q")
    assert p.returncode == 1, p.stderr          # the demo plant has high and critical findings
    assert (tmp_path / "r.json").exists()


def test_dash_output_is_stdout(tmp_path):
    pcap, site = demo_capture(tmp_path)
    p = run("assess", pcap, "--site", site, "-f", "html", "-o", "-", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("<!DOCTYPE html>") and not (tmp_path / "-").exists()
    assert not list(tmp_path.glob("plantguard-report.*"))


def test_missing_output_directory_is_one_line_before_any_work(tmp_path):
    pcap, site = demo_capture(tmp_path)
    out = tmp_path / "no" / "such" / "dir" / "r.html"
    p = run("assess", pcap, "--site", site, "-o", out, "-q")
    assert_one_line_error(p, str(out.parent), "does not exist")
    assert "internal error" not in p.stderr
    p = run("assess", pcap, "--site", site, "-o", tmp_path, "-q")
    assert_one_line_error(p, "is a directory")
    p = run("intel", "plan", pcap, "-o", out)
    assert_one_line_error(p, str(out.parent), "does not exist")


def test_report_is_written_atomically(tmp_path, monkeypatch):
    """The report appears whole or not at all: an error or Ctrl-C while writing leaves the old
    file as it was and no temporary file behind."""
    import os
    import typer
    from plantguard.cli.common import write_report
    out = tmp_path / "report.html"
    write_report("first", out)
    assert out.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask        # as any new file, not mkstemp's 0600

    def interrupted(*a):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report("second", out)
    assert out.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]

    def disk_full(*a):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(typer.Exit):
        write_report("third", out)
    assert out.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def _pcapng_with_bad_packets(n: int) -> bytes:
    """One interface, one good packet, then n packets naming an interface that does not exist."""
    import struct
    from support.packets import pcapng_block, tcp_frame
    e = "<"
    out = [pcapng_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)),
           pcapng_block(e, 1, struct.pack(e + "HHI", 1, 0, 262144) + struct.pack(e + "HH", 0, 0))]
    frame = tcp_frame("10.0.0.1", "10.0.0.2", 40000, 502, b"x")
    t = 1_700_000_000 * 1_000_000
    for i in range(n + 1):
        ifid = 0 if i == 0 else 3
        out.append(pcapng_block(e, 6, struct.pack(e + "IIIII", ifid, (t + i) >> 32, (t + i) & 0xFFFFFFFF,
                                            len(frame), len(frame)) + frame))
    return b"".join(out)


def test_warnings_are_summarised_by_kind(tmp_path):
    """2,000 damaged records: a few lines with the count, not 2,000 lines (CLI and reports)."""
    cap = tmp_path / "bad.pcapng"
    cap.write_bytes(_pcapng_with_bad_packets(2000))
    p = run("assess", cap, "-f", "json", "-o", tmp_path / "r.json", "-q")
    assert p.returncode == 0, p.stderr
    warn = [ln for ln in p.stderr.splitlines() if ln.startswith("warning:")]
    assert 1 <= len(warn) <= 4 and "2,000" in p.stderr, p.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    ws = doc["captures"][0]["warnings"]
    assert 1 <= len(ws) <= 4 and "2,000" in " ".join(ws)
    p = run("assess", cap, "-f", "html", "-o", tmp_path / "r.html", "-q")
    assert p.returncode == 0 and (tmp_path / "r.html").read_text().count("unknown interface") <= 8
    p = run("inventory", cap, "--no-store", "-f", "json")
    ws = json.loads(p.stdout)["captures"][0]["warnings"]
    assert 1 <= len(ws) <= 4 and "2,000" in " ".join(ws)


def test_summarize_groups_by_kind_with_counts_and_examples():
    from plantguard.util.warnings import group_warnings, summarize
    msgs = [f"packet for unknown interface 3 at byte {i}" for i in range(100, 600)] + ["truncated block at byte 7"]
    g, _ = group_warnings(msgs)
    assert (g.kind, g.count, len(g.examples)) == ("packet for unknown interface N at byte N", 500, 3)
    assert summarize(msgs) == [f"packet for unknown interface 3 at byte 100 (500 times, e.g. {'; '.join(msgs[:3])})",
                               "truncated block at byte 7"]
    assert summarize(summarize(msgs)) == summarize(msgs) and summarize([]) == []
    many = [f"kind {chr(65 + i // 26)}{chr(65 + i % 26)} at byte {i}" for i in range(40)]
    lines = summarize(many)
    assert len(lines) == 21 and lines[-1] == "20 more warnings of 20 other kinds" and summarize(lines) == lines


def test_demo_into_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    assert_one_line_error(run("demo", "--out", tmp_path / "taken"), "taken", "cannot write the demo plant")
    assert_one_line_error(run("demo", "--out", tmp_path / "taken" / "sub"), "Not a directory")
