"""Open Cybersecurity Schema Framework (OCSF 1.1.0) JSON, one event per line: alerts and findings
as Detection Finding (2004), flow summaries as Network Activity (4001), assets as Device
Inventory Info (5001), audit records and heartbeats as Base Event (0). type_uid is
class_uid * 100 + activity_id; times are milliseconds since the epoch. What OCSF has no attribute
for (the observer, site, sequence, controls, firmware) goes in `unmapped`. ocsf_fields.json lists
the attributes used, per class."""
from __future__ import annotations

from plantguard import __version__
from plantguard.siem.events import Endpoint, Event
from plantguard.siem.spec import Format
from plantguard.siem.text import json_line, pruned

OCSF_VERSION = "1.1.0"
SEVERITY_ID = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
SEVERITY_NAME = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}

# event kind -> (class_uid, class_name, category_uid, category_name, activity_id, activity_name)
CLASSES = {
    "alert": (2004, "Detection Finding", 2, "Findings", 1, "Create"),
    "finding": (2004, "Detection Finding", 2, "Findings", 1, "Create"),
    "flow": (4001, "Network Activity", 4, "Network Activity", 6, "Traffic"),
    "asset": (5001, "Device Inventory Info", 5, "Discovery", 2, "Collect"),
    "audit": (0, "Base Event", 0, "Uncategorized", 99, "Other"),
    "heartbeat": (0, "Base Event", 0, "Uncategorized", 99, "Other"),
}


def _ms(t: float | None) -> int | None:
    return None if t is None else round(t * 1000)


def document(e: Event) -> dict:
    class_uid, class_name, cat_uid, cat_name, act_id, act_name = CLASSES[e.kind]
    sev = SEVERITY_ID[e.severity]
    doc = {"class_uid": class_uid, "class_name": class_name, "category_uid": cat_uid, "category_name": cat_name,
           "activity_id": act_id, "activity_name": act_name, "type_uid": class_uid * 100 + act_id,
           "severity_id": sev, "severity": SEVERITY_NAME[sev], "time": _ms(e.time), "message": e.message,
           "metadata": {"uid": e.id, "version": OCSF_VERSION,
                        "product": {"name": "plantguard", "vendor_name": "plantguard", "version": __version__}}}
    unmapped = {"kind": e.kind, "seq": e.seq, "site": e.site, "action": e.action,
                "observer": {"name": e.observer.name, "host": e.observer.host}}
    if class_uid == 2004:
        doc["status_id"], doc["status"] = 1, "New"
        info = {"uid": e.id, "title": e.message, "types": [e.rule.practice] if e.rule and e.rule.practice else None,
                "attacks": [{"technique": {"uid": t}} for t in e.attack] or None}
        if e.rule:
            info["analytic"] = {"uid": e.rule.id, "name": e.rule.title, "type_id": 1, "type": "Rule"}
            unmapped["controls"] = {fw: list(ids) for fw, ids in e.rule.controls} or None
        doc["finding_info"] = info
        evidence = {"src_endpoint": _endpoint(e.source), "dst_endpoint": _endpoint(e.destination),
                    "data": {"frames": [{"capture": x.capture, "frame": x.frame, "time": _ms(x.time),
                                         "detail": x.detail or None} for x in e.evidence] or None,
                             "total": e.evidence_total or None}}
        doc["evidences"] = [evidence]
        unmapped["outcome"] = e.outcome
    elif class_uid == 4001:
        doc["src_endpoint"], doc["dst_endpoint"] = _endpoint(e.source), _endpoint(e.destination)
        doc["start_time"], doc["end_time"] = _ms(e.time), _ms(e.end_time)
        if e.network:
            doc["connection_info"] = {"protocol_name": e.network.transport}
            doc["app_name"] = e.network.protocol
            doc["traffic"] = {"packets": e.network.packets, "bytes": e.network.bytes}
            unmapped["vlan"] = e.network.vlan
    elif class_uid == 5001:
        src, dev = e.source or Endpoint(), e.device
        doc["device"] = {"uid": src.mac or src.ip, "ip": src.ip, "mac": src.mac, "name": src.name,
                         "type_id": 99, "type": dev.role if dev else None,
                         "vendor_name": dev.vendor if dev else None, "zone": dev.zone if dev else None}
        if dev:
            unmapped.update(product=dev.product, firmware=dev.firmware)
    doc["unmapped"] = unmapped
    return pruned(doc)


def _endpoint(p: Endpoint | None) -> dict | None:
    return None if p is None else {"ip": p.ip, "mac": p.mac, "port": p.port, "hostname": p.name}


def render(e: Event) -> str:
    return json_line(document(e))


FORMAT = Format("ocsf", render, "application/x-ndjson", "OCSF 1.1.0 JSON, one event per line")
