"""FIRST EPSS scores (probability of exploitation in the next 30 days) from the daily CSV."""
from __future__ import annotations

import csv
import io
import re

from plantguard.knowledge.kev import CVE_RE


def is_epss_csv(text_head: str) -> bool:
    lines = [ln for ln in text_head.splitlines()[:3] if ln.strip()]
    body = [ln for ln in lines if not ln.startswith("#")]
    return bool(body) and body[0].replace(" ", "").lower().startswith("cve,epss")


def read_epss_csv(text: str) -> tuple[str | None, list[dict]]:
    """(score date, rows). The first line may be `#model_version:...,score_date:...`."""
    score_date = None
    m = re.search(r"score_date:(\d{4}-\d{2}-\d{2})", text[:300])
    if m:
        score_date = m.group(1)
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    rows = {}
    for item in csv.DictReader(io.StringIO(body)):
        cve = str(item.get("cve") or "").strip().upper()
        if not CVE_RE.match(cve):
            continue
        try:
            epss = float(item.get("epss") or "")
        except ValueError:
            continue
        try:
            pct = float(item.get("percentile")) if item.get("percentile") else None
        except ValueError:
            pct = None
        if 0.0 <= epss <= 1.0:
            rows[cve] = {"cve": cve, "epss": epss, "percentile": pct, "score_date": score_date}
    return score_date, list(rows.values())
