"""`plantguard server init|run|token|audit`: the central server for many sites. The token and audit
commands work on the database directly (whoever can reach it is trusted); they are audited as
actor "cli"."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import typer

from plantguard.cli import fail, say

server_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                         help="The central server: init, run, token, audit.")
token_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                        help="API and sensor enrolment tokens: create, list, revoke.")
user_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                       help="Console users: add, list.")
audit_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                        help="The hash-chained audit log: verify, export.")
server_app.add_typer(token_app, name="token")
server_app.add_typer(audit_app, name="audit")
server_app.add_typer(user_app, name="user")

DB_OPT = typer.Option(..., "--db", help="The central store: postgresql+psycopg://… or sqlite:///…")
STATE_OPT = typer.Option(None, "--state", metavar="DIR",
                         help="The server's state directory: CA, TLS certificate (default ./plantguard-server, "
                              "or PLANTGUARD_SERVER_DIR).")


@contextmanager
def _session(db: str):
    """A session on the central store (migrated to the newest schema), the engine closed after."""
    from plantguard.store.db import open_engine, session_factory
    engine = open_engine(db)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        fail(f"--listen must be HOST:PORT, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@server_app.command("init")
def init(db: str = DB_OPT, state: Optional[Path] = STATE_OPT,
         host: List[str] = typer.Option(["localhost", "127.0.0.1"], "--host",
                                        help="Names and addresses the server's TLS certificate is valid for."),
         admin_secret_file: Optional[Path] = typer.Option(None, "--admin-secret-file",
                                                          help="Read the one-time admin secret from this file "
                                                               "instead of making one (or PLANTGUARD_ADMIN_SECRET).")):
    """Create the schema, the CA and the server's certificate; print the one-time admin secret."""
    import os

    from plantguard.server.run import SECRET_ENV, init as do_init, state_dir
    secret = None
    if admin_secret_file is not None:
        try:
            secret = admin_secret_file.read_text().strip()
        except OSError as exc:
            fail(f"admin secret file {admin_secret_file}: {exc.strerror or exc}")
    secret = secret or os.environ.get(SECRET_ENV) or None
    st = state_dir(state)
    from plantguard.errors import InputError
    try:
        made = do_init(db, st, host, secret)
    except InputError as exc:
        fail(str(exc))
    say(f"server: schema ready; CA and TLS certificate in {st}")
    if made is None:
        say("server: the admin bootstrap exists already (its secret was shown when it was made)")
    elif secret is None:
        say("server: one-time admin secret (shown once; POST it to /api/v1/bootstrap with a user name and password):")
        typer.echo(made)


@server_app.command("run")
def run(db: str = DB_OPT, listen: str = typer.Option("127.0.0.1:8443", "--listen", help="HOST:PORT."),
        state: Optional[Path] = STATE_OPT,
        tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help="Server certificate (default: the one init made)."),
        tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="Its private key."),
        client_ca: Optional[Path] = typer.Option(None, "--client-ca", help="CA of the sensors' client certificates "
                                                                           "(default: the server's own CA)."),
        log_level: str = typer.Option("warning", "--log-level", help="uvicorn's: critical, error, warning, info, debug."),
        nats: Optional[str] = typer.Option(None, "--nats", metavar="URL", help="Queue sensors' batches in this NATS "
                                           "JetStream (nats://HOST:4222) for 'server ingest-worker' processes to apply.")):
    """Serve the REST API over TLS (sensors authenticate with their client certificates)."""
    from plantguard.server.run import serve, state_dir
    host, port = _listen(listen)
    log_level = log_level.strip().lower()
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together")
    say(f"server: listening on https://{host}:{port}/api/v1")
    serve(db, state_dir(state), host, port, tls_cert=tls_cert, tls_key=tls_key, client_ca=client_ca,
          log_level=log_level, nats=nats)


@server_app.command("ingest-worker")
def ingest_worker(db: str = DB_OPT,
                  nats: str = typer.Option(..., "--nats", metavar="URL", help="The NATS server whose JetStream "
                                           "'server run --nats' fills.")):
    """Apply queued sensor batches from NATS JetStream (run several; each batch is applied once)."""
    import logging

    from plantguard.server.jetstream import run_worker
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    say(f"ingest worker: applying batches from {nats}")
    try:
        stats = run_worker(db, nats)
    except OSError as exc:
        fail(f"NATS {nats}: {exc.strerror or exc}")
    say(f"ingest worker: {stats.messages:,} batches, {stats.applied:,} envelopes applied, "
        f"{stats.duplicates:,} duplicates, {stats.retried:,} offered again, {stats.refused:,} refused")


