"""`plantguard intel ...`: import advisories and catalogues, show what is loaded, the patch plan.
Exit codes: 0 fine, 2 usage or input error (every file given was unusable)."""
from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from plantguard.cli import fail, format_choice, out, say
from plantguard.cli.common import (BPF_HELP, DB_HELP, SUPPRESS_HELP, check_output, check_store_dir, default_db,
                                   input_paths, load_site, open_store, progress_analyze, suppressions,
                                   warn_suppressions, write_report)

intel_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                        help="Vulnerability intelligence: CSAF advisories, CISA KEV, NVD CVE JSON, EPSS.")

SOURCE_NAMES = {"csaf": "CSAF advisories", "kev": "CISA KEV", "nvd": "NVD CVE", "epss": "EPSS"}
STALE_DAYS = 90


class OutFormat(str, Enum):
    text = "text"
    json = "json"


@intel_app.command("import")
def intel_import(
    paths: List[Path] = typer.Argument(..., help="CSAF files or folders, the KEV catalogue (JSON/CSV), NVD CVE JSON 2.0, an EPSS CSV."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    format: OutFormat = typer.Option(OutFormat.text, "--format", "-f"),
):
    """Load advisories and catalogues into the store (re-importing replaces)."""
    from plantguard.knowledge.intel import SUFFIXES, expand_paths, import_paths
    input_paths(paths, "intelligence file")
    if not expand_paths(paths):   # an empty folder imports nothing: say so, not "imported nothing"
        fail(f"{paths[0]}: no intelligence files found (none named {', '.join(SUFFIXES)})")
    rep = import_paths(open_store(db), paths)
    if format == OutFormat.json:
        sys.stdout.write(json.dumps({"files": rep.files, "loaded": rep.loaded, "records": rep.records,
                                     "skipped": [{"path": p, "reason": r} for p, r in rep.skipped],
                                     "seconds": round(rep.seconds, 3)}, indent=2) + "\n")
    else:
        parts = ", ".join(f"{n:,} {k}" for k, n in rep.records.items()) or "nothing"
        say(f"imported {parts} from {rep.files - len(rep.skipped)} of {rep.files} files "
            f"in {rep.seconds:.2f} s", out)
        for p, r in rep.skipped:
            say(f"skipped {p}: {r}")
    if rep.files and len(rep.skipped) == rep.files:
        raise typer.Exit(2)


@intel_app.command("status")
def intel_status_cmd(
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    format: OutFormat = typer.Option(OutFormat.text, "--format", "-f"),
):
    """What is loaded and how old it is."""
    from plantguard.knowledge.intel import intel_status
    st = intel_status(open_store(db))
    if format == OutFormat.json:
        sys.stdout.write(json.dumps(st, indent=2) + "\n")
        return
    if not st["kinds"]:
        say("no vulnerability intelligence loaded: run `plantguard intel import PATH`", out)
        return
    _print_status(st)


def _print_status(st: dict) -> None:
    from plantguard.util import tables
    right = {"justify": "right"}
    tables.show(("source", tables.Column("documents", **right), tables.Column("records", **right),
                 tables.Column("newest document", no_wrap=True), tables.Column("age (days)", **right),
                 tables.Column("imported", no_wrap=True)),
                [(SOURCE_NAMES.get(kind, kind), f"{k['documents']:,}", f"{k['records']:,}", k["newest"] or "-",
                  "-" if k["age_days"] is None else f"{k['age_days']:.0f}", k["imported"] or "-")
                 for kind, k in sorted(st["kinds"].items())])
    tt = st["totals"]   # under the table at a terminal; on stderr when stdout is columns for a program
    say(f"{tt['advisories']:,} advisories, {tt['products']:,} products, {tt['cves']:,} CVEs, "
        f"{tt['kev']:,} KEV entries, {tt['epss']:,} EPSS scores", out if tables.is_terminal() else None)
    stale = [SOURCE_NAMES.get(k, k) for k, v in st["kinds"].items() if (v["age_days"] or 0) > STALE_DAYS]
    if stale:
        say(f"warning: older than {STALE_DAYS} days: {', '.join(stale)}; import a fresh copy")


@intel_app.command("plan")
def intel_plan(
    captures: List[Path] = typer.Argument(..., help="Capture files or directories."),
    site: Optional[Path] = typer.Option(None, "--site", help="Site file (maintenance windows, zones, criticality)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    format: format_choice("plan") = typer.Option("csv", "--format", "-f"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write here; - for stdout (default: stdout)."),
    bpf: Optional[str] = typer.Option(None, "--bpf", metavar="FILTER", help=BPF_HELP),
    suppress: List[Path] = typer.Option([], "--suppress", metavar="FILE", help=SUPPRESS_HELP + " Accepted advisories (vulns.*) leave the plan."),
):
    """The patch plan for the captured plant (CSV by default)."""
    from plantguard.assess import run_assessment
    from plantguard.report.registry import renderer
    check_output(output)
    check_store_dir(db)
    accepted = suppressions(suppress)
    site_model = load_site(site)
    result = progress_analyze(captures, quiet=True, bpf=bpf)   # the same checks and warnings as assess
    contract = run_assessment(result, site_model, db=db or default_db(), suppressions=accepted)
    warn_suppressions(contract)
    write_report(renderer(format, "plan").render(contract.get("patch_plan") or []), output)
