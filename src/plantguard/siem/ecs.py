"""Elastic Common Schema (ECS) JSON, one document per line. Field names are those of ECS
(ecs_fields.json lists the ones used, with their types); what ECS has no field for (the
practice, controls, evidence frames, the finding's outcome as pass/fail) goes under the custom
`plantguard.*` namespace, as ECS asks of custom fields."""
from __future__ import annotations

from plantguard import __version__
from plantguard.siem.events import Endpoint, Event
from plantguard.siem.spec import Format
from plantguard.siem.text import json_line, pruned
from plantguard.util.timefmt import iso

ECS_VERSION = "8.17.0"
SEVERITY = {"info": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}   # event.severity, as CEF's scale

# event kind -> (event.kind, event.category, event.type)
CATEGORIES = {
    "alert": ("alert", ["intrusion_detection", "network"], ["info"]),
    "finding": ("state", ["configuration"], ["info"]),
    "asset": ("asset", ["host"], ["info"]),
    "flow": ("event", ["network"], ["connection"]),
    "audit": ("event", ["configuration"], ["change"]),
    "heartbeat": ("metric", ["process"], ["info"]),
}


def document(e: Event) -> dict:
    kind, category, type_ = CATEGORIES[e.kind]
    event = {"kind": kind, "category": category, "type": type_, "id": e.id, "sequence": e.seq,
             "severity": SEVERITY[e.severity], "action": e.action, "dataset": f"plantguard.{e.kind}",
             "module": "plantguard", "provider": e.observer.name,
             "outcome": {"pass": "success", "fail": "failure"}.get(e.outcome or "")}
    if e.end_time is not None:
        event.update(start=iso(e.time), end=iso(e.end_time))
    doc = {"@timestamp": iso(e.time), "message": e.message, "ecs": {"version": ECS_VERSION},
           "event": event,
           "observer": {"name": e.observer.name, "hostname": e.observer.host, "type": "sensor",
                        "vendor": "plantguard", "product": "plantguard", "version": __version__},
           "labels": {"site": e.site} if e.site else None}
    if e.source:
        doc["source"] = _endpoint(e.source)
    if e.destination:
        doc["destination"] = _endpoint(e.destination)
    if e.kind == "asset" and e.source:
        doc["host"] = {"ip": [e.source.ip] if e.source.ip else None,
                       "mac": [_ecs_mac(e.source.mac)] if e.source.mac else None,
                       "name": e.source.name, "type": e.device.role if e.device else None}
    if e.device:
        doc["device"] = {"manufacturer": e.device.vendor,
                         "model": {"name": e.device.product} if e.device.product else None}
    if e.network:
        n = e.network
        doc["network"] = {"transport": n.transport, "protocol": n.protocol, "packets": n.packets,
                          "bytes": n.bytes, "vlan": {"id": str(n.vlan)} if n.vlan is not None else None}
    if e.rule:
        doc["rule"] = {"id": e.rule.id, "name": e.rule.title, "category": e.rule.practice or None,
                       "ruleset": "plantguard"}
    if e.attack:
        doc["threat"] = {"framework": "MITRE ATT&CK for ICS", "technique": {"id": list(e.attack)}}
    custom = {"outcome": e.outcome,
              "controls": {fw: list(ids) for fw, ids in e.rule.controls} if e.rule and e.rule.controls else None,
              "evidence": [{"capture": x.capture, "frame": x.frame, "time": iso(x.time), "detail": x.detail or None}
                           for x in e.evidence] or None,
              "evidence_total": e.evidence_total or None,
              "firmware": e.device.firmware if e.device else None,
              "zone": e.device.zone if e.device else None}
    if any(v is not None for v in custom.values()):
        doc["plantguard"] = custom
    return pruned(doc)


def _endpoint(p: Endpoint) -> dict:
    return {"ip": p.ip, "mac": _ecs_mac(p.mac) if p.mac else None, "port": p.port, "domain": p.name}


def _ecs_mac(mac: str) -> str:
    """ECS writes MACs upper case with dashes (00-1B-54-3A-10-01)."""
    return mac.upper().replace(":", "-")


def render(e: Event) -> str:
    return json_line(document(e))


FORMAT = Format("ecs", render, "application/x-ndjson", "Elastic Common Schema JSON, one document per line")
