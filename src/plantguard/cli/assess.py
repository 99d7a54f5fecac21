"""`plantguard assess`: the captured plant against the good practices, as a report."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import typer

from plantguard.cli import app, fail, format_choice, say
from plantguard.cli.common import (BPF_HELP, JOBS_HELP, MAX_MEMORY_HELP, SUPPRESS_HELP, check_output,
                                   check_store_dir, is_stdout, load_site, memory_budget, progress_analyze,
                                   render_report, report_format, stage, suppressions, warn_suppressions,
                                   write_report)
from plantguard.errors import InputError

log = logging.getLogger("plantguard.cli.assess")


@app.command()
def assess(
    captures: List[Path] = typer.Argument(..., help="Capture files or directories."),
    site: Optional[Path] = typer.Option(None, "--site", help="Site file: zones, conduits, egress, authorised stations."),
    format: format_choice("assess") = typer.Option("html", "--format", "-f", help="Report format."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the report here; - for stdout (default: stdout; for html and pdf: plantguard-report.html or .pdf)."),
    db: Optional[str] = typer.Option(None, "--db", help="Store with vulnerability intelligence (default ./plantguard.db if it exists) and, when given, change tickets."),
    changes: List[Path] = typer.Option([], "--changes", help="Change tickets (YAML / JSON list, or a CSV export); with tickets in use, a PLC change needs one. Repeatable."),
    suppress: List[Path] = typer.Option([], "--suppress", metavar="FILE", help=SUPPRESS_HELP),
    fail_on: Optional[str] = typer.Option(None, "--fail-on", help="Exit 1 if any failing finding is at or above this severity (low, medium, high, critical; any case)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    max_memory: Optional[int] = typer.Option(None, "--max-memory", metavar="MB", help=MAX_MEMORY_HELP),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, metavar="N", help=JOBS_HELP),
    bpf: Optional[str] = typer.Option(None, "--bpf", metavar="FILTER", help=BPF_HELP),
    firewall: List[Path] = typer.Option([], "--firewall", metavar="CONFIG", help="A firewall configuration to judge with the firewall.* checks (see `plantguard firewall check`). Repeatable."),
):
    """Assess the captured plant against the good practices; write a report."""
    from plantguard.checks.base import SEVERITIES, severity_rank
    if fail_on is not None:
        if fail_on.strip().lower() not in SEVERITIES[1:]:
            fail(f"--fail-on must be one of {', '.join(SEVERITIES[1:])}, not {fail_on!r}")
        fail_on = fail_on.strip().lower()
    from plantguard.assess import run_assessment
    chosen = report_format(format)              # before the work: a PDF needs Chromium
    if output is None and chosen.file_only:     # a web page or a PDF is not for the terminal
        output = Path(f"plantguard-report.{chosen.extension}")
    check_output(output)                        # before the work, not after it
    check_store_dir(db)
    budget = memory_budget(max_memory)
    site_model = load_site(site)
    tickets = _tickets(changes, db)
    if firewall:
        from plantguard.checks.firewall import FIREWALL_OPTION
        from plantguard.cli.firewall import load_rulesets
        tickets = {**tickets, FIREWALL_OPTION: load_rulesets(firewall)}
    accepted = suppressions(suppress)
    result = progress_analyze(captures, quiet, budget, jobs, bpf)
    if firewall:                                # lines a parser could not model are said, not dropped
        from plantguard.cli.firewall import unread_notes
        result.notes.extend(unread_notes(tickets[FIREWALL_OPTION]))
    from plantguard.store.db import IN_MEMORY, StoreError
    store_error = None
    try:
        with stage("checks"):
            contract = run_assessment(result, site_model, db=db, options=tickets, suppressions=accepted)
    except StoreError as exc:   # the report is still written, with what needs the store not run
        store_error = str(exc)
        contract = run_assessment(result, site_model, db=IN_MEMORY, options=tickets,
                                  suppressions=accepted)
    except InputError as exc:
        fail(str(exc))
    store_error = _store_not_run(contract, store_error)
    s = contract["summary"]
    log.info("assessment: %s assets, %s findings (%s failing), %s checks not run", s["assets"],
             len(contract["findings"]), s["failed"], len(contract.get("checks_not_run") or []))
    with stage(f"rendering {format}"):
        body = render_report(contract, format)
    write_report(body, output)
    warn_suppressions(contract)
    if not is_stdout(output):
        accepted_note = f", {s['suppressed']} accepted risks" if s.get("suppressed") else ""
        say(f"{s['assets']} assets, {s['failed']} failing findings "
            f"({', '.join(f'{k} {v}' for k, v in s['findings'].items() if v)}){accepted_note}; report: {output}")
    if store_error is not None:   # after the report: it is complete but for the store's part
        fail(store_error)
    if fail_on is not None:
        worst = max((severity_rank(f["severity"]) for f in contract["findings"]
                     if f["status"] == "fail" and not f.get("suppressed")), default=-1)
        if worst >= severity_rank(fail_on):
            raise typer.Exit(1)


def _tickets(files: list[Path], db: str | None) -> dict:
    """The assessment's options holding the change tickets of the files and, with --db, of the
    store; no option (today's verdicts) when no file is given and the store holds none. A store
    that cannot be read is left to the assessment, which reports it."""
    from plantguard.changes.store import stored_tickets
    from plantguard.changes.tickets import TicketError, load_tickets
    from plantguard.changes.timeline import TICKETS_OPTION
    from plantguard.store.db import StoreError, open_engine, store_label
    tickets = []
    for f in files:
        try:
            tickets += load_tickets(f)
        except TicketError as exc:
            fail(str(exc))
    stored = []
    if db is not None:
        try:
            engine = open_engine(db)
            try:
                stored = stored_tickets(engine, store_label(db))
            finally:
                engine.dispose()
        except StoreError:
            pass
    return {TICKETS_OPTION: tickets + stored} if files or stored else {}


def _store_not_run(contract: dict, store_error: str | None) -> str | None:
    """Checks skipped because the store could not be read say so, in checks_not_run and the notes;
    returns the store failure (from the open, or from a check reading the store), if any."""
    from plantguard.knowledge.assess_intel import NO_INTEL_REASON
    prefix = "internal error: StoreError: "
    for nr in contract.get("checks_not_run") or []:
        if nr.get("reason", "").startswith(prefix):
            nr["reason"] = nr["reason"][len(prefix):]
            store_error = store_error or nr["reason"]
        elif store_error is not None and nr.get("reason") == NO_INTEL_REASON:
            nr["reason"] = store_error
    if store_error is not None:
        contract.setdefault("notes", []).append(f"{store_error}: the checks that read the store were not run")
    return store_error
