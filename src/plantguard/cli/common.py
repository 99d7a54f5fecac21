"""What several commands share: reading the site file and the captures, writing a report
without leaving half a file, opening the store."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from plantguard.cli import err, fail, say

STDOUT = "-"        # `-o -`: the report goes to standard output

DB_HELP = "Store (SQLite path or database URL); default $PLANTGUARD_DB or ./plantguard.db."


def load_site(path: Path | None):
    if path is None:
        return None
    from plantguard.site import SiteError
    from plantguard.site import load_site as _load
    try:
        return _load(path)
    except SiteError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{path}: cannot read site file ({exc.strerror or exc})")


def suppressions(paths) -> list:
    """The accepted risks of the --suppress files (suppress.py); a bad file ends the command."""
    from plantguard.suppress import SuppressionError, load_suppressions
    try:
        return load_suppressions(paths)
    except SuppressionError as exc:
        fail(str(exc))


SUPPRESS_HELP = ("Accepted risks (YAML / JSON list: check, assets, finding, reason, owner, expires, ticket): "
                 "the findings they match are reported apart and left out of the counts. Repeatable.")


def warn_suppressions(contract: dict) -> None:
    """One warning line per suppression that expired or matched nothing."""
    for use in contract.get("suppressions") or []:
        if use.get("status") != "active":
            from plantguard.suppress import message
            say(f"warning: {message(use)}")


MAX_MEMORY_HELP = ("Memory budget in MB, split across flows, decoder state and buffers, observations and "
                   "assets; past a limit the oldest are aggregated or dropped, counted and noted.")


def memory_budget(max_memory: int | None):
    """The run's Budget from --max-memory (None: the default budget)."""
    from plantguard.budget import DEFAULT, Budget
    if max_memory is None:
        return DEFAULT
    try:
        return Budget.from_mb(max_memory)
    except ValueError as exc:
        fail(str(exc))


JOBS_HELP = ("Processes analysing the captures, each a share of the packets (default: the number of "
             "cores; 1: all in this process). The result is the same.")


def progress_analyze(paths, quiet: bool, budget=None, jobs: int | None = 1):
    """Run the packet engine in `jobs` processes (None: one per core) with a progress display on
    stderr (hidden when not a terminal), within the memory budget (budget.Budget; None: the
    default)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from plantguard.capture.formats import CaptureError
    from plantguard.capture.parallel import WorkerFailed, analyze_parallel, default_jobs
    jobs = default_jobs() if jobs is None else jobs
    show = not quiet and err.is_terminal
    try:
        if not show:
            result = analyze_parallel(paths, jobs, budget=budget)
        else:
            with Progress(SpinnerColumn(), TextColumn("[bold]reading captures"),
                          TextColumn("{task.completed:,} packets"), TimeElapsedColumn(),
                          console=err, transient=True) as prog:
                task = prog.add_task("read", total=None)
                result = analyze_parallel(paths, jobs, progress=lambda n: prog.advance(task, n), budget=budget)
    except (CaptureError, WorkerFailed) as exc:
        fail(str(exc))
    if result.captures and not any(c.packets for c in result.captures):
        first = next((w for c in result.captures for w in c.warnings), None)
        if first:   # nothing at all was readable: that is an input error, not an empty plant
            fail(first)
    print_warnings(result.captures)
    return result


def print_warnings(captures) -> None:
    """The captures' warnings on stderr, one line per kind with a count and examples
    (util.warnings), never one line per damaged record."""
    from plantguard.util.warnings import summarize
    for c in captures:
        for line in summarize(c.warnings):
            say(f"warning: {c.path}: {line}")


def is_stdout(output: Path | None) -> bool:
    return output is None or str(output) == STDOUT


def check_output(output: Path | None, what: str = "report") -> None:
    """Before any work: the `what` can be written there (its folder exists, it is not a folder)."""
    if is_stdout(output):
        return
    parent = output.parent
    if not parent.is_dir():
        why = "is not a directory" if parent.exists() else "does not exist"
        fail(f"{output}: cannot write {what}: directory {parent} {why}")
    if output.is_dir():
        fail(f"{output}: cannot write {what}: it is a directory")


def write_report(body, output: Path | None) -> None:
    """To stdout (None or `-`), or to `output` atomically: written to a temporary file in the same
    directory, then renamed over `output`. On any error or Ctrl-C the temporary file is removed:
    there is the old file or the new one, never half a report."""
    data = body.encode("utf-8", "backslashreplace") if isinstance(body, str) else body
    if is_stdout(output):
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    check_output(output)
    write_atomically(output, data, "report")


def write_atomically(output: Path, data: bytes, what: str, *, replace: bool = True) -> None:
    """Write `output` whole or not at all: a temporary file in the same directory, then renamed
    over it (replace) or linked to it, which raises FileExistsError if it exists (not replace).
    Any other failure is one line naming the file; the temporary file never stays behind."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            new_file_mode(fh.fileno())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, output)
            tmp = None
        else:
            _link_new(tmp, output, data)
    except FileExistsError:
        raise
    except OSError as exc:
        fail(f"{output}: cannot write {what} ({exc.strerror or exc})")
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _link_new(tmp: str, output: Path, data: bytes) -> None:
    """Give the finished temporary file the name `output` only if nothing has it (FileExistsError)."""
    try:
        os.link(tmp, output)
    except FileExistsError:
        raise
    except OSError:                         # no hard links here: exclusive create instead
        with open(output, "xb") as fh:
            fh.write(data)


def new_file_mode(fd: int) -> None:
    """A new report gets the permissions any new file would (mkstemp makes it owner-only)."""
    if not hasattr(os, "fchmod"):
        return
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.fchmod(fd, 0o666 & ~mask)
    except OSError:
        pass


def open_store(db: str | None):
    from plantguard.store.db import StoreError, open_engine
    try:
        return open_engine(db)
    except StoreError as exc:      # already one line naming the store
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - an unusable store is an input error
        fail(f"cannot open store {db or 'plantguard.db'}: {exc}")


def default_db() -> str | None:
    return os.environ.get("PLANTGUARD_DB") or ("plantguard.db" if Path("plantguard.db").exists() else None)
