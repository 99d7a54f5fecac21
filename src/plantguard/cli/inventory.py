"""`plantguard inventory`: the devices seen in the captures, recorded in the store."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import typer

from plantguard.cli import app, fail, format_choice, out, say
from plantguard.cli.common import (BPF_HELP, JOBS_HELP, MAX_MEMORY_HELP, check_output, is_stdout, load_site, memory_budget, progress_analyze,
                                   write_report)

log = logging.getLogger("plantguard.cli.inventory")


@app.command()
def inventory(
    captures: List[Path] = typer.Argument(..., help="Capture files or directories (pcap, pcapng, gzip)."),
    format: format_choice("inventory") = typer.Option("table", "--format", "-f", help="Output format."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the inventory here; - for stdout (the default)."),
    db: Optional[str] = typer.Option(None, "--db", help="Store (SQLite path or database URL); default ./plantguard.db."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record this run in the store."),
    site: Optional[Path] = typer.Option(None, "--site", help="Site file (zones) to place assets in zones."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    max_memory: Optional[int] = typer.Option(None, "--max-memory", metavar="MB", help=MAX_MEMORY_HELP),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, metavar="N", help=JOBS_HELP),
    bpf: Optional[str] = typer.Option(None, "--bpf", metavar="FILTER", help=BPF_HELP),
):
    """List the devices seen in the captures: vendor, role, identity, services, zone."""
    from plantguard.inventory.build import build_assets
    from plantguard.report.inventory import InventoryReport
    from plantguard.report.registry import renderer
    from plantguard.util.warnings import summarized_captures
    check_output(output, "inventory")           # before the work, not after it
    budget = memory_budget(max_memory)
    site_model = load_site(site)
    result = progress_analyze(captures, quiet, budget, jobs, bpf)
    notes: list[str] = []
    assets = build_assets(result, site_model, notes)
    log.info("inventory: %d assets", len(assets))
    caps = summarized_captures(c.as_dict() for c in result.captures)   # warnings by kind, not per record
    changes, store_error = (None, None) if no_store else _record(db, assets, "inventory", caps, site_model)
    report = InventoryReport(assets=assets, captures=caps, counters=result.counters,
                             notes=result.notes + notes, changes=changes)
    write_report(renderer(format, "inventory").render(report), output)
    if format == "table" and is_stdout(output):   # for a person: the notes, then what changed since the last run
        _tell(report)
    if store_error is not None:   # the inventory above is complete; only this run is not recorded
        fail(store_error)


def _tell(report) -> None:
    from plantguard.report.inventory_table import changes_line
    for n in report.notes:
        say(f"note: {n}")
    from plantguard.util.tables import is_terminal
    line = changes_line(report.changes)
    if line is not None:    # under the table at a terminal; on stderr when stdout is TSV for a program
        say(line, out if is_terminal() else None)


def _record(db, assets, kind, caps, site_model):
    """(changes, None) once the run is stored, else (None, the store failure as one line): the
    inventory is written either way, then a failure ends the command with exit code 2."""
    from sqlalchemy.exc import SQLAlchemyError
    from plantguard.inventory.active import merge_active
    from plantguard.inventory.history import record_run
    from plantguard.store.db import StoreError, open_engine, store_label
    try:
        engine = open_engine(db)
        merge_active(assets, engine, site_model)          # identity learnt by plantguard probe
        return record_run(engine, assets, kind, caps, getattr(site_model, "name", None)), None
    except StoreError as exc:
        return None, f"{exc}; this run was not recorded"
    except SQLAlchemyError as exc:
        return None, f"store {store_label(db)}: {str(exc).splitlines()[0]}; this run was not recorded"
