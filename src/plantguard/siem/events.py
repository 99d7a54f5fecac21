"""The one event model every SIEM format renders: alerts, findings, assets, flow summaries, audit
records and heartbeats. An event's id is a hash of its kind, key and sequence, so the same event
delivered twice (at-least-once delivery) carries the same id and the receiver can drop the copy.

Text in an event is kept as it arrived (it may be hostile: a device named it); each renderer
neutralises it for its format. `from_assessment` turns an assessment contract into events."""
from __future__ import annotations

import dataclasses
import hashlib
import socket
import time as _time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from plantguard import contract
from plantguard.checks.base import SEVERITIES

KINDS = ("alert", "finding", "asset", "flow", "audit", "heartbeat")
MAX_EVIDENCE = 8        # evidence references per event (the event says how many there were)


@dataclass(frozen=True)
class Endpoint:
    ip: str | None = None
    mac: str | None = None
    port: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class Rule:
    id: str                                            # check id or alert rule id
    title: str = ""
    practice: str = ""
    controls: tuple[tuple[str, tuple[str, ...]], ...] = ()   # (framework, control ids), sorted


@dataclass(frozen=True)
class EvidenceRef:
    capture: str | None = None
    frame: int | None = None
    time: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class Observer:
    name: str = "plantguard"                           # sensor name
    host: str = ""                                     # the host it runs on


@dataclass(frozen=True)
class Network:
    transport: str | None = None                       # tcp, udp, icmp
    protocol: str | None = None                        # application protocol
    vlan: int | None = None
    packets: int | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class Device:
    vendor: str | None = None
    product: str | None = None
    firmware: str | None = None
    role: str | None = None
    zone: str | None = None


@dataclass(frozen=True)
class Event:
    kind: str                                          # one of KINDS
    key: str                                           # what the event is about, stable across runs
    time: float                                        # POSIX seconds
    message: str
    severity: str = "info"                             # one of checks.base.SEVERITIES
    seq: int = 0                                       # nth event of this kind and key
    site: str | None = None
    observer: Observer = field(default_factory=Observer)
    source: Endpoint | None = None
    destination: Endpoint | None = None
    rule: Rule | None = None
    attack: tuple[str, ...] = ()                       # ATT&CK for ICS technique ids
    evidence: tuple[EvidenceRef, ...] = ()
    evidence_total: int = 0
    outcome: str | None = None                         # a finding's pass / fail
    action: str | None = None                          # what happened (new-asset, check-failed, ...)
    network: Network | None = None
    device: Device | None = None
    end_time: float | None = None                      # a flow summary's last packet

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"event kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"event severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}")

    @property
    def id(self) -> str:
        return event_id(self.kind, self.key, self.seq)


def event_id(kind: str, key: str, seq: int = 0) -> str:
    """128 bits of SHA-256 over kind, key and sequence, as hex: stable across runs and hosts."""
    raw = "\x1f".join((kind, key, str(seq))).encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()[:32]


def default_observer(name: str = "plantguard") -> Observer:
    return Observer(name=name, host=socket.gethostname())


def alert(key: str, message: str, severity: str, *, seq: int = 0, action: str | None = None,
          observer: Observer | None = None, when: float | None = None, **kw) -> Event:
    """An alert raised now (or at `when`)."""
    return Event("alert", key, _time.time() if when is None else when, message, severity, seq,
                 observer=observer or default_observer(), action=action, **kw)


def heartbeat(seq: int, message: str = "alive", *, observer: Observer | None = None,
              when: float | None = None, site: str | None = None) -> Event:
    obs = observer or default_observer()
    return Event("heartbeat", f"{obs.name}@{obs.host}", _time.time() if when is None else when, message,
                 seq=seq, site=site, observer=obs, action="heartbeat")


# -- from an assessment contract ---------------------------------------------------------------

