"""`plantguard monitor`: watch an interface or a capture ring, learn what is normal, raise alerts
to SIEM sinks (docs/monitor.md); `plantguard baseline show|accept|export` reviews what it learnt;
`plantguard export` replays the stored findings and alerts into a sink. Errors are one line
(exit 2); SIGINT/SIGTERM stop cleanly (final checkpoint, outboxes flushed), exit 0."""
from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer

from plantguard.cli import app, fail, out, say
from plantguard.cli.common import DB_HELP, MAX_MEMORY_HELP, SUPPRESS_HELP, load_site, memory_budget, suppressions

UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str | None, option: str) -> float | None:
    """'90', '90s', '10m', '2h', '7d' -> seconds."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        fail(f"{option} must be a positive duration such as 90s, 10m, 2h or 7d, not {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def _state(db: str | None, state: Path | None, existing: bool = False):
    """The monitor's state directory; with `existing` (reading what a monitor wrote), one that
    is there: a mistyped --db or --state must not create directories."""
    from plantguard.errors import InputError
    from plantguard.monitor.state import StateDir, state_dir_for
    path = state or state_dir_for(db)
    if existing and not path.is_dir():
        fail(f"{path}: no monitor state here ({'not a directory' if path.exists() else 'does not exist'}; "
             "plantguard monitor writes it beside its store, --state DIR names another)")
    try:
        return StateDir(path)
    except InputError as exc:
        fail(str(exc))


@app.command()
def monitor(
    interface: Optional[str] = typer.Option(None, "--interface", "-i", help="Capture live on this interface (needs root or CAP_NET_RAW)."),
    watch: Optional[Path] = typer.Option(None, "--watch", help="Follow the files a capture ring (dumpcap -b, tcpdump -G/-C) writes into this directory."),
    site: Optional[Path] = typer.Option(None, "--site", help="Site file: zones, conduits, authorised stations, maintenance windows."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    learn: Optional[str] = typer.Option(None, "--learn", metavar="DURATION", help="Learn the baseline for this long (packet time): new keys join silently, then alert."),
    learn_quiet: Optional[str] = typer.Option(None, "--learn-quiet", metavar="DURATION", help="End learning early once no new key was seen for this long (packet time; default: a quarter of --learn; as long as --learn: never early)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Start from this baseline (JSON, from 'plantguard baseline export')."),
    sink: Optional[List[str]] = typer.Option(None, "--sink", help="Deliver alerts here (repeatable): syslog+tls://, syslog+tcp://, syslog+udp://, file://, hec+https://, https://. Default: ECS JSON lines on stdout."),
    central: Optional[str] = typer.Option(None, "--central", metavar="URL", help="Deliver alerts and health to this plantguard central server (https://HOST:PORT), as the sensor enrolled with 'plantguard sensor enroll' (PLANTGUARD_SENSOR_DIR)."),
    evidence: Optional[Path] = typer.Option(None, "--evidence", metavar="DIR", help="Write a small pcap of each alert's evidence frames here."),
    checkpoint: str = typer.Option("60s", "--checkpoint", metavar="DURATION", help="Assess and save a checkpoint this often (packet time), and at exit."),
    max_memory: Optional[int] = typer.Option(None, "--max-memory", metavar="MB", help=MAX_MEMORY_HELP),
    bpf: Optional[str] = typer.Option(None, "--bpf", metavar="EXPR", help="Packet filter: with --interface a kernel filter (full tcpdump syntax; needs tcpdump), with --watch plantguard's own subset (docs/cli.md, as assess --bpf)."),
    state: Optional[Path] = typer.Option(None, "--state", metavar="DIR", help="Where ledger, checkpoint, baseline and outboxes live (default: beside the store, DB.monitor)."),
    status_every: str = typer.Option("10s", "--status-every", metavar="DURATION", help="Status line on stderr this often."),
    heartbeat_every: str = typer.Option("60s", "--heartbeat-every", metavar="DURATION", help="Heartbeat event to the sinks this often."),
    suppress: List[Path] = typer.Option([], "--suppress", metavar="FILE", help=SUPPRESS_HELP + " Never alerted."),
):
    """Watch the plant continuously: checkpoints of inventory and assessment, a baseline, alerts to SIEM sinks."""
    from plantguard.errors import InputError
    if (interface is None) == (watch is None):
        fail("give one of --interface IFACE or --watch DIR")
    if learn is not None and baseline is not None:
        fail("--learn and --baseline exclude each other")
    from plantguard.cli.common import packet_filter
    ring_filter = packet_filter(bpf) if watch is not None else None   # live: the kernel filters
    every = duration(checkpoint, "--checkpoint")
    learn_s = duration(learn, "--learn")
    if learn_quiet is not None and learn is None:
        fail("--learn-quiet shortens --learn; it needs --learn")
    quiet_s = duration(learn_quiet, "--learn-quiet")
    status_s, beat_s = duration(status_every, "--status-every"), duration(heartbeat_every, "--heartbeat-every")
    budget = memory_budget(max_memory)
    site_model = load_site(site)
    accepted = suppressions(suppress)
    base_doc = None
    if baseline is not None:
        try:
            base_doc = json.loads(baseline.read_text())
        except (OSError, ValueError) as exc:
            fail(f"{baseline}: cannot read baseline ({getattr(exc, 'strerror', None) or exc})")
    sinks = list(sink or ())
    if central is not None:
        if not central.startswith("https://"):
            fail(f"--central must be an https:// URL, not {central!r}")
        sinks.append("central+" + central.rstrip("/"))
    if db is not None:   # a store that cannot be opened is one line now, before its state directory is made
        from plantguard.cli.common import open_store
        open_store(db).dispose()
    st = _state(db, state)
    from plantguard.monitor.run import Monitor
    from plantguard.monitor.session import Session
    from plantguard.monitor.sources import LiveSource, RingSource
    from plantguard.monitor.state import LEDGER
    try:
        src = LiveSource(interface, bpf) if interface else RingSource(watch, st.file(LEDGER))
        hooks = []
        if central is not None:       # checkpoints too, through the same sensor outbox as the alerts
            from plantguard.sensor.push import CheckpointPusher
            from plantguard.sensor.state import SensorState
            hooks.append(CheckpointPusher(SensorState(), site_model))
        mon = Monitor(src, Session(site_model, budget=budget, checkpoint_s=every, db=db, packet_filter=ring_filter,
                                   suppressions=accepted), st,
                      sinks=sinks, on_checkpoint=hooks, evidence_dir=evidence, learn_s=learn_s, learn_quiet_s=quiet_s,
                      baseline=base_doc,
                      status_s=status_s, heartbeat_s=beat_s, out=sys.stdout, status=say)
    except (InputError, ValueError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except OSError as exc:
        fail(f"cannot start monitor: {exc.strerror or exc}")

    def stop(_sig, _frame):
        mon.stop.set()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    say(f"monitor: watching {src.name}; state in {st.path}")
    try:
        mon.run()
    finally:
        src.close()


baseline_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                           help="Review what monitor learnt: show, accept, export.")
app.add_typer(baseline_app, name="baseline", help="Review and promote the monitor's baseline: show, accept, export.")


def _load_baseline(st):
    from plantguard.monitor.baseline import Baseline
    from plantguard.monitor.state import BASELINE
    from plantguard.errors import InputError
    try:
        doc = st.load(BASELINE)
        return Baseline(doc)
    except (InputError, ValueError) as exc:
        fail(str(exc))


@baseline_app.command("show")
def baseline_show(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
                  state: Optional[Path] = typer.Option(None, "--state", metavar="DIR", help="The monitor's state directory."),
                  new: bool = typer.Option(False, "--new", help="Only the keys waiting for review.")):
    """Counts per kind and state, then the keys (kind, state, key, count, first/last seen)."""
    from plantguard.util.timefmt import iso
    b = _load_baseline(_state(db, state, existing=True))
    for kind, counts in b.summary().items():
        say(f"{kind}: " + (", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "none"), out)
    for kind, entries in b.sets.items():
        for key, e in sorted(entries.items()):
            if not new or e["state"] == "new":
                say(f"{kind}\t{e['state']}\t{key}\t{e['count']}\t{iso(e['first'])}\t{iso(e['last'])}", out)


@baseline_app.command("accept")
def baseline_accept(key: Optional[List[str]] = typer.Argument(None, help="Keys to accept (default: every new key)."),
                    kind: Optional[str] = typer.Option(None, "--kind", help="Only keys of this kind."),
                    site: Optional[Path] = typer.Option(None, "--site", help="Also append the accepted assets and conduits to this site file, as commented entries to review."),
                    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
                    state: Optional[Path] = typer.Option(None, "--state", metavar="DIR", help="The monitor's state directory.")):
    """Promote reviewed new keys to accepted."""
    import os
    from datetime import datetime, timezone
    from plantguard.monitor.baseline import KINDS
    from plantguard.monitor.state import BASELINE
    kind = kind.strip().lower() if kind is not None else None
    if kind is not None and kind not in KINDS:
        fail(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if site is not None:
        load_site(site)          # a site file that does not load is not appended to
    st = _state(db, state, existing=True)
    b = _load_baseline(st)
    done = b.accept((kind,) if kind else KINDS, set(key) if key else None)
    st.save(BASELINE, b.as_dict())
    say(f"{len(done):,} keys accepted")
    if site is None:
        return
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = b.site_entries(done, f"plantguard baseline accept, {when}")
    if not text:
        return
    try:
        old = site.read_text(encoding="utf-8")
        tmp = site.with_name(f".{site.name}.tmp")
        tmp.write_text(old + ("" if old.endswith("\n") or not old else "\n") + text, encoding="utf-8")
        os.replace(tmp, site)
    except OSError as exc:
        fail(f"{site}: cannot write site file ({exc.strerror or exc})")
    say(f"{site}: {text.count(chr(10) + '#   - '):,} entries appended as comments, to review")


@baseline_app.command("export")
def baseline_export(output: Path = typer.Option(Path("-"), "-o", "--output", help="Write the JSON here; - for stdout."),
                    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
                    state: Optional[Path] = typer.Option(None, "--state", metavar="DIR", help="The monitor's state directory.")):
    """The baseline as JSON (what monitor --baseline reads)."""
    from plantguard.cli.common import write_report
    b = _load_baseline(_state(db, state, existing=True))
    write_report(json.dumps(b.as_dict(), indent=1, sort_keys=True) + "\n", output)


@app.command("export")
def export(sink: str = typer.Option(..., "--sink", help="The sink URL (as monitor --sink)."),
           since: Optional[str] = typer.Option(None, "--since", metavar="T", help="Only findings whose evidence is this recent (ISO time)."),
           db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
           state: Optional[Path] = typer.Option(None, "--state", metavar="DIR", help="The monitor's state directory."),
           suppress: List[Path] = typer.Option([], "--suppress", metavar="FILE", help=SUPPRESS_HELP + " Not sent.")):
    """Replay the last checkpoint's failing findings and assets into a sink (accepted risks are not sent)."""
    from datetime import datetime
    from plantguard.errors import InputError
    from plantguard.monitor.state import ASSESSMENT
    from plantguard.siem import Outbox, from_assessment, open_sink
    st = _state(db, state, existing=True)
    try:
        contract = st.load(ASSESSMENT)
    except InputError as exc:
        fail(str(exc))
    if contract is None:
        fail(f"{st.path}: no checkpoint stored yet (run plantguard monitor first)")
    if suppress:
        from plantguard.suppress import mark_contract
        for line in mark_contract(contract, suppressions(suppress)):
            say(f"warning: {line}")
    cut = None
    if since is not None:
        try:
            cut = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
        except ValueError:
            fail(f"--since must be an ISO time such as 2026-01-01T00:00:00Z, not {since!r}")
    try:
        ob = Outbox(st.outbox(sink), open_sink(sink))
    except InputError as exc:
        fail(str(exc))
    n = 0
    for e in from_assessment(contract):
        if cut is None or e.time >= cut:
            ob.put(e)
            n += 1
    done = ob.flush(30.0)
    left = ob.depth()
    ob.close()
    if not done:
        fail(f"{n:,} events queued, {left:,} not yet delivered ({ob.last_error or 'sink did not acknowledge'}); "
             "the next export or monitor delivers them")
    kept = sum(1 for f in contract.get("findings") or [] if f.get("status") == "fail" and f.get("suppressed"))
    say(f"{n:,} events delivered" + (f"; {kept:,} accepted risks not sent" if kept else ""))