@server_app.command("retention")
def retention(db: str = DB_OPT,
              keep: str = typer.Option(..., "--keep", help="Keep this much history (e.g. 180d, 26w)."),
              dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; change nothing.")):
    """Add the coming months' alert partitions (PostgreSQL) and remove what is older than --keep."""
    from datetime import datetime, timezone

    from plantguard.server.api.admin import parse_duration
    from plantguard.server.retention import ensure_partitions, partitions, prune
    from plantguard.store.db import open_engine
    try:
        window = parse_duration(keep, "--keep", max_days=36500)
    except ValueError as exc:
        fail(str(exc))
    engine = open_engine(db)
    try:
        if dry_run:
            cutoff = datetime.now(timezone.utc) - window
            old = [n for n, b in partitions(engine).items() if b is not None and b[1] <= cutoff]
            say(f"retention: would drop {len(old)} partition(s) {' '.join(old)} and delete rows older than "
                f"{cutoff:%Y-%m-%d %H:%M} UTC")
            return
        made = ensure_partitions(engine)
        done = prune(engine, window)
    finally:
        engine.dispose()
    say(f"retention: {len(made)} partition(s) added, {len(done.partitions_dropped)} dropped, "
        f"{done.alerts:,} alerts, {done.envelopes:,} envelope rows, {done.health:,} health reports and "
        f"{done.history:,} asset history rows deleted")


@token_app.command("create")
def token_create(db: str = DB_OPT,
                 role: str = typer.Option(..., "--role", help="viewer, analyst, engineer, admin or sensor (enrolment)."),
                 site: List[str] = typer.Option([], "--site", help="Sites the token reaches (repeat; none: all). "
                                                                   "A sensor token names exactly one."),
                 expires: str = typer.Option("30d", "--expires", help="12h, 30d, 2w (at most 366 days)."),
                 name: str = typer.Option("", "--name", help="What the token is for.")):
    """Create a token; its text is printed once (only a hash is kept)."""
    from plantguard.server import roles
    from plantguard.server.api.admin import create_token, parse_duration
    role = role.strip().lower()                 # any case, as every choice (cli._choices_any_case)
    if role not in roles.ROLES + (roles.SENSOR,):
        fail(f"--role must be one of {', '.join(roles.ROLES + (roles.SENSOR,))}, not {role!r}")
    try:
        duration = parse_duration(expires)
    except ValueError as exc:
        fail(str(exc))
    with _session(db) as session:
        try:
            text, row = create_token(session, "cli", role, list(site), duration, name)
        except ValueError as exc:
            fail(str(exc))
        session.commit()
        say(f"token {row.id}: role {role}, sites {', '.join(site) or 'all'}, expires {row.expires_at:%Y-%m-%d %H:%M} UTC"
            + ("; single use (sensor enrolment)" if row.single_use else ""))
        typer.echo(text)


@token_app.command("list")
def token_list(db: str = DB_OPT):
    """Every token: id, role, sites, expiry, last use (never the secret)."""
    from sqlalchemy import select

    from plantguard.server import auth
    from plantguard.server.api.admin import token_out
    from plantguard.util import tables
    rows = []
    with _session(db) as session:
        for r in session.scalars(select(auth.ApiToken).order_by(auth.ApiToken.created_at)):
            t = token_out(r)
            state = "revoked" if t["revoked"] else ("used" if t["used_at"] else "active")
            rows.append((t["id"], t["role"], ",".join(t["sites"]) or "all", state, f"{t['expires_at']:%Y-%m-%d}",
                         str(t["last_used_at"] or "never"), t["name"]))
    tables.show((tables.Column("id", no_wrap=True), "role", "sites", "state", tables.Column("expires", no_wrap=True),
                 tables.Column("last used", no_wrap=True), "name"), rows)


@token_app.command("revoke")
def token_revoke(token_id: str = typer.Argument(..., help="The token's id (the part after pgt_)."), db: str = DB_OPT):
    """Revoke a token at once (a running server stops accepting it within 60 s)."""
    from datetime import datetime, timezone

    from plantguard.server import audit, auth
    with _session(db) as session:
        row = session.get(auth.ApiToken, token_id)
        if row is None:
            fail(f"no token {token_id}")
        if row.revoked_at is None:
            row.revoked_at = datetime.now(timezone.utc)
            audit.append(session, "cli", "token.revoke", f"token {token_id}", before={"revoked": False},
                         after={"revoked": True})
            session.commit()
        say(f"token {token_id} revoked")


@user_app.command("add")
def user_add(db: str = DB_OPT,
             username: str = typer.Argument(..., help="The user name (letters, digits, . _ @ -)."),
             role: str = typer.Option(..., "--role", help="viewer, analyst, engineer or admin."),
             site: List[str] = typer.Option([], "--site", help="Sites the user reaches (repeat; none: all)."),
             password_file: Optional[Path] = typer.Option(None, "--password-file", help="Read the password from "
                                                          "this file (else it is asked for, not echoed).")):
    """Add a console user (argon2id hash kept; audited as actor cli)."""
    import re
    from datetime import datetime, timezone

    from sqlalchemy import select

    from plantguard.server import audit, auth, roles
    from plantguard.store.db import begin_write
    role = role.strip().lower()
    if role not in roles.ROLES:
        fail(f"--role must be one of {', '.join(roles.ROLES)}, not {role!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,120}", username):
        fail("a user name is 1 to 120 letters, digits or . _ @ -")
    if password_file is not None:
        try:
            password = password_file.read_text().strip()
        except OSError as exc:
            fail(f"password file {password_file}: {exc.strerror or exc}")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 12:
        fail("the password must be at least 12 characters")
    with _session(db) as session:
        begin_write(session)
        if session.scalar(select(auth.User).where(auth.User.username == username)) is not None:
            fail(f"user {username} exists")
        session.add(auth.User(username=username, password_hash=auth.hash_secret(password), role=role,
                              sites=list(site), created_at=datetime.now(timezone.utc), disabled=False))
        audit.append(session, "cli", "user.create", f"user {username}", after={"role": role, "sites": list(site)})
        session.commit()
    say(f"user {username}: role {role}, sites {', '.join(site) or 'all'}")


@user_app.command("list")
def user_list(db: str = DB_OPT):
    """Every console user: name, role, sites, disabled."""
    from sqlalchemy import select

    from plantguard.server import auth
    from plantguard.util import tables
    with _session(db) as session:
        rows = [(u.username, u.role, ",".join(u.sites or []) or "all", "disabled" if u.disabled else "active")
                for u in session.scalars(select(auth.User).order_by(auth.User.username))]
    tables.show((tables.Column("user", no_wrap=True), "role", "sites", "state"), rows)


@audit_app.command("verify")
def audit_verify(db: str = DB_OPT):
    """Check the audit log's hash chain; exit 1 when a row was changed, removed or inserted."""
    from plantguard.server import audit
    with _session(db) as session:
        v = audit.verify(session)
    if v.ok:
        say(f"audit log: {v.rows:,} rows, chain intact")
        return
    say(f"audit log: chain broken at row {v.first_bad}: {v.problem} ({v.rows:,} rows checked)")
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(db: str = DB_OPT,
                 sink: List[str] = typer.Option(..., "--sink", help="A SIEM sink URL (see `plantguard export`)."),
                 since: int = typer.Option(0, "--since-id", help="Only rows after this id.")):
    """Send the audit log to SIEM sinks (each row once per run; receivers drop repeats by event id)."""
    from plantguard.server import audit
    from plantguard.errors import InputError
    from plantguard.siem.registry import open_sink
    from plantguard.siem.spec import DeliveryError
    with _session(db) as session:
        events = audit.events(session, since)
    for url in sink:
        try:
            s = open_sink(url)
        except InputError as exc:
            fail(str(exc))
        try:
            s.send([s.encode(e) for e in events])
        except DeliveryError as exc:
            fail(f"sink {url}: {exc}")
        finally:
            s.close()
    say(f"audit log: {len(events):,} rows sent to {len(sink)} sink(s)")
