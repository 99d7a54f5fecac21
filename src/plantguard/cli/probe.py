"""`plantguard probe`: active identity queries, a dry run unless --send. Separate from the
passive commands, which never send a packet. Exit codes: 0 done, 1 the circuit breaker stopped
the run, 2 usage or input error (one line on stderr)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Literal, Optional

import typer

from plantguard.cli import app, fail, out, say
from plantguard.cli.common import load_site

PROTOCOLS_HELP = "Only these protocols (comma-separated or repeated): enip, modbus, s7, bacnet, snmp, dcp, opcua, http."


@app.command(short_help="Ask devices who they are, read-only and rate-capped (a dry run unless --send).")
def probe(
    site: Optional[Path] = typer.Option(None, "--site", help="Site file: its zones and `probe:` allow-list decide what may be asked."),
    targets: List[str] = typer.Option([], "--targets", metavar="FILE|CIDR", help="Addresses, networks or files of them (default: the site's declared assets). Repeatable."),
    protocols: List[str] = typer.Option([], "--protocols", help=PROTOCOLS_HELP),
    send: bool = typer.Option(False, "--send", help="Send the queries (without it: a dry run that prints every frame and sends nothing)."),
    rate: float = typer.Option(10.0, "--rate", min=0.1, max=100.0, metavar="PKTS/S", help="Packets per second at most, all devices together (the site's probe.rate caps it)."),
    max_conn: int = typer.Option(1, "--max-conn-per-device", min=1, max=1, help="Open TCP connections per device at a time (only 1 is allowed)."),
    timeout: float = typer.Option(3.0, "--timeout", min=0.1, max=60.0, metavar="S", help="Seconds to wait for each response."),
    evidence: Path = typer.Option(Path("probe-evidence"), "--evidence", metavar="DIR", help="Where the pcap of everything sent and received, and the results, are written."),
    db: Optional[str] = typer.Option(None, "--db", help="Store: its inventory says what each device serves; the identities learnt are saved there (default ./plantguard.db)."),
    format: Literal["text", "json"] = typer.Option("text", "--format", "-f", help="Output format."),
):
    """Ask devices for their identity with read-only queries: EtherNet/IP ListIdentity, Modbus
    Read Device Identification, S7 SZL reads, BACnet Who-Is and ReadProperty, SNMP system group,
    PROFINET DCP Identify, OPC UA GetEndpoints, HTTP HEAD. Every frame is decoded by plantguard's
    own decoders before it leaves and refused unless it only reads. Without --send nothing is sent."""
    from plantguard.probe import render
    from plantguard.probe.queries import select
    from plantguard.probe.targets import TargetError, build_plan, expand, known_devices
    site_model = load_site(site)
    policy = getattr(site_model, "probe", None)
    try:
        queries = select([p for spec in protocols for p in spec.split(",")])
        addresses = expand(targets) if targets else _declared(site_model)
    except (TargetError, ValueError) as exc:
        fail(str(exc))
    if not addresses:
        fail("no targets: give --targets, or a site file whose assets have addresses")
    store = db or ("plantguard.db" if Path("plantguard.db").exists() else None)
    known = _known(known_devices, store)
    plan = build_plan(addresses, queries, site_model, known)
    if policy is not None:
        rate = min(rate, policy.rate)
    if not send:
        from plantguard.probe.session import dry_run
        runs = dry_run(plan)
        if format == "json":
            out.print_json(json.dumps(render.dry_run_json(plan, runs, rate)))
        else:
            for line in render.dry_run_text(plan, runs, rate, policy is not None):
                say(line, out)
        return
    if policy is None:
        fail("--send needs a site file (--site) with a probe: allow-list (owner, allow: zones × protocols)")
    _send(plan, site_model, rate, timeout, evidence, db or "plantguard.db", format)


def _declared(site) -> list[str]:
    return [a["ip"] for a in getattr(site, "assets", []) or [] if a.get("ip")]


def _known(known_devices, store):
    from plantguard.store.db import StoreError
    try:
        return known_devices(store)
    except StoreError as exc:
        fail(str(exc))


def _send(plan, site, rate: float, timeout: float, evidence_dir: Path, store: str, format: str) -> None:
    from plantguard.probe import render
    from plantguard.probe.evidence import Evidence
    from plantguard.probe.limits import Breaker
    from plantguard.probe.results import identities, per_target
    from plantguard.probe.session import Options, run
    from plantguard.probe.store import save
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    pcap = evidence_dir / f"probe-{stamp}.pcap"
    ev, breaker = Evidence(), Breaker()
    windows = _window_rule(site)
    try:
        evidence_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--evidence {evidence_dir}: {exc.strerror or exc}")
    try:
        runs, sent = run(plan, Options(rate=rate, timeout=timeout, windows=windows), ev, breaker)
    finally:                    # interrupted too: what was sent is on record
        ev.write(pcap)
    learnt = identities(str(pcap), {r.target.ip for r in runs})
    records = per_target(runs, learnt, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), str(pcap))
    (evidence_dir / f"probe-{stamp}.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    save(store, records)
    if format == "json":
        out.print_json(json.dumps({"dry_run": False, "sent": sent, "evidence": str(pcap),
                                   "breaker": breaker.run_tripped, "tripped": breaker.tripped,
                                   "targets": records}))
    else:
        for line in render.results_text(records, sent, breaker.run_tripped, str(pcap)):
            say(line, out)
    if breaker.run_tripped:
        raise typer.Exit(1)


def _window_rule(site):
    """A target outside every maintenance window of its zone is not probed (when the site has
    windows and its probe policy requires them)."""
    import datetime as dt
    policy = site.probe
    if policy.windows != "required" or not site.maintenance_windows:
        return None
    tz = site._tz

    def rule(target):
        if site.maintenance_window_at(time.time(), target.zone) is None:
            now = dt.datetime.now(tz).strftime("%a %H:%M")
            return f"outside every maintenance window of zone {target.zone} ({now} site time)"
        return None
    return rule
