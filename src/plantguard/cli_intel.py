"""`plantguard intel ...` (import, status, plan) and `plantguard sbom check`. Exit codes: 0 fine,
1 something to act on (sbom check: an SBOM not complete), 2 usage or input error."""
from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

intel_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                        help="Vulnerability intelligence: CSAF advisories, CISA KEV, NVD CVE JSON, EPSS.")
sbom_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                       help="SBOMs: validate, check minimum elements, match components, apply VEX.")
out = Console()
err = Console(stderr=True)

DB_HELP = "Store (SQLite path or database URL); default $PLANTGUARD_DB or ./plantguard.db."


class OutFormat(str, Enum):
    text = "text"
    json = "json"


class PlanFormat(str, Enum):
    csv = "csv"
    json = "json"
    text = "text"


def _fail(msg: str) -> None:
    err.print(f"plantguard: error: {msg}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _engine(db: str | None):
    from plantguard.store.db import open_engine
    try:
        return open_engine(db)
    except Exception as exc:  # noqa: BLE001 - an unusable store is an input error
        _fail(f"cannot open store {db or 'plantguard.db'}: {exc}")


@intel_app.command("import")
def intel_import(
    paths: List[Path] = typer.Argument(..., help="CSAF files or folders, the KEV catalogue (JSON/CSV), NVD CVE JSON 2.0, an EPSS CSV."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    format: OutFormat = typer.Option(OutFormat.text, "--format", "-f"),
):
    """Load advisories and catalogues into the store (re-importing replaces)."""
    from plantguard.knowledge.intel import import_paths
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        _fail(f"{missing[0]}: no such file or folder")
    rep = import_paths(_engine(db), paths)
    if format == OutFormat.json:
        sys.stdout.write(json.dumps({"files": rep.files, "loaded": rep.loaded, "records": rep.records,
                                     "skipped": [{"path": p, "reason": r} for p, r in rep.skipped],
                                     "seconds": round(rep.seconds, 3)}, indent=2) + "\n")
    else:
        parts = ", ".join(f"{n:,} {k}" for k, n in rep.records.items()) or "nothing"
        out.print(f"imported {parts} from {rep.files - len(rep.skipped)} of {rep.files} files "
                  f"in {rep.seconds:.2f} s", markup=False, highlight=False, soft_wrap=True)
        for p, r in rep.skipped:
            err.print(f"skipped {p}: {r}", markup=False, highlight=False, soft_wrap=True)
    if rep.files and len(rep.skipped) == rep.files:
        raise typer.Exit(2)


@intel_app.command("status")
def intel_status_cmd(
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    format: OutFormat = typer.Option(OutFormat.text, "--format", "-f"),
):
    """What is loaded and how old it is."""
    from plantguard.knowledge.intel import intel_status
    st = intel_status(_engine(db))
    if format == OutFormat.json:
        sys.stdout.write(json.dumps(st, indent=2) + "\n")
        return
    if not st["kinds"]:
        out.print("no vulnerability intelligence loaded: run `plantguard intel import PATH`", markup=False)
        return
    t = Table("source", "documents", "records", "newest document", "age (days)", "imported")
    names = {"csaf": "CSAF advisories", "kev": "CISA KEV", "nvd": "NVD CVE", "epss": "EPSS"}
    for kind, k in sorted(st["kinds"].items()):
        t.add_row(names.get(kind, kind), f"{k['documents']:,}", f"{k['records']:,}", str(k["newest"] or "-"),
                  "-" if k["age_days"] is None else f"{k['age_days']:.0f}", str(k["imported"] or "-"))
    out.print(t)
    tt = st["totals"]
    out.print(f"{tt['advisories']:,} advisories, {tt['products']:,} products, {tt['cves']:,} CVEs, "
              f"{tt['kev']:,} KEV entries, {tt['epss']:,} EPSS scores", markup=False, highlight=False)
    stale = [names.get(k, k) for k, v in st["kinds"].items() if (v["age_days"] or 0) > 90]
    if stale:
        err.print(f"warning: older than 90 days: {', '.join(stale)}; import a fresh copy", markup=False)


@intel_app.command("plan")
def intel_plan(
    captures: List[Path] = typer.Argument(..., help="Capture files or directories."),
    site: Optional[Path] = typer.Option(None, "--site", help="Site file (maintenance windows, zones, criticality)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    format: PlanFormat = typer.Option(PlanFormat.csv, "--format", "-f"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write here (default: stdout)."),
):
    """The patch plan for the captured plant (CSV by default)."""
    from plantguard.assess import run_assessment
    from plantguard.capture.engine import analyze
    from plantguard.plan.patching import patch_plan_csv
    site_model = None
    if site is not None:
        from plantguard.site import SiteError, load_site
        try:
            site_model = load_site(site)
        except (SiteError, OSError) as exc:
            _fail(str(exc))
    try:
        result = analyze(captures)
    except Exception as exc:  # noqa: BLE001
        _fail(str(exc))
    contract = run_assessment(result, site_model, db=db or _default_db())
    plan = contract.get("patch_plan") or []
    if format == PlanFormat.csv:
        body = patch_plan_csv(plan)
    elif format == PlanFormat.json:
        body = json.dumps(plan, indent=2) + "\n"
    else:
        body = "".join(f"[{e['priority']}] {e['asset']} {e.get('product') or ''} {e.get('firmware') or ''}: "
                       f"{'; '.join(e.get('actions') or [])} (window: {(e.get('window') or {}).get('start', '-')})\n"
                       for e in plan) or "no vulnerable device found\n"
    if output is None:
        sys.stdout.write(body)
    else:
        output.write_text(body)


def _default_db() -> str | None:
    import os
    return os.environ.get("PLANTGUARD_DB") or ("plantguard.db" if Path("plantguard.db").exists() else None)


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
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        _fail(f"{missing[0]}: no such file or folder")
    db = db or _default_db()
    engine = _engine(db) if (db or store) else None
    index = IntelIndex.load(engine) if engine is not None and has_intel(engine) else None
    reports = check_files(files, index)
    if not reports:
        _fail("no SBOM files found")
    if store and engine is not None:
        store_reports(engine, reports)
    if format == OutFormat.json:
        sys.stdout.write(json.dumps([r.as_dict() for r in reports], indent=2) + "\n")
    else:
        for r in reports:
            head = f"{r.path}: {r.verdict.upper()}"
            if r.format:
                head += f" ({r.format} {r.spec_version or ''}".rstrip() + f", {r.components} components)"
            out.print(head, markup=False, highlight=False, soft_wrap=True)
            for reason in r.reasons[:25]:
                out.print(f"  - {reason}", markup=False, highlight=False, soft_wrap=True)
        if index is None:
            err.print("note: no advisories loaded, components were not matched (plantguard intel import PATH)",
                      markup=False)
    if any(r.verdict in ("invalid", "incomplete", "vulnerable") for r in reports):
        raise typer.Exit(1)
