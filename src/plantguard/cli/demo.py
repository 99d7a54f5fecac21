"""`plantguard demo`: the bundled demo plant, assessed with its site file."""
from __future__ import annotations

from pathlib import Path

import typer

from plantguard.cli import app, fail, format_choice, out, say
from plantguard.cli.common import load_site, render_report, report_format, write_report


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("plantguard-demo"), "--out", help="Folder for the demo capture, site file and report."),
    format: format_choice("assess") = typer.Option("html", "--format", "-f"),
):
    """Build the bundled demo plant capture, assess it with its site file and its firewall
    configuration, write the report."""
    from plantguard.assess import run_assessment
    from plantguard.capture.engine import analyze
    from plantguard.demo import FIREWALL_NAME, build_demo
    chosen = report_format(format)      # before the work: a PDF needs Chromium
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        pcap, site_path = build_demo(out_dir)
    except OSError as exc:      # a file in the way, no permission, disk full: one line, not a traceback
        fail(f"{out_dir}: cannot write the demo plant there ({exc.strerror or exc})")
    site_model = load_site(Path(site_path))
    result = analyze([pcap])
    contract = run_assessment(result, site_model, db=None, options=_firewall(out_dir / FIREWALL_NAME))
    report = out_dir / f"plantguard-report.{chosen.extension}"
    write_report(render_report(contract, format), report)
    s = contract["summary"]
    for line in (f"demo plant: {pcap} ({contract['captures'][0]['packets']:,} packets), site file: {site_path}",
                 f"{s['assets']} assets, {s['failed']} failing and {s['passed']} passing findings",
                 f"report: {report}"):
        say(line, out)


def _firewall(path: Path) -> dict:
    """The assessment's options with the demo firewall parsed; none (the firewall.* checks say
    they did not run) when this build cannot read it."""
    from plantguard.checks.firewall import FIREWALL_OPTION
    from plantguard.errors import InputError
    from plantguard.firewall.load import load
    try:
        return {FIREWALL_OPTION: [load(path)]}
    except InputError as exc:
        say(f"plantguard: note: {exc}; the firewall checks are not run")
        return {}
