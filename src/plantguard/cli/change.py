"""`plantguard change add | list | import`: change tickets in the store (changes/). A PLC change
matching a ticket (controller, station, operation, window) is authorised; `assess --db` and
`assess --changes FILE` judge by them. Exit codes: 0 done, 2 usage or input error (one line:
for a bad file 'FILE:LINE: column: problem')."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from plantguard.cli import fail, say
from plantguard.cli.common import DB_HELP, open_store

change_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                         help="Change tickets: add one, list them, import a change-management CSV export.")

TZ_HELP = "Time zone of times given without a UTC offset (e.g. Europe/Berlin); without it such times are refused."
OPTION_OF = {"id": "ticket", "plcs": "plc", "stations": "station", "from": "window", "to": "window"}
OPERATIONS_HELP = "Operations the ticket covers, comma-separated: write, program, mode, firmware, config (default: all)."


def _tz(name: str | None):
    if name is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"--tz: unknown time zone {name!r}")


@change_app.command("add")
def change_add(
    plc: List[str] = typer.Option(..., "--plc", help="Controller: address, network (CIDR) or asset name; repeatable."),
    station: List[str] = typer.Option(..., "--station", help="Station allowed to make the change (address); repeatable."),
    window: str = typer.Option(..., "--window", metavar="FROM..TO", help="ISO 8601 times, e.g. 2024-04-14T02:00Z..2024-04-14T06:00Z."),
    ticket: str = typer.Option(..., "--ticket", help="The ticket's id (e.g. CHG0030001); an existing one is replaced."),
    operations: Optional[str] = typer.Option(None, "--operations", help=OPERATIONS_HELP),
    tz: Optional[str] = typer.Option(None, "--tz", help=TZ_HELP),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    site: str = typer.Option("", "--site", help="The central server's site the ticket belongs to (with --db of a central store; none: this store's own)."),
):
    """Add a change ticket to the store."""
    from plantguard.changes.store import save_tickets
    from plantguard.changes.tickets import TicketError, make_ticket
    try:
        t = make_ticket(ticket, plc, station, window, operations=operations, source="cli", tz=_tz(tz),
                        where=lambda key: f"--{OPTION_OF.get(key, key)}")
    except TicketError as exc:
        fail(str(exc))
    added, _ = _store(save_tickets, db, [t], site=site)
    say(f"{'added' if added else 'replaced'} ticket {t.id}: {_describe(t)}")


@change_app.command("list")
def change_list(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
                site: str = typer.Option("", "--site", help="The central server's site the ticket belongs to (with --db of a central store; none: this store's own).")):
    """List the store's change tickets, one a line, in window order."""
    from plantguard.changes.store import stored_tickets
    from plantguard.util import tables
    tickets = _store(stored_tickets, db, site=site)
    tables.show((tables.Column("ticket", no_wrap=True), tables.Column("window", no_wrap=True), "plcs", "stations",
                 "operations"),
                [(t.id, t.window_text(), ", ".join(t.plcs), ", ".join(t.stations),
                  ", ".join(sorted(t.operations)) or "all") for t in tickets])
    say(f"{len(tickets)} change ticket{'s' if len(tickets) != 1 else ''}")


@change_app.command("import")
def change_import(
    file: Path = typer.Argument(..., help="A CSV export (number, cmdb_ci, start_date, end_date, station, ...) "
                                          "or a YAML / JSON list of tickets."),
    tz: Optional[str] = typer.Option(None, "--tz", help=TZ_HELP),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    site: str = typer.Option("", "--site", help="The central server's site the ticket belongs to (with --db of a central store; none: this store's own)."),
):
    """Import change tickets into the store (a ticket already there is replaced)."""
    from plantguard.changes.store import save_tickets
    from plantguard.changes.tickets import TicketError, load_tickets
    try:
        tickets = load_tickets(file, _tz(tz))
    except TicketError as exc:
        fail(str(exc))
    added, replaced = _store(save_tickets, db, tickets, site=site)
    say(f"{file}: {len(tickets)} change tickets ({added} added, {replaced} replaced)")


def _store(fn, db: str | None, *args, site: str = ""):
    """fn(engine, *args, label, site=site) on the store; a store that fails is one line, exit code 2."""
    from plantguard.store.db import StoreError, store_label
    engine = open_store(db)
    try:
        return fn(engine, *args, store_label(db), site=site)
    except StoreError as exc:
        fail(str(exc))
    finally:
        engine.dispose()


def _describe(t) -> str:
    return (f"{t.window_text()} plcs {', '.join(t.plcs)} stations {', '.join(t.stations)} "
            f"operations {', '.join(sorted(t.operations)) or 'all'}")
