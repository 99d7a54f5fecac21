"""The inventory as a table for a person at a terminal (Rich: sized and coloured for standard
output, as printing it there would be)."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from plantguard.report.inventory import InventoryReport
from plantguard.report.registry import Renderer, register

COLUMNS = ("address", "mac / vendor", "role", "zone", "identity", "services", "state")
MAX_SERVICES = 6


def ident_text(ident: dict) -> str:
    parts = [ident.get("vendor"), ident.get("product") or ident.get("model"), ident.get("firmware") and f"fw {ident['firmware']}",
             ident.get("serial") and f"s/n {ident['serial']}", ident.get("name")]
    return " · ".join(str(p) for p in parts if p)


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
        t.add_row(a.ip or "-", f"{a.mac or '-'}\n{a.vendor or ''}".strip(), a.role, a.zone or "",
                  ident_text(a.identity), svc, state)
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
