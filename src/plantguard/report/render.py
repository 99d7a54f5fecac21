"""`render(contract, fmt)`: the one entry point for every report format."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

FORMATS = ("html", "md", "json", "csv", "sarif")

# the contract's top-level keys in the order ARCHITECTURE §5 presents them; others follow, sorted
TOP_LEVEL_ORDER = ("plantguard", "site", "organization_size", "captures", "zones", "assets", "flows",
                   "findings", "summary", "checks_not_run", "compliance", "roadmap", "patch_plan",
                   "attestations", "counters", "notes")


def render(contract: dict, fmt: str) -> str:
    """The report of an assessment contract in `fmt` (html, md, json, csv, sarif), as text."""
    fmt = (fmt or "").lower()
    if fmt == "markdown":
        fmt = "md"
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    contract = contract if isinstance(contract, dict) else {}
    if fmt == "json":
        return render_json(contract)
    if fmt == "csv":
        from plantguard.report.tabular import render_csv
        return render_csv(contract)
    if fmt == "sarif":
        from plantguard.report.sarif import render_sarif
        return render_sarif(contract)
    if fmt == "md":
        from plantguard.report.markdown import render_markdown
        return render_markdown(contract)
    from plantguard.report.html import render_html
    return render_html(contract)


def _plain(o: Any) -> Any:
    """JSON fallback for values that are not JSON types (sets, dataclasses, paths, zones ...)."""
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=str)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    return str(o)


def ordered(contract: dict) -> dict:
    keys = [k for k in TOP_LEVEL_ORDER if k in contract] + sorted((k for k in contract if k not in TOP_LEVEL_ORDER), key=str)
    return {k: contract[k] for k in keys}


def render_json(contract: dict) -> str:
    return json.dumps(ordered(contract), indent=2, ensure_ascii=False, default=_plain) + "\n"
