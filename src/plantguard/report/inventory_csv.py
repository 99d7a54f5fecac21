"""The inventory as CSV: one row per asset, every cell through util.sanitize.csv_cell (a device
named =HYPERLINK(...) stays text in a spreadsheet)."""
from __future__ import annotations

import csv
import io

from plantguard.report.inventory import InventoryReport
from plantguard.report.registry import Renderer, register
from plantguard.util.sanitize import csv_row

COLUMNS = ("ip", "mac", "vendor", "role", "zone", "vlans", "product", "firmware", "serial", "name",
           "protocols", "services", "first_seen", "last_seen")


def render_inventory_csv(inv: InventoryReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(csv_row(COLUMNS))
    for a in inv.assets:
        d = a.as_dict()
        i = d["identity"]
        w.writerow(csv_row([d["ip"], d["mac"], d["vendor"], d["role"], d["zone"], " ".join(map(str, d["vlans"])),
                    i.get("product") or i.get("model"), i.get("firmware"), i.get("serial"), i.get("name"),
                    " ".join(d["protocols"]), " ".join(f"{s['proto']}/{s['port']}" for s in d["services"]),
                    d["first_seen"], d["last_seen"]]))
    return buf.getvalue()


CSV = register(Renderer("csv", "csv", "text/csv", render_inventory_csv, ("inventory",)))
