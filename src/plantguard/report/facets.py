"""What the HTML report's findings can be filtered by: each finding row gets its id and the
tokens of its data attributes (zones and devices as space-separated lists, so a token never holds
a space), and the report gets the choices each filter offers, with how many findings have each."""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

from plantguard.report.context import (
    SEVERITY_ORDER,
    as_dict,
    as_list,
    practice_name,
    text,
)

STATUSES = ("fail", "suppressed", "pass")
STATUS_NAMES = {"fail": "Problems", "suppressed": "Suppressed", "pass": "Passed"}


def token(v: Any) -> str:
    """One attribute token: whitespace (and nothing else) replaced, so the list splits back."""
    return re.sub(r"\s+", "_", text(v).strip())


def annotate(rows: list[dict], contract: Any) -> dict[str, list[tuple[str, str, int]]]:
    """Give each row `id`, `zones` and `devices` (lists of tokens), `practice_token` and
    `check_token`; return, for each filter,
    (value, label, count) in the order the filter lists them."""
    zone_of: dict[str, str] = {}
    for a in as_list(as_dict(contract).get("assets")):
        a = as_dict(a)
        if text(a.get("zone")):
            for ip in [a.get("ip"), *as_list(a.get("ips"))]:
                if text(ip):
                    zone_of.setdefault(text(ip), text(a.get("zone")))
    for i, r in enumerate(rows, 1):
        r["id"] = f"finding-{i}"
        r["devices"] = list(dict.fromkeys(token(a) for a in r["assets"] if token(a)))
        r["zones"] = list(dict.fromkeys(token(zone_of[a]) for a in r["assets"] if a in zone_of))
        r["practice_token"] = token(r["practice_key"]) or "other"     # "" is the filter's "any"
        r["check_token"] = token(r["check"]) or "unknown"
    count = {k: Counter() for k in ("severity", "status", "practice", "zone", "device", "check")}
    for r in rows:
        count["severity"][r["severity"]] += 1
        count["status"][r["status"]] += 1
        count["practice"][r["practice_token"]] += 1
        count["check"][r["check_token"]] += 1
        count["zone"].update(r["zones"])
        count["device"].update(r["devices"])
    practices = {r["practice_token"]: r["practice"] for r in rows}
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
