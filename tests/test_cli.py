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
    assert cli_formats("assess") == ["html", "md", "json", "sarif", "csv"]
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
