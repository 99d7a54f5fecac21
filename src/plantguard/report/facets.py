"""What the HTML report's findings can be filtered by: the choices each filter offers, with how
many findings have each, from the same tokens the findings' data attributes carry."""
from __future__ import annotations

from collections import Counter

from plantguard.report.context import SEVERITY_ORDER, practice_name

STATUSES = ("fail", "suppressed", "pass")
STATUS_NAMES = {"fail": "Problems", "suppressed": "Suppressed", "pass": "Passed"}


def annotate(rows: list[dict]) -> dict[str, list[tuple[str, str, int]]]:
    """For each filter, (value, label, count) in the order the filter lists them, counted over
    the finding rows (report.context.finding_row: `data_status`, `practice_key`, `check`, and
    `zones` / `devices` as space-separated tokens, the same values as the data attributes). A
    finding without a practice is filed under "other" ("" is the filter's "any")."""
    count = {k: Counter() for k in ("severity", "status", "practice", "zone", "device", "check")}
    practices: dict[str, str] = {}
    for r in rows:
        r["practice_key"] = r["practice_key"] or "other"
        practices.setdefault(r["practice_key"], r["practice"])
        count["severity"][r["severity"]] += 1
        count["status"][r["data_status"]] += 1
        count["practice"][r["practice_key"]] += 1
        count["check"][r["check"]] += 1
        count["zone"].update(r["zones"].split())
        count["device"].update(r["devices"].split())
    return {
        "severity": [(s, s, count["severity"][s]) for s in SEVERITY_ORDER if count["severity"][s]],
        "status": [(s, STATUS_NAMES[s], count["status"][s]) for s in STATUSES if count["status"][s]],
        "practice": sorted(((k, practices[k] or practice_name(k), n) for k, n in count["practice"].items()),
                           key=lambda x: x[1].lower()),
        "zone": [(z, z, n) for z, n in sorted(count["zone"].items())],
        "device": [(d, d, n) for d, n in sorted(count["device"].items(), key=lambda x: _address_key(x[0]))],
        "check": [(k, k, n) for k, n in sorted(count["check"].items())],
    }


def _address_key(s: str) -> tuple:
    """Addresses in numeric order (10.0.0.2 before 10.0.0.10), names after them."""
    parts = s.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return (0, tuple(int(p) for p in parts), s)
    return (1, (), s)
