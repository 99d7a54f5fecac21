"""The inventory as a table for a person at a terminal (Rich: sized and coloured for standard
output, as printing it there would be). Every cell is a rich.text.Text of util.sanitize.terminal:
what a device calls itself is shown literally, never read as markup or written as an escape."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from plantguard.report.inventory import InventoryReport
from plantguard.report.registry import Renderer, register
from plantguard.util.sanitize import terminal, terminal_text

COLUMNS = ("address", "mac / vendor", "role", "zone", "identity", "services", "state")
MAX_SERVICES = 6
MAX_PART = 160          # characters of one identity field shown (a device may send kilobytes)


def ident_text(ident: dict) -> str:
    """The identity fields on one line, each made terminal-safe and clipped to MAX_PART."""
    def part(key, prefix=""):
        v = ident.get(key)
        return f"{prefix}{terminal(v, MAX_PART)}" if v not in (None, "", [], {}) else ""
    parts = [part("vendor"), part("product") or part("model"), part("firmware", "fw "), part("serial", "s/n "),
             part("name")]
    return " · ".join(p for p in parts if p)


def inventory_table(inv: InventoryReport) -> Table:
    caps = inv.captures
    t = Table(title=f"{len(inv.assets)} assets from {sum(c['packets'] for c in caps):,} packets", show_lines=False)
    for col in COLUMNS:
        t.add_column(col, overflow="fold")
    changes = inv.changes
    new = set(changes.new) if changes else set()
    changed = changes.changed if changes else {}
    for a in inv.assets:
        svc = ", ".join(f"{s.name} {s.proto}/{s.port}" if s.name else f"{s.proto}/{s.port}"
                        for _, s in sorted(a.services.items())[:MAX_SERVICES])
        state = "new" if a.key in new else ("changed: " + ", ".join(changed[a.key]) if a.key in changed else "")
        mac_vendor = f"{terminal(a.mac or '-')}\n{terminal(a.vendor or '', MAX_PART)}".strip()
        t.add_row(terminal_text(a.ip or "-"), Text(mac_vendor), terminal_text(a.role), terminal_text(a.zone or ""),
                  Text(ident_text(a.identity)), terminal_text(svc), terminal_text(state))
    return t


def render_inventory_table(inv: InventoryReport) -> str:
    console = Console()     # detects standard output's width and colours, like the CLI's console
    with console.capture() as captured:
        console.print(inventory_table(inv))
    return captured.get()


def changes_line(changes) -> str | None:
    """'since run N: ...' when an earlier run of the site was recorded, else None."""
    if changes is None or changes.previous_run_id is None:
        return None
    return (f"since run {changes.previous_run_id}: {len(changes.new)} new, {len(changes.changed)} changed, "
            f"{len(changes.gone)} gone" + (f" ({', '.join(changes.gone[:10])})" if changes.gone else ""))


TABLE = register(Renderer("table", "txt", "text/plain", render_inventory_table, ("inventory",)))
