"""Command line: parses, calls, prints. Exit codes: 0 fine, 1 findings at or above --fail-on,
2 usage or input error (one line on stderr, nothing half-written)."""
from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from plantguard import __version__
from plantguard.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="plantguard: passive security assessment of smart-manufacturing networks.")
out = Console()
err = Console(stderr=True)


def _mount_subapps() -> None:
    try:
        from plantguard.cli_intel import intel_app, sbom_app
    except ImportError:
        return
    app.add_typer(intel_app, name="intel", help="Vulnerability intelligence: import advisories, KEV, NVD, EPSS.")
    app.add_typer(sbom_app, name="sbom", help="Check SBOMs (CycloneDX, SPDX) against procurement needs and advisories.")


class InvFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class ReportFormat(str, Enum):
    html = "html"
    md = "md"
    json = "json"
    sarif = "sarif"
    csv = "csv"


def fail(msg: str) -> None:
    err.print(f"plantguard: error: {msg}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _progress_analyze(paths, quiet: bool):
    """Run the packet engine with a progress display on stderr (hidden when not a terminal)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from plantguard.capture.engine import analyze
    from plantguard.capture.formats import CaptureError
    show = not quiet and err.is_terminal
    try:
        if not show:
            result = analyze(paths)
        else:
            with Progress(SpinnerColumn(), TextColumn("[bold]reading captures"),
                          TextColumn("{task.completed:,} packets"), TimeElapsedColumn(),
                          console=err, transient=True) as prog:
                task = prog.add_task("read", total=None)
                result = analyze(paths, progress=lambda n: prog.advance(task, n))
    except CaptureError as exc:
        fail(str(exc))
    if result.captures and not any(c.packets for c in result.captures):
        first = next((w for c in result.captures for w in c.warnings), None)
        if first:   # nothing at all was readable: that is an input error, not an empty plant
            fail(first)
    for c in result.captures:
        for w in c.warnings:
            err.print(f"warning: {c.path}: {w}", markup=False, highlight=False, soft_wrap=True)
    return result


@app.command()
def inventory(
    captures: List[Path] = typer.Argument(..., help="Capture files or directories (pcap, pcapng, gzip)."),
    format: InvFormat = typer.Option(InvFormat.table, "--format", "-f", help="Output format."),
    db: Optional[str] = typer.Option(None, "--db", help="Store (SQLite path or database URL); default ./plantguard.db."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record this run in the store."),
    site: Optional[Path] = typer.Option(None, "--site", help="Site file (zones) to place assets in zones."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
):
    """List the devices seen in the captures: vendor, role, identity, services, zone."""
    from plantguard.inventory.build import build_assets
    site_model = _load_site(site)
    result = _progress_analyze(captures, quiet)
    notes: list[str] = []
    assets = build_assets(result, site_model, notes)
    caps = _captures(result)
    changes = None
    if not no_store:
        changes = _record(db, assets, "inventory", caps, site_model)
    if format == InvFormat.json:
        doc = {"plantguard": __version__, "captures": caps, "assets": [a.as_dict() for a in assets],
               "counters": result.counters, "notes": result.notes + notes}
        if changes is not None:
            doc["changes"] = changes.as_dict()
        out.file.write(json.dumps(doc, indent=2, default=str) + "\n")
    elif format == InvFormat.csv:
        out.file.write(_assets_csv(assets))
    else:
        _print_inventory_table(assets, caps, result, notes, changes)


def _load_site(path: Path | None):
    if path is None:
        return None
    from plantguard.site import SiteError, load_site
    try:
        return load_site(path)
    except SiteError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{path}: cannot read site file ({exc.strerror or exc})")


def _record(db, assets, kind, caps, site_model):
    from sqlalchemy.exc import SQLAlchemyError
    from plantguard.inventory.history import record_run
    from plantguard.store.db import open_engine
    try:
        engine = open_engine(db)
        return record_run(engine, assets, kind, caps, getattr(site_model, "name", None))
    except SQLAlchemyError as exc:
        fail(f"store {db or 'plantguard.db'}: {str(exc).splitlines()[0]}")


def _captures(result) -> list[dict]:
    return [c.as_dict() for c in result.captures]


def _ident_text(ident: dict) -> str:
    parts = [ident.get("vendor"), ident.get("product") or ident.get("model"), ident.get("firmware") and f"fw {ident['firmware']}",
             ident.get("serial") and f"s/n {ident['serial']}", ident.get("name")]
    return " · ".join(str(p) for p in parts if p)


def _print_inventory_table(assets, caps, result, notes, changes) -> None:
    t = Table(title=f"{len(assets)} assets from {sum(c['packets'] for c in caps):,} packets", show_lines=False)
    for col in ("address", "mac / vendor", "role", "zone", "identity", "services", "state"):
        t.add_column(col, overflow="fold")
    new = set(changes.new) if changes else set()
    changed = changes.changed if changes else {}
    for a in assets:
        svc = ", ".join(f"{s.name} {s.proto}/{s.port}" if s.name else f"{s.proto}/{s.port}"
                        for _, s in sorted(a.services.items())[:6])
        state = "new" if a.key in new else ("changed: " + ", ".join(changed[a.key]) if a.key in changed else "")
        t.add_row(a.ip or "-", f"{a.mac or '-'}\n{a.vendor or ''}".strip(), a.role, a.zone or "",
                  _ident_text(a.identity), svc, state)
    out.print(t)
    for n in result.notes + notes:
        err.print(f"note: {n}", markup=False, highlight=False)
    if changes is not None and changes.previous_run_id is not None:
        out.print(f"since run {changes.previous_run_id}: {len(changes.new)} new, {len(changes.changed)} changed, "
                  f"{len(changes.gone)} gone" + (f" ({', '.join(changes.gone[:10])})" if changes.gone else ""))


def _assets_csv(assets) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["ip", "mac", "vendor", "role", "zone", "vlans", "product", "firmware", "serial", "name",
                "protocols", "services", "first_seen", "last_seen"])
    for a in assets:
        d = a.as_dict()
        i = d["identity"]
        w.writerow([d["ip"], d["mac"], d["vendor"], d["role"], d["zone"], " ".join(map(str, d["vlans"])),
                    i.get("product") or i.get("model"), i.get("firmware"), i.get("serial"), i.get("name"),
                    " ".join(d["protocols"]), " ".join(f"{s['proto']}/{s['port']}" for s in d["services"]),
                    d["first_seen"], d["last_seen"]])
    return buf.getvalue()


@app.command()
def assess(
    captures: List[Path] = typer.Argument(..., help="Capture files or directories."),
    site: Optional[Path] = typer.Option(None, "--site", help="Site file: zones, conduits, egress, authorised stations."),
    format: ReportFormat = typer.Option(ReportFormat.html, "--format", "-f", help="Report format."),
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
    site_model = _load_site(site)
    result = _progress_analyze(captures, quiet)
    try:
        contract = run_assessment(result, site_model, db=db)
    except InputError as exc:
        fail(str(exc))
    body = render(contract, format.value)
    if output is None and format == ReportFormat.html:
        output = Path("plantguard-report.html")
    _write(body, output)
    s = contract["summary"]
    if output is not None:
        err.print(f"{s['assets']} assets, {s['failed']} failing findings "
                  f"({', '.join(f'{k} {v}' for k, v in s['findings'].items() if v)}); report: {output}",
                  markup=False, highlight=False)
    if fail_on is not None:
        worst = max((severity_rank(f["severity"]) for f in contract["findings"] if f["status"] == "fail"), default=-1)
        if worst >= severity_rank(fail_on):
            raise typer.Exit(1)


def _write(body, output: Path | None) -> None:
    data = body.encode() if isinstance(body, str) else body
    if output is None:
        sys.stdout.buffer.write(data)
        return
    tmp = output.with_name(output.name + ".part")
    try:
        tmp.write_bytes(data)
        tmp.replace(output)   # never leave a half-written report behind
    except OSError as exc:
        fail(f"{output}: cannot write report ({exc.strerror or exc})")


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("plantguard-demo"), "--out", help="Folder for the demo capture, site file and report."),
    format: ReportFormat = typer.Option(ReportFormat.html, "--format", "-f"),
):
    """Build the bundled demo plant capture, assess it with its site file, write the report."""
    from plantguard.assess import run_assessment
    from plantguard.capture.engine import analyze
    from plantguard.demo import build_demo
    from plantguard.report import render
    out_dir.mkdir(parents=True, exist_ok=True)
    pcap, site_path = build_demo(out_dir)
    site_model = _load_site(Path(site_path))
    result = analyze([pcap])
    contract = run_assessment(result, site_model, db=None)
    ext = {"md": "md", "json": "json", "sarif": "sarif", "csv": "csv"}.get(format.value, "html")
    report = out_dir / f"plantguard-report.{ext}"
    _write(render(contract, format.value), report)
    s = contract["summary"]
    for line in (f"demo plant: {pcap} ({contract['captures'][0]['packets']:,} packets), site file: {site_path}",
                 f"{s['assets']} assets, {s['failed']} failing and {s['passed']} passing findings",
                 f"report: {report}"):
        out.print(line, soft_wrap=True, markup=False, highlight=False)


@app.command()
def version():
    """Print the version."""
    out.print(f"plantguard {__version__}")


_mount_subapps()


def main() -> None:
    """Console entry point: an unexpected error is one line on stderr, not a traceback
    (PLANTGUARD_DEBUG=1 shows it)."""
    import os
    try:
        app()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("PLANTGUARD_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        err.print(f"plantguard: internal error: {type(exc).__name__}: {first} "
                  "(set PLANTGUARD_DEBUG=1 for details)", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
