"""`render(contract, fmt)`: the one entry point for every report format (report.registry lists
them; the JSON report is declared here)."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from plantguard.report.registry import Renderer, names, register, renderer
from plantguard.util.warnings import summarized_captures

# the contract's top-level keys in the order ARCHITECTURE §5 presents them; others follow, sorted
TOP_LEVEL_ORDER = ("plantguard", "site", "organization_size", "captures", "zones", "assets", "flows",
                   "findings", "summary", "checks_not_run", "compliance", "roadmap", "patch_plan",
                   "attestations", "counters", "notes")
ALIASES = {"markdown": "md"}


def formats() -> tuple[str, ...]:
    """The report formats registered now (html, md, json, sarif, csv and any added at run time)."""
    return names("assess")


def __getattr__(name: str) -> Any:
    # FORMATS reads the registry each time, so renderers registered at run time are included
    if name == "FORMATS":
        return formats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def render(contract: dict, fmt: str) -> str | bytes:
    """The report of an assessment contract in `fmt` (html, md, json, csv, sarif, pdf ...), as text
    (bytes for a binary format such as pdf); RenderError when it cannot be rendered here."""
    fmt = (fmt or "").lower()
    chosen = renderer(ALIASES.get(fmt, fmt), "assess")
    return chosen.render(contract if isinstance(contract, dict) else {})


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
    """The contract as JSON; the captures' warnings summarised by kind (util.warnings), since a
    damaged capture can have one per record. Strings are kept exactly (the encoder escapes)."""
    doc = ordered(contract)
    if isinstance(doc.get("captures"), list):
        doc["captures"] = summarized_captures(doc["captures"])
    return json.dumps(doc, indent=2, ensure_ascii=False, default=_plain) + "\n"


JSON = register(Renderer("json", "json", "application/json", render_json, ("assess",)))