def from_assessment(assessment: Any, *, failed_only: bool = True, assets: bool = True, flows: bool = False,
                    observer: Observer | None = None) -> list[Event]:
    """Events for an assessment contract (its dict or a contract.Assessment): one finding event
    per FAIL finding that is not an accepted risk (per finding with its outcome when failed_only
    is False; an accepted one as action check-accepted), then one asset event per asset, then
    (flows=True) one flow summary per flow. Event times come from the evidence, else from the
    captures' last packet."""
    a = assessment if isinstance(assessment, contract.Assessment) else contract.Assessment.model_validate(assessment)
    obs = observer or default_observer()
    fallback = max((t for t in (_epoch(c.last) for c in a.captures) if t is not None), default=None)
    fallback = _time.time() if fallback is None else fallback
    by_addr = {}
    for asset in a.assets:
        for addr in [asset.ip, asset.mac, *asset.ips, *asset.macs]:
            if addr:
                by_addr.setdefault(addr, asset)
    out, seen = [], {}
    for f in a.findings:
        if failed_only and f.suppressed is not None:   # an accepted risk (--suppress): not an alert
            continue
        if f.status == "fail" or not failed_only:
            e = _finding_event(f, a.site, obs, by_addr, fallback)
            seen[e.key] = n = seen.get(e.key, -1) + 1       # identical findings: numbered, not merged
            out.append(dataclasses.replace(e, seq=n) if n else e)
    if assets:
        out.extend(_asset_event(x, a.site, obs, fallback) for x in a.assets if x.ip or x.mac)
    if flows:
        out.extend(_flow_event(x, a.site, obs, by_addr, fallback) for x in a.flows)
    return out


def _finding_event(f: contract.Finding, site, obs, by_addr, fallback) -> Event:
    ev = tuple(EvidenceRef(e.capture, e.frame, _epoch(e.time), e.detail) for e in f.evidence[:MAX_EVIDENCE])
    when = next((e.time for e in ev if e.time is not None), fallback)
    port = (f.detail or {}).get("port")
    port = port if isinstance(port, int) and not isinstance(port, bool) and 0 <= port <= 65535 else None
    # the first asset is the finding's subject (the device at risk), a second one its peer
    dst = _endpoint(f.assets[0], by_addr, port) if f.assets else None
    src = _endpoint(f.assets[1], by_addr, None) if len(f.assets) > 1 else None
    rule = Rule(f.check, f.title, f.practice, tuple(sorted((k, tuple(v)) for k, v in f.controls.items())))
    key = "|".join((f.check, ",".join(f.assets), f.title))
    return Event("finding", key, when, f.title, f.severity if f.severity in SEVERITIES else "info",
                 site=site, observer=obs, source=src, destination=dst, rule=rule, attack=tuple(f.attack),
                 evidence=ev, evidence_total=max(f.evidence_total, len(f.evidence)), outcome=f.status,
                 action="check-accepted" if f.suppressed is not None
                 else f"check-{'failed' if f.status == 'fail' else 'passed'}")


def _asset_event(x: contract.Asset, site, obs, fallback) -> Event:
    name = _name(x)
    ident = x.identity or {}
    declared = x.declared or {}
    dev = Device(vendor=x.vendor or _str(declared.get("vendor")),
                 product=_str(ident.get("product")) or _str(declared.get("product")),
                 firmware=_str(ident.get("firmware")), role=x.role, zone=x.zone)
    what = " ".join(p for p in (dev.vendor, dev.product) if p) or x.role
    label = name or x.ip or x.mac
    # an IP is the asset (a router's MAC fronts several); an address-less asset is its MAC
    return Event("asset", x.ip or x.mac, _epoch(x.last_seen) or fallback, f"asset {label}: {what}",
                 site=site, observer=obs, source=Endpoint(x.ip, x.mac, None, name), device=dev,
                 network=Network(vlan=x.vlans[0]) if x.vlans else None, action="asset-seen")


def _flow_event(x: contract.Flow, site, obs, by_addr, fallback) -> Event:
    key = f"{x.src}|{x.dst}|{x.proto}|{x.port}|{x.vlan}"
    app = f" {x.app}" if x.app else ""
    return Event("flow", key, _epoch(x.first) or fallback,
                 f"{x.src} -> {x.dst} {x.proto}/{x.port}{app}: {x.packets} packets, {x.bytes} bytes",
                 site=site, observer=obs, source=_endpoint(x.src, by_addr, None),
                 destination=_endpoint(x.dst, by_addr, x.port if x.proto in ("tcp", "udp") else None),
                 network=Network(x.proto, x.app, x.vlan, x.packets, x.bytes), action="flow-summary",
                 end_time=_epoch(x.last))


def _endpoint(addr: str, by_addr, port) -> Endpoint:
    asset = by_addr.get(addr)
    if asset is None:
        mac = len(addr) == 17 and addr.count(":") == 5
        return Endpoint(ip=None if mac else addr, mac=addr if mac else None, port=port)
    return Endpoint(asset.ip, asset.mac, port, _name(asset))


def _name(x: contract.Asset) -> str | None:
    declared = x.declared or {}
    return (_str(declared.get("name")) or _str((x.identity or {}).get("name"))
            or (x.hostnames[0] if x.hostnames else None))


def _str(v) -> str | None:
    return v if isinstance(v, str) and v else None


def _epoch(v) -> float | None:
    if not isinstance(v, str) or not v:
        return None
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()
