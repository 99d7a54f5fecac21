"""`plantguard sbom check`: a verdict per SBOM. Exit codes: 0 every SBOM complete, 1 an SBOM
invalid, incomplete or vulnerable, 2 usage or input error."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from plantguard.cli import fail, out, say
from plantguard.cli.common import DB_HELP, default_db, input_paths, open_store
from plantguard.cli.intel import OutFormat

sbom_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                       help="SBOMs: validate, check minimum elements, match components, apply VEX.")
MAX_REASONS = 25


@sbom_app.command("check")
def sbom_check(
    files: List[Path] = typer.Argument(..., help="CycloneDX (JSON/XML) or SPDX (JSON/tag-value) files or folders; VEX documents apply to the SBOMs given with them."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP + " Advisories there are matched; the results are kept for assess."),
    store: bool = typer.Option(True, "--store/--no-store", help="Keep the results in the store for assess."),
    format: OutFormat = typer.Option(OutFormat.text, "--format", "-f"),
):
    """A clear verdict per SBOM: invalid, incomplete, vulnerable, complete (or vex)."""
    from plantguard.knowledge.intel import has_intel
    from plantguard.knowledge.matching import IntelIndex
    from plantguard.sbom.check import check_files, store_reports
    input_paths(files, "SBOM")
    db = db or default_db()
    engine = open_store(db) if (db or store) else None
    index = IntelIndex.load(engine) if engine is not None and has_intel(engine) else None
    reports = check_files(files, index)
    if not reports:
        fail(f"{files[0]}: no SBOM files found")
    if store and engine is not None:
        store_reports(engine, reports)
    if format == OutFormat.json:
        sys.stdout.write(json.dumps([r.as_dict() for r in reports], indent=2) + "\n")
    else:
        _print_verdicts(reports, matched=index is not None)
    if any(r.verdict in ("invalid", "incomplete", "vulnerable") for r in reports):
        raise typer.Exit(1)


def _print_verdicts(reports, matched: bool) -> None:
    for r in reports:
        head = f"{r.path}: {r.verdict.upper()}"
        if r.format:
            head += f" ({r.format} {r.spec_version or ''}".rstrip() + f", {r.components} components)"
        say(head, out)
        for reason in r.reasons[:MAX_REASONS]:
            say(f"  - {reason}", out)
    if not matched:
        say("note: no advisories loaded, components were not matched (plantguard intel import PATH)")
