"""Alert rules, declared once as data, and the Alerter that fires each key once.

A rule borrows its ATT&CK for ICS technique ids and its controls from the check that judges the
same thing (checks' CheckMeta), so they are never copied; the rules no check covers name their
techniques here. PLC changes are judged from the operation observations as each chunk is
processed (plc_changes), the way checks/plc.py judges them: a write, configuration, program,
firmware or run/stop operation towards a controller from a host that is not a declared
engineering station, or a program change outside the site's maintenance windows. Everything
else is judged at checkpoints, from the baseline and the assessment (at_checkpoint).

Each (rule, key) fires once: an Event whose id hashes the key, so a repeat after a restart has the
same id and the receiver drops it; after that only its count and last seen change."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from plantguard.checks.registry import check_meta
from plantguard.model import PROGRAM_CATEGORIES, WRITE_CATEGORIES, Observation
from plantguard.siem import events
from plantguard.siem.events import Endpoint, EvidenceRef, Event, Network, Rule

MAX_KEYS = 100_000       # fired keys kept; past it new keys still alert but are not remembered


@dataclass(frozen=True)
class AlertRule:
    id: str
    title: str
    severity: str
    check: str | None = None          # the check whose techniques and controls the rule carries
    attack: tuple[str, ...] = ()      # techniques of a rule no check covers
    covers: tuple[str, ...] = ()      # checks this rule reports per key (no check-failed alert for them)

    def techniques(self, check_id: str | None = None) -> tuple[str, ...]:
        meta = check_meta(check_id or self.check) if (check_id or self.check) else None
        return self.attack or (meta.attack if meta else ())

    def as_rule(self, check_id: str | None = None) -> Rule:
        meta = check_meta(check_id or self.check) if (check_id or self.check) else None
        controls = tuple(sorted((k, tuple(v)) for k, v in meta.controls.items())) if meta else ()
        return Rule(self.id, meta.title if check_id and meta else self.title,
                    meta.practice if meta else "", controls)


RULES = {r.id: r for r in (
    AlertRule("alert.new-asset", "New asset", "medium", check="inventory.unknown-asset"),
    AlertRule("alert.address-change", "MAC/IP binding changed", "high", attack=("T0830",)),
    AlertRule("alert.identity-change", "Device identity or firmware changed", "high", attack=("T0839", "T0857")),
    AlertRule("alert.new-conduit", "New conduit", "medium", check="segmentation.zone-violation"),
    AlertRule("alert.new-protocol", "New protocol on a device", "low", check="services.insecure"),
    AlertRule("alert.new-external", "New external destination", "high", check="egress.internet"),
    AlertRule("alert.plc-write", "Controller write from an unauthorised host", "high",
              check="plc.unauthorized-write", covers=("plc.unauthorized-write",)),
    AlertRule("alert.program-change", "Program download, firmware or run/stop from an unauthorised host",
              "critical", check="plc.unauthorized-program-change", covers=("plc.unauthorized-program-change",)),
    AlertRule("alert.change-outside-window", "Controller program change outside maintenance windows", "medium",
              check="plc.change-outside-window", covers=("plc.change-outside-window",)),
    AlertRule("alert.new-controller-op", "New controller operation from an authorised station", "low",
              check="plc.unauthorized-program-change"),
    AlertRule("alert.default-credential", "Default-credential login", "critical", check="credentials.default",
              covers=("credentials.default",)),
    AlertRule("alert.cleartext-credential", "Cleartext credential", "high", check="credentials.cleartext",
              covers=("credentials.cleartext",)),
    AlertRule("alert.insecure-service", "New insecure service", "medium", check="services.insecure",
              covers=("services.insecure",)),
    AlertRule("alert.check-failed", "Assessment check turned from pass to fail", "medium"),
)}
FINDING_RULES = {c: r for r in RULES.values() if r.id in ("alert.default-credential", "alert.cleartext-credential",
                                                          "alert.insecure-service") for c in r.covers}
COVERED = {c for r in RULES.values() for c in r.covers}


class Alerter:
    """Fires each (rule, key) once through `emit`; `fired` is the state a checkpoint keeps."""

    def __init__(self, emit: Callable[[Event], None], state: dict | None = None, *, site: str | None = None,
                 observer=None):
        self.emit, self.site = emit, site
        self.observer = observer or events.default_observer()
        self.fired: dict[str, dict] = dict((state or {}).get("fired", {}))
        self.checks: dict[str, str] = dict((state or {}).get("checks", {}))   # check id -> pass/fail
        self.forgotten = int((state or {}).get("forgotten", 0))
        self.raised = 0

    def state(self) -> dict:
        return {"fired": self.fired, "checks": self.checks, "forgotten": self.forgotten}

    def fire(self, rule: AlertRule, key: str, when: float, message: str, *, severity: str | None = None,
             src: Endpoint | None = None, dst: Endpoint | None = None, evidence: Iterable[EvidenceRef] = (),
             network: Network | None = None, check_id: str | None = None) -> Event | None:
        full = f"{rule.id}|{key}"
        seen = self.fired.get(full)
        if seen is not None:
            seen["count"] += 1
            seen["last"] = max(seen["last"], when)
            return None
        if len(self.fired) < MAX_KEYS:
            self.fired[full] = {"first": when, "last": when, "count": 1}
        else:
            self.forgotten += 1
        ev = list(evidence)
        e = events.alert(full, message, severity or rule.severity, action=rule.id.removeprefix("alert."),
                         observer=self.observer, when=when, site=self.site, source=src, destination=dst,
                         rule=rule.as_rule(check_id), attack=rule.techniques(check_id),
                         evidence=tuple(ev[:events.MAX_EVIDENCE]), evidence_total=len(ev), network=network)
        self.raised += 1
        self.emit(e)
        return e


def _epoch(text: str | None) -> float | None:
    from datetime import datetime
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None
    except ValueError:
        return None


def _ref(o: Observation) -> EvidenceRef:
    return EvidenceRef(o.capture, o.frame, o.ts)


def plc_changes(alerter: Alerter, ops: Iterable[Observation], site, baseline, controllers: set[str]) -> list[Event]:
    """Alerts for the new operation observations of a chunk (Session.feed), judged as
    checks/plc.py judges them; every controller operation goes into the baseline."""
    from plantguard.checks._common import INDUSTRIAL_PROTOCOLS
    from plantguard.checks.plc import STATIONS_NOTE, _op_text
    declared = bool(site is not None and site.engineering_workstations)
    out = []
    for o in ops:
        cat = str(o.data.get("category") or "")
        program = cat in PROGRAM_CATEGORIES
        if not (program or cat in WRITE_CATEGORIES) or not o.dst:
            continue
        if o.proto not in INDUSTRIAL_PROTOCOLS and o.dst not in controllers:
            continue
        klass = "program" if program else "write"
        key = f"{o.src}>{o.dst}|{o.proto}|{klass}"
        new, _ = baseline.observe("controller-op", key, o.ts, {"capture": o.capture, "frame": o.frame}, o.count)
        src, dst = Endpoint(o.src, o.src_mac, o.sport), Endpoint(o.dst, o.dst_mac, o.dport)
        net = Network(o.l4 or None, o.proto, o.vlan)
        what = _op_text(o)
        if declared and site.is_engineering_workstation(o.src):
            if program and site.maintenance_windows:
                z = site.zone_of(o.dst, o.vlan)
                if site.maintenance_window_at(o.ts, z.name if z is not None else None) is None:
                    out.append(alerter.fire(RULES["alert.change-outside-window"], key, o.ts,
                                            f"{what} from {o.src} to {o.dst} outside every maintenance window",
                                            src=src, dst=dst, evidence=[_ref(o)], network=net))
                    continue
            if new:
                out.append(alerter.fire(RULES["alert.new-controller-op"], key, o.ts,
                                        f"new controller operation: {what} from {o.src} to {o.dst}",
                                        src=src, dst=dst, evidence=[_ref(o)], network=net))
            continue
        rule = RULES["alert.program-change" if program else "alert.plc-write"]
        why = "which is not an authorised engineering station" if declared else f"cannot be verified: {STATIONS_NOTE}"
        out.append(alerter.fire(rule, key, o.ts, f"{what} from {o.src} to {o.dst}, {why}",
                                severity=None if declared else "medium", src=src, dst=dst,
                                evidence=[_ref(o)], network=net))
    return [e for e in out if e is not None]


MAX_MACS_SEEN = 8   # per address, in the baseline


def at_checkpoint(alerter: Alerter, contract: dict, result, baseline, site) -> list[Event]:
    """Alerts a checkpoint raises: new and changed baseline keys, FAIL findings of the checks
    with a rule of their own (per subject), and checks that turned from pass to fail."""
    from plantguard.net import address_class
    out: list[Event | None] = []
    when = max((c.last for c in result.captures if c.last), default=0.0)
    assets = contract["assets"]
    zone = {a["ip"]: a.get("zone") for a in assets if a.get("ip")}
    wire_macs: dict[str, set] = {}     # address -> the MACs its flows were seen with
    for f in getattr(result, "flows", None) or ():
        for ip, mac in ((f.client, f.client_mac), (f.server, f.server_mac)):
            if ip and mac:
                wire_macs.setdefault(ip, set()).add(mac)
    for a in assets:
        key = a.get("ip") or a.get("mac")
        if not key:
            continue
        ident = {k: a["identity"][k] for k in ("vendor", "product", "model", "firmware", "serial")
                 if a.get("identity", {}).get(k)}
        # every MAC the address was seen with: an address with two (asymmetric routing, a
        # proxy-ARP router on one leg, teamed NICs) may change which one it is given without moving
        seen = set(baseline.value("asset", key, {}).get("macs_seen") or ())
        seen.update(m for m in [a.get("mac"), *(a.get("macs") or ()), *wire_macs.get(key, ())] if m)
        value = {"mac": a.get("mac"), "identity": ident, "macs_seen": sorted(seen)[:MAX_MACS_SEEN]}
        first = _epoch(a.get("first_seen")) or when
        new, old = baseline.observe("asset", key, first, None, 1, value)
        dst = Endpoint(a.get("ip"), a.get("mac"))
        if new:
            out.append(alerter.fire(RULES["alert.new-asset"], key, when,
                                    f"new asset {key} ({a.get('role')}, {a.get('vendor') or 'vendor unknown'})",
                                    dst=dst))
        elif old:
            if a.get("ip") and old.get("mac") and a.get("mac") and old["mac"] != a["mac"] \
                    and a["mac"] not in (old.get("macs_seen") or ()):
                out.append(alerter.fire(RULES["alert.address-change"], f"{key}|{a['mac']}", when,
                                        f"{key} moved from MAC {old['mac']} to {a['mac']}", dst=dst))
            for k, v in ident.items():
                was = old.get("identity", {}).get(k)
                if was and was != v:
                    out.append(alerter.fire(RULES["alert.identity-change"], f"{key}|{k}|{v}", when,
                                            f"{key} {k} changed from {was} to {v}", dst=dst))
        for proto in a.get("protocols", []):
            if baseline.observe("protocol", f"{key}|{proto}", first, None, 1)[0]:
                out.append(alerter.fire(RULES["alert.new-protocol"], f"{key}|{proto}", when,
                                        f"{key} speaks {proto}, not seen before", dst=dst))
    zoned = site is not None and bool(getattr(site, "zones", None))
    server_sides = None          # the server ends of known conduits, made when an aggregate needs them
    for f in result.flows:
        ev = {"capture": f.capture, "frame": f.first_frame}
        ref = [EvidenceRef(f.capture, f.first_frame, f.first)]
        service = f.app or f"{f.l4}/{f.port}"
        server_side = f">{zone.get(f.server)}|{service}" if zoned else f">{f.server}:{f.port}/{f.l4}"
        if "/" in (f.client or ""):
            # the flow cap folded evicted flows into one per client subnet: their conduits were
            # keyed (and alerted) as the flows they were; only a server end nobody used is new
            if server_sides is None:
                server_sides = {k[k.index(">"):] for k in baseline.sets["conduit"] if ">" in k}
            if server_side in server_sides:
                continue
        key = (f"{zone.get(f.client)}" if zoned else f"{f.client}") + server_side
        src, dst = Endpoint(f.client, f.client_mac, f.client_port), Endpoint(f.server, f.server_mac, f.port)
        net = Network(f.l4, f.app, f.vlan, f.packets, f.bytes)
        if baseline.observe("conduit", key, f.first, ev, f.packets)[0]:
            out.append(alerter.fire(RULES["alert.new-conduit"], key, f.first, f"new conduit {key}",
                                    src=src, dst=dst, evidence=ref, network=net))
        if address_class(f.server) == "public":
            k = f"{f.server}:{f.port}/{f.l4}"
            if baseline.observe("external", k, f.first, ev, f.packets)[0]:
                out.append(alerter.fire(RULES["alert.new-external"], k, f.first,
                                        f"new external destination {k} from {f.client}", src=src, dst=dst,
                                        evidence=ref, network=net))
    status: dict[str, str] = {}
    for fd in contract["findings"]:
        if fd.get("suppressed"):    # an accepted risk (--suppress): counted in the contract, never alerted
            continue
        status[fd["check"]] = "fail" if fd["status"] == "fail" or status.get(fd["check"]) == "fail" else "pass"
        rule = FINDING_RULES.get(fd["check"])
        if rule is not None and fd["status"] == "fail":
            refs = [EvidenceRef(e.get("capture"), e.get("frame"), None, e.get("detail") or "")
                    for e in fd.get("evidence", [])]
            names = fd.get("assets") or []
            out.append(alerter.fire(rule, "|".join(names) or fd["title"], when, fd["title"],
                                    severity=fd["severity"], dst=Endpoint(names[0]) if names else None,
                                    src=Endpoint(names[1]) if len(names) > 1 else None, evidence=refs))
    for check_id, now in sorted(status.items()):
        was = alerter.checks.get(check_id)
        alerter.checks[check_id] = now
        if was == "pass" and now == "fail" and check_id not in COVERED:
            fd = next(x for x in contract["findings"] if x["check"] == check_id and x["status"] == "fail"
                      and not x.get("suppressed"))
            refs = [EvidenceRef(e.get("capture"), e.get("frame"), None, e.get("detail") or "")
                    for e in fd.get("evidence", [])]
            out.append(alerter.fire(RULES["alert.check-failed"], check_id, when,
                                    f"{check_id} turned from pass to fail: {fd['title']}", severity=fd["severity"],
                                    evidence=refs, check_id=check_id))
    return [e for e in out if e is not None]
