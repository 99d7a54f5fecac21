"""The patch plan (plan.patching.build_patch_plan) as `plantguard intel plan` writes it: CSV (one
row per device and advisory, spreadsheet-ready), JSON, or one line of text per device."""
from __future__ import annotations

import csv
import io
import json

from plantguard.report.registry import Renderer, register
from plantguard.util.sanitize import csv_cell, terminal

CSV_COLUMNS = ("priority", "asset", "name", "role", "zone", "criticality", "vendor", "product", "firmware",
               "advisory", "cves", "known_exploited", "max_cvss", "confidence", "fixed_in", "action",
               "window", "window_start", "estimated_downtime_hours", "fits_window", "mitigations",
               "compensating_controls", "priority_reason")


def patch_plan_csv(plan: list[dict]) -> str:
    """One row per (device, advisory), spreadsheet-ready."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for e in plan or ():
        win = e.get("window") or {}
        mit = " | ".join(m.get("details", "") for m in e.get("mitigations") or [])
        ctl = " | ".join(f"{c['control']}: {c['status']}" for c in e.get("compensating_controls") or [])
        for a in e.get("advisories") or [{}]:
            _write(w, {
                "priority": a.get("priority") or e.get("priority"), "asset": e.get("asset"), "name": e.get("name"),
                "role": e.get("role"), "zone": e.get("zone"), "criticality": e.get("criticality"),
                "vendor": e.get("vendor"), "product": e.get("product"), "firmware": e.get("firmware"),
                "advisory": a.get("advisory"), "cves": " ".join(a.get("cves") or []),
                "known_exploited": " ".join(a.get("known_exploited") or []), "max_cvss": a.get("max_cvss"),
                "confidence": a.get("confidence"), "fixed_in": a.get("fixed_in"), "action": a.get("remediation"),
                "window": win.get("name"), "window_start": win.get("start"),
                "estimated_downtime_hours": e.get("estimated_downtime_hours"), "fits_window": e.get("fits_window"),
                "mitigations": mit, "compensating_controls": ctl, "priority_reason": e.get("priority_reason")})
    return buf.getvalue()


def _write(w: csv.DictWriter, row: dict) -> None:
    """A row with every text cell through util.sanitize.csv_cell (numbers stay numbers)."""
    w.writerow({k: v if isinstance(v, (int, float)) or v is None else csv_cell(v) for k, v in row.items()})


def patch_plan_json(plan: list[dict]) -> str:
    return json.dumps(plan, indent=2) + "\n"


def patch_plan_text(plan: list[dict]) -> str:
    """One line per device: priority, device, what to do, the window (terminal-safe text:
    product and firmware strings come from the devices)."""
    return "".join(terminal(f"[{e['priority']}] {e['asset']} {e.get('product') or ''} {e.get('firmware') or ''}: "
                            f"{'; '.join(map(str, e.get('actions') or []))} "
                            f"(window: {(e.get('window') or {}).get('start', '-')})") + "\n"
                   for e in plan) or "no vulnerable device found\n"


CSV = register(Renderer("csv", "csv", "text/csv", patch_plan_csv, ("plan",)))
JSON = register(Renderer("json", "json", "application/json", patch_plan_json, ("plan",)))
TEXT = register(Renderer("text", "txt", "text/plain", patch_plan_text, ("plan",)))
