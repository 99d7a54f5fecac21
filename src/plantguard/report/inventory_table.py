"""The inventory as a table: for a person at a terminal a Rich table (sized and coloured for
standard output, as printing it there would be), else tab-separated columns (util.tables). Every
cell is util.sanitize.terminal text: what a device calls itself is shown literally, never read
as markup or written as an escape."""
from __future__ import annotations

from plantguard.report.inventory import InventoryReport
from plantguard.report.registry import Renderer, register
from plantguard.util import tables
from plantguard.util.sanitize import terminal

COLUMNS = (tables.Column("address", no_wrap=True), tables.Column("mac / vendor", min_width=17), "role", "zone",
           "identity", "services", "state")
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


def inventory_rows(inv: InventoryReport) -> list[tuple]:
    """One row per asset, in COLUMNS order; the mac / vendor cell is two lines on a terminal."""
    changes = inv.changes
    new = set(changes.new) if changes else set()
    changed = changes.changed if changes else {}
    rows = []
    for a in inv.assets:
        svc = ", ".join(f"{s.name} {s.proto}/{s.port}" if s.name else f"{s.proto}/{s.port}"
                        for _, s in sorted(a.services.items())[:MAX_SERVICES])
        state = "new" if a.key in new else ("changed: " + ", ".join(changed[a.key]) if a.key in changed else "")
        rows.append((a.ip or "-", (a.mac or "-", terminal(a.vendor or "", MAX_PART)), a.role, a.zone or "",
                     ident_text(a.identity), svc, state))
    return rows


def inventory_title(inv: InventoryReport) -> str:
    return f"{len(inv.assets)} assets from {sum(c['packets'] for c in inv.captures):,} packets"


def render_inventory_table(inv: InventoryReport) -> str:
    """Rich at a terminal (sized and coloured as printing there would be), TSV otherwise
    (util.tables: one asset a line, never folded)."""
    return tables.render(COLUMNS, inventory_rows(inv), inventory_title(inv))


def changes_line(changes) -> str | None:
    """'since run N: ...' when an earlier run of the site was recorded, else None."""
    if changes is None or changes.previous_run_id is None:
        return None
    return (f"since run {changes.previous_run_id}: {len(changes.new)} new, {len(changes.changed)} changed, "
            f"{len(changes.gone)} gone" + (f" ({', '.join(changes.gone[:10])})" if changes.gone else ""))


TABLE = register(Renderer("table", "txt", "text/plain", render_inventory_table, ("inventory",)))
