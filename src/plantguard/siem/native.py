"""plantguard's own event JSON: the Event fields as they are (plus its id), one object per line.
The central server's alert envelopes carry events in this form, so nothing is lost or renamed
between a sensor and the server."""
from __future__ import annotations

import dataclasses
import json

from plantguard.siem.events import Event
from plantguard.siem.spec import Format


def record(e: Event) -> dict:
    return {**dataclasses.asdict(e), "id": e.id}


def render(e: Event) -> str:
    return json.dumps(record(e), ensure_ascii=True, separators=(",", ":"), allow_nan=False)


FORMAT = Format("plantguard", render, "application/x-ndjson", "plantguard's own event JSON, one object per line")
