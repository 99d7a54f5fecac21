"""`plantguard assess`: the captured plant against the good practices, as a report."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from plantguard.cli import app, err, fail, format_choice
from plantguard.cli.common import load_site, progress_analyze, write_report
from plantguard.errors import InputError


@app.command()
def assess(
    captures: List[Path] = typer.Argument(..., help="Capture files or directories."),
    site: Optional[Path] = typer.Option(None, "--site", help="Site file: zones, conduits, egress, authorised stations."),
    format: format_choice("assess") = typer.Option("html", "--format", "-f", help="Report format."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the report here (default: stdout; for html: plantguard-report.html)."),
    db: Optional[str] = typer.Option(None, "--db", help="Store with vulnerability intelligence (default ./plantguard.db if it exists)."),
    fail_on: Optional[str] = typer.Option(None, "--fail-on", help="Exit 1 if any failing finding is at or above this severity (low, medium, high, critical)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
):
    """Assess the captured plant against the good practices; write a report."""
    from plantguard.checks.base import SEVERITIES, severity_rank
    if fail_on is not None and fail_on not in SEVERITIES[1:]:
        fail(f"--fail-on must be one of {', '.join(SEVERITIES[1:])}, not {fail_on!r}")
    from plantguard.assess import run_assessment
    from plantguard.report import render
    from plantguard.report.registry import renderer
    site_model = load_site(site)
    result = progress_analyze(captures, quiet)
    try:
        contract = run_assessment(result, site_model, db=db)
    except InputError as exc:
        fail(str(exc))
    body = render(contract, format)
    if output is None and format == "html":     # a web page is not for the terminal
        output = Path(f"plantguard-report.{renderer(format, 'assess').extension}")
    write_report(body, output)
    s = contract["summary"]
    if output is not None:
        err.print(f"{s['assets']} assets, {s['failed']} failing findings "
                  f"({', '.join(f'{k} {v}' for k, v in s['findings'].items() if v)}); report: {output}",
                  markup=False, highlight=False)
    if fail_on is not None:
        worst = max((severity_rank(f["severity"]) for f in contract["findings"] if f["status"] == "fail"), default=-1)
        if worst >= severity_rank(fail_on):
            raise typer.Exit(1)
