"""What several commands share: reading the site file and the captures, writing a report
without leaving half a file, opening the store."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from plantguard.cli import err, fail

DB_HELP = "Store (SQLite path or database URL); default $PLANTGUARD_DB or ./plantguard.db."


def load_site(path: Path | None):
    if path is None:
        return None
    from plantguard.site import SiteError, load_site as _load
    try:
        return _load(path)
    except SiteError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{path}: cannot read site file ({exc.strerror or exc})")


def progress_analyze(paths, quiet: bool):
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


def write_report(body, output: Path | None) -> None:
    """To stdout, or to `output` through a temporary file (never a half-written report)."""
    data = body.encode() if isinstance(body, str) else body
    if output is None:
        sys.stdout.buffer.write(data)
        return
    tmp = output.with_name(output.name + ".part")
    try:
        tmp.write_bytes(data)
        tmp.replace(output)
    except OSError as exc:
        fail(f"{output}: cannot write report ({exc.strerror or exc})")


def open_store(db: str | None):
    from plantguard.store.db import open_engine
    try:
        return open_engine(db)
    except Exception as exc:  # noqa: BLE001 - an unusable store is an input error
        fail(f"cannot open store {db or 'plantguard.db'}: {exc}")


def default_db() -> str | None:
    return os.environ.get("PLANTGUARD_DB") or ("plantguard.db" if Path("plantguard.db").exists() else None)
