"""`plantguard sensor enroll|push|status`: a sensor (or a laptop) delivering to the central server.
What is pushed is queued in a durable outbox first and delivered in order; what the server cannot
take now (link down, server stopped) waits there for the next push. Exit code 3: queued, not yet
delivered."""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from plantguard.cli import fail, out, say
from plantguard.cli.common import JOBS_HELP, MAX_MEMORY_HELP, load_site, memory_budget, progress_analyze
from plantguard.errors import InputError

EXIT_QUEUED = 3

sensor_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                         help="Deliver to a central server: enroll, push, status.")
STATE_OPT = typer.Option(None, "--state", metavar="DIR", help="The sensor's state directory (default "
                         "~/.local/share/plantguard/sensor, or PLANTGUARD_SENSOR_DIR).")


@sensor_app.command("enroll")
def enroll(server: str = typer.Option(..., "--server", help="The central server, https://HOST:PORT."),
           token: str = typer.Option(..., "--token", help="A one-time sensor enrolment token (server token create --role sensor)."),
           ca: Path = typer.Option(..., "--ca", help="The server's CA certificate (ca.pem of its state directory)."),
           name: Optional[str] = typer.Option(None, "--name", help="This sensor's name (default: the host name)."),
           state: Optional[Path] = STATE_OPT):
    """Enrol with a one-time token: make a key, get a client certificate, keep both locally."""
    import socket

    from plantguard.sensor.client import CentralClient, CentralUnavailable
    from plantguard.sensor.state import Enrolment, SensorState
    from plantguard.server import pki
    st = SensorState(state)
    try:
        me = st.load()
    except InputError:
        me = None
    if me is not None:
        fail(f"{st.dir}: already enrolled as {me.sensor_id}; use another --state to enrol again")
    if not ca.is_file():
        fail(f"CA file {ca} does not exist")
    name = name or socket.gethostname()
    csr, key = pki.new_csr(name)
    try:
        with CentralClient(server, ca) as client:
            answer = client.enrol(token, name, csr.decode())
    except (CentralUnavailable, InputError) as exc:
        fail(str(exc))
    st.save(Enrolment(server=server, sensor_id=answer["sensor_id"], name=name, site=answer["site"]),
            key, answer["certificate"], answer["ca"])
    say(f"sensor: enrolled as {answer['sensor_id']} for site {answer['site']}; state in {st.dir}")


@sensor_app.command("push")
def push(captures: List[Path] = typer.Argument(None, help="Capture files or directories to assess and push "
                                               "(none: deliver what is queued)."),
         site: Optional[Path] = typer.Option(None, "--site", help="Site file for the assessment."),
         from_db: Optional[Path] = typer.Option(None, "--from-db", help="Push the runs and assets of a local store."),
         state: Optional[Path] = STATE_OPT,
         timeout: float = typer.Option(60.0, "--timeout", min=0, help="Seconds to keep trying to deliver."),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
         max_memory: Optional[int] = typer.Option(None, "--max-memory", metavar="MB", help=MAX_MEMORY_HELP),
         jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, metavar="N", help=JOBS_HELP)):
    """Assess captures (or read a local store), queue the results as envelopes, deliver them in order."""
    from plantguard.sensor import push as pushing
    from plantguard.sensor.client import CentralClient
    from plantguard.sensor.outbox import EnvelopeOutbox
    from plantguard.sensor.state import SensorState
    st = SensorState(state)
    try:
        me = st.load()
        outbox = EnvelopeOutbox(st.outbox, me.sensor_id)
    except InputError as exc:
        fail(str(exc))
    queued = dropped = 0
    try:
        batches = []
        if captures:
            from plantguard.assess import run_assessment
            from plantguard.store.db import IN_MEMORY
            site_model = load_site(site)
            result = progress_analyze(captures, quiet, memory_budget(max_memory), jobs)
            contract = run_assessment(result, site_model, db=IN_MEMORY)
            batches.append(pushing.envelopes_for_assessment(contract, me.site, outbox, site_model))
        if from_db is not None:
            batches.append(pushing.envelopes_from_store(str(from_db), None, outbox))
        for batch in batches:
            q, d = pushing.queue(outbox, me.site, batch)
            queued, dropped = queued + q, dropped + d
        if dropped:
            say(f"sensor: outbox full ({outbox.max_bytes >> 20} MiB): {dropped:,} envelopes dropped now, "
                f"{outbox.dropped:,} in all")
        from plantguard.sensor.renewal import renew_if_due
        if renew_if_due(st, me):
            say("sensor: client certificate renewed")
        with CentralClient(me.server, st.ca, st.cert, st.key) as client:
            done = pushing.drain(outbox, client, time.monotonic() + timeout)
    except InputError as exc:
        fail(str(exc))
    finally:
        left = outbox.depth
        outbox.close()
    say(f"sensor: {queued:,} envelopes queued, {done.applied:,} applied by the server"
        + (f", {done.duplicates:,} it had already" if done.duplicates else "") + f", {left:,} waiting"
        + (f" ({done.last_error})" if left and done.last_error else ""))
    if left:
        raise typer.Exit(EXIT_QUEUED)


@sensor_app.command("status")
def status(state: Optional[Path] = STATE_OPT):
    """Enrolment, certificate expiry and the outbox: depth, bytes, dropped, last delivered seq."""
    from plantguard.sensor.outbox import EnvelopeOutbox
    from plantguard.sensor.state import SensorState
    from plantguard.server import pki
    st = SensorState(state)
    try:
        me = st.load()
        ob = EnvelopeOutbox(st.outbox, me.sensor_id)
    except InputError as exc:
        fail(str(exc))
    try:
        say(f"sensor {me.sensor_id} ({me.name}), site {me.site}, server {me.server}", out)
        say(f"certificate valid until {pki.not_after(st.cert.read_bytes()):%Y-%m-%d %H:%M} UTC", out)
        say(f"outbox: {ob.depth:,} waiting, {ob.stored_bytes:,} bytes, {ob.dropped:,} dropped, "
            f"last delivered seq {ob.last_acked}", out)
    finally:
        ob.close()
