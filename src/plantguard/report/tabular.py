"""CSV of findings: one row per finding, evidence summarised, safe to open in a spreadsheet."""
from __future__ import annotations

import csv
import io

from plantguard.report.context import as_dict, as_list, joined, num, text
from plantguard.report.registry import Renderer, register
from plantguard.util.sanitize import FORMULA_START, csv_cell

COLUMNS = ("check", "status", "severity", "title", "practice", "assets", "evidence_total",
           "first_capture", "first_frame", "first_time", "evidence", "iec62443-3-3", "nist-800-53r5",
           "iso27001-2022", "attack", "remediation", "id", "incident", "suppressed")
EVIDENCE_IN_CELL = 3
__all__ = ["COLUMNS", "FORMULA_START", "cell", "render_csv"]


def cell(v) -> str:
    """Neutralise text a spreadsheet would run as a formula (captures hold attacker strings)."""
    return csv_cell(v)


def _evidence(e: dict) -> str:
    where = text(e.get("capture"))
    if text(e.get("frame")):
        where += f"#{text(e.get('frame'))}"
    if text(e.get("time")):
        where += f" @{text(e.get('time'))}"
    return f"{where}: {text(e.get('detail'))}" if where else text(e.get("detail"))


def _suppressed(s: dict) -> str:
    """The accepted risk a finding is under, in one cell (empty when none)."""
    if not s:
        return ""
    ticket = f"; ticket {text(s.get('ticket'))}" if text(s.get("ticket")) else ""
    return f"accepted by {text(s.get('owner'))} until {text(s.get('expires'))}{ticket}: {text(s.get('reason'))}"


def render_csv(contract: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([cell(c) for c in COLUMNS])
    for f in as_list(contract.get("findings")):
        f = as_dict(f)
        ev = [as_dict(e) for e in as_list(f.get("evidence"))]
        first = ev[0] if ev else {}
        controls = as_dict(f.get("controls"))
        total = num(f.get("evidence_total")) or len(ev)
        summary = " | ".join(_evidence(e) for e in ev[:EVIDENCE_IN_CELL])
        if total > EVIDENCE_IN_CELL:
            summary += f" | (+{total - min(len(ev), EVIDENCE_IN_CELL)} more)"
        row = [text(f.get("check")), text(f.get("status")), text(f.get("severity")), text(f.get("title")),
               text(f.get("practice")), joined(f.get("assets"), "; "), str(total),
               text(first.get("capture")), text(first.get("frame")), text(first.get("time")), summary,
               joined(controls.get("iec62443-3-3"), "; "), joined(controls.get("nist-800-53r5"), "; "),
               joined(controls.get("iso27001-2022"), "; "), joined(f.get("attack"), "; "), text(f.get("remediation")),
               text(f.get("id")), text(f.get("incident")),
               _suppressed(as_dict(f.get("suppressed")))]
        w.writerow([cell(v) for v in row])
    return buf.getvalue()


CSV = register(Renderer("csv", "csv", "text/csv", render_csv, ("assess",)))
