"""What several commands share: reading the site file and the captures, writing a report
without leaving half a file, opening the store."""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from plantguard.cli import err, fail, say

log = logging.getLogger("plantguard.cli")

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


BPF_HELP = ("Analyse only the packets this filter matches (tcpdump syntax, a subset: host, net, port, "
            "portrange, tcp, udp, icmp, ip, ip6, arp, vlan, ether host/proto, and/or/not; docs/cli.md).")


def packet_filter(text: str | None):
    """--bpf: the compiled filter, None without one; a filter that cannot be used is exit 2."""
    from plantguard.capture.bpf import FilterError, compile_filter
    try:
        return compile_filter(text)
    except FilterError as exc:
        fail(str(exc))


def progress_analyze(paths, quiet: bool, budget=None, jobs: int | None = 1, bpf: str | None = None):
    """Run the packet engine in `jobs` processes (None: one per core) with a progress display on
    stderr (hidden when not a terminal), within the memory budget (budget.Budget; None: the
    default), on the packets the --bpf filter keeps (None: all). A capture argument `-` is read
    from standard input (cli.stdin_capture), and named `<stdin>`."""
    from plantguard.cli.stdin_capture import STDIN_NAME, rename, spooled
    pf = packet_filter(bpf)
    with spooled(paths) as (files, tmp):
        def shown(text: str) -> str:
            return text.replace(tmp, STDIN_NAME) if tmp else text
        result = _analyze(files, quiet, budget, jobs, pf, shown)
        rename(result, tmp)
    # a filter that matched nothing read the captures well: an empty result, not an input error
    return readable(result, filtered=pf is not None and bool(pf.read))


def _analyze(paths, quiet: bool, budget, jobs: int | None, pf, shown):
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from plantguard.capture.formats import CaptureError
    from plantguard.capture.parallel import WorkerFailed, analyze_parallel, default_jobs
    from plantguard.cli.verbosity import is_quiet
    jobs = default_jobs() if jobs is None else jobs
    show = not quiet and not is_quiet() and err.is_terminal
    log.info("reading %d capture argument(s) with %d job(s)", len(paths), jobs)
    started = time.perf_counter()
    try:
        if not show:
            result = analyze_parallel(paths, jobs, budget=budget, packet_filter=pf)
        else:
            with Progress(SpinnerColumn(), TextColumn("[bold]reading captures"),
                          TextColumn("{task.completed:,} packets"), TimeElapsedColumn(),
                          console=err, transient=True) as prog:
                task = prog.add_task("read", total=None)
                result = analyze_parallel(paths, jobs, progress=lambda n: prog.advance(task, n), budget=budget,
                                          packet_filter=pf)
    except (CaptureError, WorkerFailed) as exc:
        fail(shown(str(exc)))
    log.info("captures read: %d files, %s packets, %s flows, %s observations in %.2f s",
             len(result.captures), f"{sum(c.packets for c in result.captures):,}", f"{len(result.flows):,}",
             f"{len(result.observations):,}", time.perf_counter() - started)
    if pf is not None:
        result.notes.append(pf.note())
        log.info(pf.note())
    for c in result.captures:
        log.debug("capture %s: %s packets, %s bytes", c.path, f"{c.packets:,}", f"{c.bytes:,}")
    log.debug("engine counters: %s", ", ".join(f"{k} {v:,}" for k, v in result.counters.items() if v))
    return result


@contextmanager
def stage(name: str):
    """Log (INFO, -v) how long one stage of a command took."""
    started = time.perf_counter()
    yield
    log.info("%s: %.2f s", name, time.perf_counter() - started)

def readable(result, filtered: bool = False):
    """The analysed captures, once every command has checked them the same way: when no capture
    gave a single packet, one line naming the first capture and why (exit 2: an input error,
    not an empty plant; `filtered`: a packet filter kept none of the packets read, which is not);
    else their warnings on stderr. Returns the result."""
    if result.captures and not filtered and not any(c.packets for c in result.captures):
        c = result.captures[0]
        why = next((w for c in result.captures for w in c.warnings), "no packets")
        fail(why if why.startswith(f"{c.path}:") else f"{c.path}: {why}")
    print_warnings(result.captures, result.counters)
    return result


def input_paths(paths, what: str) -> None:
    """Before any work: every path given exists and is a regular file or a directory (a FIFO
    would block the read for ever, a device would never end), else one line naming it."""
    import stat
    from plantguard.capture.sources import file_kind
    for p in paths:
        try:
            mode = os.stat(p).st_mode
        except FileNotFoundError:
            fail(f"{p}: no such file or folder")
        except OSError as exc:
            fail(f"{p}: cannot read {what} ({exc.strerror or exc})")
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            fail(f"{p}: cannot read {what} ({file_kind(mode)}, not a regular file)")


def print_warnings(captures, counters: dict | None = None) -> None:
    """The captures' warnings on stderr, one line per kind with a count and examples
    (util.warnings), never one line per damaged record; then what the run's counters say was
    not decoded or not kept (capture.unread), one line per kind."""
    from plantguard.capture.unread import line, run_warnings
    from plantguard.util.warnings import summarize
    for c in captures:
        for text in summarize(c.warnings):
            say(f"warning: {c.path}: {text}")
    per_capture = {k for c in captures for k in c.warning_counts}
    for w in run_warnings(captures, counters or {}):
        if w["kind"] not in per_capture:
            say(f"warning: {line(w)}")


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


def report_format(fmt: str):
    """The assess renderer `fmt`, checked before the work (a PDF needs Chromium): one line, exit 2."""
    from plantguard.report.registry import RenderError, renderer
    chosen = renderer(fmt, "assess")
    if chosen.check is not None:
        try:
            chosen.check()
        except RenderError as exc:
            fail(str(exc))
    return chosen


def render_report(contract: dict, fmt: str) -> str | bytes:
    """The report of `contract` in `fmt`; a renderer that cannot render here is one line, exit 2."""
    from plantguard.report import render
    from plantguard.report.registry import RenderError
    try:
        return render(contract, fmt)
    except RenderError as exc:
        fail(str(exc))


def write_report(body: str | bytes, output: Path | None) -> None:
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


def check_store_dir(db: str | None) -> None:
    """Before any work: a store file named in a directory that is not there is a typo, one line
    now (the same words as the store's own), not an assessment whose store part fails at the end."""
    if not db or db == ":memory:":
        return
    for prefix in ("sqlite+pysqlite:///", "sqlite:///"):
        db = db.removeprefix(prefix)
    if "://" in db:
        return
    parent = Path(db).parent
    if not parent.is_dir():
        fail(f"store {db}: directory {parent} {'is not a directory' if parent.exists() else 'does not exist'}")


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
