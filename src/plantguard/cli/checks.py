"""`plantguard checks list`: every check assess runs, with its metadata (checks/listing.py):
a table (Rich at a terminal, TSV otherwise) or the JSON listing."""
from __future__ import annotations

import sys
from enum import Enum

import typer

from plantguard.cli import app

checks_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                         help="The checks assess runs: list them with their metadata.")
app.add_typer(checks_app, name="checks", help="The checks assess runs, with severity, practice, controls, remediation.")


class ListFormat(str, Enum):
    table = "table"
    json = "json"


@checks_app.command("list")
def checks_list(format: ListFormat = typer.Option(ListFormat.table, "--format", "-f",
                                                  help="table (Rich at a terminal, TSV otherwise) or json "
                                                       "(docs/cli.md, 'checks list')."),
                practice: str = typer.Option(None, "--practice", help="Only the checks of this practice.")):
    """Every check: id, title, severity, practice, controls, remediation (JSON: all metadata)."""
    from plantguard.checks.listing import listing
    from plantguard.util import tables
    doc = listing()
    if practice is not None:
        doc.checks = [c for c in doc.checks if c.practice == practice.strip().lower()]
    if format == ListFormat.json:
        sys.stdout.write(doc.model_dump_json(indent=2) + "\n")
        return
    tables.show((tables.Column("id", no_wrap=True), "title", tables.Column("severity", no_wrap=True),
                 tables.Column("practice", no_wrap=True), "site", "controls", "remediation"),
                [(c.id, c.title, c.severity, c.practice, "needed" if c.needs_site else "",
                  " ".join(f"{k}:{','.join(v)}" for k, v in sorted(c.controls.items())), c.remediation)
                 for c in doc.checks],
                title=f"{len(doc.checks)} checks")
