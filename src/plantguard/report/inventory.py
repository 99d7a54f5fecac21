"""What `plantguard inventory` shows, as one value for its renderers (inventory_table,
inventory_csv and the JSON document declared here)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from plantguard import __version__
from plantguard.report.registry import Renderer, register
from plantguard.util.warnings import summarized_captures


@dataclass(frozen=True)
class InventoryReport:
    assets: list                                # inventory.asset.Asset, in inventory order
    captures: list[dict]                        # CaptureStats.as_dict() per capture
    counters: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    changes: Any = None                         # inventory.history.Changes when the run was recorded
    version: str = __version__


def render_inventory_json(inv: InventoryReport) -> str:
    doc = {"plantguard": inv.version, "captures": summarized_captures(inv.captures),   # warnings by kind
           "assets": [a.as_dict() for a in inv.assets],
           "counters": inv.counters, "notes": inv.notes}
    if inv.changes is not None:
        doc["changes"] = inv.changes.as_dict()
    return json.dumps(doc, indent=2, default=str) + "\n"


JSON = register(Renderer("json", "json", "application/json", render_inventory_json, ("inventory",)))
