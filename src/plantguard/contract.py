"""The assessment contract (`assess --format json`) as types: every stage's output is validated
into these models once, when the contract is built, and the JSON is dumped from them. The
published JSON Schema (docs/contract.schema.json) is generated from the same models
(`python -m plantguard.docs_gen`), and a test keeps it current.

The contract only grows: fields are added, never renamed or removed. Maps whose keys are data
(framework ids, operation categories, check-specific detail) stay open dictionaries.

The way back: findings_from, not_run_from, assets_from and site_from read a saved contract (or
foreign JSON of its shape) into the live types the compliance view, roadmap and patch plan take."""
from __future__ import annotations

import ipaddress
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from plantguard import site as sitefile
from plantguard.checks import base as checkbase
from plantguard.inventory import asset as inventory


class _Strict(BaseModel):
    """A closed record: a key the model does not declare is an error, not a silent extra."""
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """A record whose declared keys are typed and whose other keys pass through unchanged."""
    model_config = ConfigDict(extra="allow")


class Capture(_Strict):
    """One capture file read: its packets, time span and the problems met reading it."""
    path: str
    packets: int
    bytes: int | None = None
    first: str | None = None
    last: str | None = None
    warnings: list[str] = Field(default_factory=list, description="at most a few texts per kind of problem, "
                                "then one line per kind that had more")
    warning_counts: dict[str, int] = Field(default_factory=dict, description="every warning counted, by kind "
                                           "(truncated, corrupt_block, implausible_timestamp, ...)")


class RunWarning(_Strict):
    kind: str = Field(description="a capture warning kind (captures[].warning_counts) or a counter "
                      "(undecoded_link_type:195, undecoded_ip_proto:50, flows_evicted, ...)")
    count: int = Field(description="how many, as the readers or the engine counted them")
    captures: list[str] = Field(default_factory=list, description="the captures it was counted in; empty "
                                "for a count kept over the whole run")
    text: str = Field(description="what the count counts")


class Zone(_Strict):
    """A zone of the site file, or one inferred from addresses and VLANs without one."""
    name: str
    kind: str
    networks: list[str] = Field(default_factory=list)
    vlans: list[int] = Field(default_factory=list)


class Service(_Strict):
    """A port the asset answered on, as a server."""
    proto: str
    port: int
    name: str | None = None
    banner: str | None = None


class IdentitySource(_Strict):
    """Where one identity key of an asset came from."""
    via: str = Field(description="observation (the device stated it), derived (from another identity key), "
                                 "fingerprint (concluded by a fingerprint), inferred (from what the device did, "
                                 "see reason), site file, or active (learnt by plantguard probe: capture is its "
                                 "evidence pcap, at when)")
    proto: str | None = Field(default=None, description="protocol of the observation that stated it (for a "
                                                        "derived key: that stated the key it came from)")
    capture: str | None = Field(default=None, description="capture of that observation")
    frame: int | None = Field(default=None, description="frame of that observation in its capture (1-based)")
    derived_from: str | None = Field(default=None, description="the identity key it was derived from")
    fingerprint: str | None = Field(default=None, description="the fingerprint that concluded it")
    reason: str | None = Field(default=None, description="why it was inferred (via inferred)")
    at: str | None = Field(default=None, description="when the probe learnt it (via active), ISO 8601 UTC")


class SeenValue(_Strict):
    """One distinct value an asset said or was reached by, and how often it was seen."""
    value: str
    count: int = Field(description="observations that carried it (repeats included)")
    proto: str | None = Field(default=None, description="protocol it was seen in")
    port: int | None = Field(default=None, description="the asset's port it was seen on (a server's service port)")
    capture: str | None = Field(default=None, description="capture of its first sighting")
    frame: int | None = Field(default=None, description="frame of its first sighting (1-based)")


class SeenCertificate(_Strict):
    """One distinct certificate a server presented."""
    subject: str | None = None
    issuer: str | None = None
    not_before: str | None = Field(default=None, description="validity start, ISO 8601 UTC")
    not_after: str | None = Field(default=None, description="validity end, ISO 8601 UTC")
    serial: str | None = None
    fingerprint: str | None = Field(default=None, description="SHA-256 fingerprint")
    self_signed: bool | None = None
    position: int | None = Field(default=None, description="place in the chain presented (0 = leaf)")
    count: int = Field(description="times it was presented (repeats included)")
    proto: str | None = None
    port: int | None = Field(default=None, description="the server port it was presented on")
    capture: str | None = Field(default=None, description="capture of its first sighting")
    frame: int | None = Field(default=None, description="frame of its first sighting (1-based)")


class SeenBacnetObject(_Strict):
    """One named BACnet object (a point: analog-input 1 "Sensor_45312", ...) the device serves."""
    type: str | None = Field(default=None, description="object type name (analog-input, binary-output, ...)")
    instance: int | None = Field(default=None, description="object instance number")
    name: str = Field(description="its object-name")
    device_instance: int | None = Field(default=None, description="the device object holding it, when the "
                                        "message says (I-Have)")
    route: str | None = Field(default=None, description="'network N mac HEX' when the object is on a device "
                              "behind this BACnet router (the asset is the router)")
    count: int = Field(description="observations that named it (repeats included)")
    proto: str | None = None
    capture: str | None = Field(default=None, description="capture of its first sighting")
    frame: int | None = Field(default=None, description="frame of its first sighting (1-based)")


class SeenOpcuaApplication(_Strict):
    """One OPC UA application (its ApplicationDescription) seen at the asset's address."""
    application_uri: str | None = None
    product_uri: str | None = None
    name: str | None = Field(default=None, description="application name")
    role: str = Field(description="server (offered endpoints, or spoke from a service port) or client "
                      "(CreateSession)")
    port: int | None = Field(default=None, description="the server's port (null for a client)")
    count: int = Field(description="observations that carried it (repeats included)")
    proto: str | None = None
    capture: str | None = Field(default=None, description="capture of its first sighting")
    frame: int | None = Field(default=None, description="frame of its first sighting (1-based)")


_SEEN = " (at most 16 distinct, each with its count; distinct_values has how many there were)"


class Asset(_Open):
    """One device seen in the captures: addresses, role, identity and how each fact is known."""
    ip: str | None = None
    mac: str | None = None
    vendor: str | None = None
    role: str = "unknown"
    role_reasons: list[str] = Field(default_factory=list)
    zone: str | None = None
    vlans: list[int] = Field(default_factory=list)
    protocols: list[str] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    identity: dict[str, Any] = Field(default_factory=dict, description="identity facts; see observation_kinds.Identity")
    identity_sources: dict[str, IdentitySource] = Field(
        default_factory=dict, description="identity key -> where it came from (protocol, capture and frame of the "
                                          "observation that first stated it, or how it was derived)")
    user_agents: list[SeenValue] = Field(default_factory=list, description="every HTTP/SSDP User-Agent the "
                                         "asset sent, as a client" + _SEEN)
    banners: list[SeenValue] = Field(default_factory=list, description="every greeting or Server header the asset "
                                     "gave, as a server, with its port" + _SEEN)
    tls_server_names: list[SeenValue] = Field(default_factory=list, description="every TLS server name (SNI) "
                                              "clients asked the asset for" + _SEEN)
    certificates: list[SeenCertificate] = Field(default_factory=list, description="every certificate the asset "
                                                "presented, with subject, issuer and validity" + _SEEN)
    mqtt_client_ids: list[SeenValue] = Field(default_factory=list, description="every MQTT client id the asset "
                                             "connected with" + _SEEN)
    http_hosts: list[SeenValue] = Field(default_factory=list, description="every HTTP Host name clients reached "
                                        "the asset by" + _SEEN)
    opcua_endpoints: list[SeenValue] = Field(default_factory=list, description="every OPC UA endpoint URL the "
                                             "asset offered or was asked for" + _SEEN)
    bacnet_objects: list[SeenBacnetObject] = Field(
        default_factory=list, description="every named BACnet object (point) the device served: object-name "
        "of non-device objects in ReadProperty / ReadPropertyMultiple ACKs, and I-Have (at most 256 "
        "distinct, each with its count; distinct_values has how many there were)")
    opcua_applications: list[SeenOpcuaApplication] = Field(
        default_factory=list, description="every distinct OPC UA application at the asset's address, client "
        "or server (identity keeps the first ApplicationUri / ProductUri only)" + _SEEN)
    distinct_values: dict[str, int] = Field(default_factory=dict, description="per list above that is not "
                                            "empty: how many distinct values were seen (also past the ones kept)")
    hostnames: list[str] = Field(default_factory=list)
    ips: list[str] = Field(default_factory=list)
    macs: list[str] = Field(default_factory=list)
    peers: int = 0
    first_seen: str | None = None
    last_seen: str | None = None
    declared: dict[str, Any] | None = Field(
        default=None, description="the site file's entry for the device (name, role, vendor, product, "
                                  "criticality, notes, ...); null when the site file does not declare it")


class Flow(_Strict):
    """One conversation: client, server, server port, and what it carried."""
    src: str
    dst: str
    proto: str = Field(description="tcp, udp, icmp, icmpv6 or igmp (ICMP: one flow per request type, "
                                   "src the requester, an answer's sender dst; IGMP: one flow per message "
                                   "type, src the sender, dst the group)")
    port: int | None = Field(None, description="the server port; for icmp / icmpv6 the request type "
                                               "(8 / 128 echo, 3 / 1 unreachable, ...), for igmp the "
                                               "message type")
    app: str | None = None
    vlan: int | None = None
    packets: int
    bytes: int
    operations: dict[str, int] = Field(default_factory=dict, description="operation category -> count")
    first: str | None = None
    last: str | None = None
    tunnel: str | None = Field(None, description="the outermost tunnel the flow's packets were unwrapped "
                                                 "from (gre, erspan, vxlan, geneve, teredo, ipv4-in-ip, "
                                                 "ipv6-in-ip, pppoe, mpls; its first tunnelled packet's); "
                                                 "null when none was")


class Evidence(_Strict):
    """One frame that proves a finding: open it in Wireshark with frame.number == frame."""
    capture: str | None = Field(default=None, description="the capture file")
    frame: int | None = Field(default=None, description="frame number in that capture (1-based)")
    time: str | None = Field(default=None, description="the frame's time, ISO 8601 UTC")
    detail: str = Field(description="what the frame shows")


class Suppressed(_Strict):
    """The accepted risk (a --suppress entry) a failing finding is under (suppress.py)."""
    reason: str
    owner: str
    expires: str = Field(description="the last day it applies (YYYY-MM-DD)")
    ticket: str | None = None
    file: str = Field(description="the suppressions file (or the site file) holding it")
    entry: int = Field(description="the entry's number in that file (1-based)")


class SuppressionUse(Suppressed):
    """What became of one --suppress entry."""
    line: int = Field(description="its line in the file")
    check: str = Field(description="the check id or glob it matches")
    status: str = Field(description="active (accepts findings), expired (accepts none: its findings fail "
                                    "again) or unused (matches no failing finding)")
    matched: int = Field(description="failing findings it matches (for an expired one: would match)")


class Finding(_Strict):
    """The verdict of one check, on one or more assets: pass or fail, with its evidence."""
    id: str | None = Field(default=None, description="stable finding id: F- and a hash of its check, sorted "
                           "assets and title (plan/incidents.py); null in contracts older than incidents")
    check: str = Field(description="stable check ID")
    status: str = Field(description="pass | fail")
    severity: str
    title: str
    assets: list[str] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    evidence_total: int = 0
    practice: str = ""
    controls: dict[str, list[str]] = Field(default_factory=dict, description="framework -> control ids")
    attack: list[str] = Field(default_factory=list)
    remediation: str = ""
    detail: dict[str, Any] | None = Field(default=None, description="check-specific structured detail")
    incident: str | None = Field(default=None, description="id of the one incident it belongs to (every "
                                 "finding, PASS too, has one); null in contracts older than incidents")
    suppressed: Suppressed | None = Field(default=None, description="the accepted risk this failing finding "
                                          "is under (status stays fail; summary, --fail-on, compliance, "
                                          "roadmap and patch plan leave it out); null when none")


class Incident(_Strict):
    """Findings that are about one thing (plan/incidents.py): one host pair, one device's practice,
    or one product and firmware's advisories."""
    id: str = Field(description="stable incident id: I- and a hash of its kind and key")
    kind: str = Field(description="flow (every finding about one host pair), asset (one device's, or a set "
                      "of devices', or the site's findings of one practice) or advisory (the vuln.* findings "
                      "of every device running one product and firmware)")
    title: str
    severity: str = Field(description="the worst severity of its failing findings (info when none fails)")
    status: str = Field(description="fail if any of its findings fails, else pass")
    assets: list[str] = Field(default_factory=list, description="every address its findings name (flow: src "
                              "and dst first; advisory: the devices)")
    src: str | None = Field(default=None, description="flow: the side that sent the other more packets")
    dst: str | None = Field(default=None, description="flow: the other side")
    vendor: str | None = Field(default=None, description="advisory: the devices' vendor")
    product: str | None = Field(default=None, description="advisory: the product the devices run")
    firmware: str | None = Field(default=None, description="advisory: their firmware (null when unknown)")
    advisories: list[str] | None = Field(default=None, description="advisory: the advisory ids that matched")
    checks: list[str] = Field(default_factory=list, description="check IDs of its findings")
    findings: list[str] = Field(default_factory=list, description="ids of its findings")
    practices: list[str] = Field(default_factory=list, description="practice keys of its findings")
    evidence_total: int = Field(default=0, description="evidence of its findings, summed")


class ChangeVerdict(_Strict):
    """Whether a PLC change was authorised, and by what."""
    authorised: bool
    ticket: str | None = Field(default=None, description="the change ticket that authorised it")
    reason: str = Field(description="why it is (not) authorised")
    by: str = Field(description="ticket (a change ticket holds it), station (from an authorised engineering "
                                "station, no tickets in use) or none (not authorised)")


class PlcChange(_Strict):
    """Every operation of one name a station sent one controller over one protocol, aggregated."""
    station: str = Field(description="the sending host")
    controller: str
    protocol: str
    operation: str = Field(description="operation name as the protocol calls it")
    category: str = Field(description="write, config, program, firmware or control (model.OP_CATEGORIES)")
    count: int
    first: str | None = None
    last: str | None = None
    evidence: list[Evidence] = Field(default_factory=list, description="at most 8 frames")
    evidence_total: int = 0
    verdict: ChangeVerdict


class NotRun(_Strict):
    """A check that could not decide on this input, and why."""
    check: str = Field(description="check ID")
    reason: str = Field(description="why it could not run (what it would need)")


class Framework(_Open):
    """One compliance framework: each control with the findings that give evidence for it."""
    title: str
    summary: dict[str, int] = Field(default_factory=dict)
    controls: list[dict[str, Any]] = Field(default_factory=list)


class RoadmapItem(_Open):
    """One thing to do, with why, effort, owner and the checks and assets it concerns."""
    title: str
    why: str = ""
    checks: list[str] = Field(default_factory=list)
    assets: list[str] = Field(default_factory=list)
    effort: str | None = None
    owner_hint: str | None = None
    severity: str | None = None
    source: str | None = None
    attestation: str | None = None
    emphasis: bool = False
    controls: dict[str, list[str]] | None = None
    findings: list[str] | None = Field(default=None, description="ids of the failing findings it comes from "
                                       "(each names its incident)")


class Roadmap(_Open):
    """What to do, in three horizons, ordered for the organisation size."""
    organization_size: str | None = None
    size_assumed: bool | None = None
    guidance: str | None = None
    focus: list[str] = Field(default_factory=list)
    immediate: list[RoadmapItem] = Field(default_factory=list)
    months_1_3: list[RoadmapItem] = Field(default_factory=list, alias="1-3 months")
    months_3_plus: list[RoadmapItem] = Field(default_factory=list, alias="3+ months")


class PatchEntry(_Open):
    """One device of the patch plan: the advisories that name it, priority, target version, window."""
    asset: str
    name: str | None = None
    role: str | None = None
    zone: str | None = None
    criticality: str | None = None
    vendor: str | None = None
    product: str | None = None
    firmware: str | None = None
    priority: str
    priority_reason: str | None = None
    target_version: str | None = None
    advisories: list[dict[str, Any]] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)
    unpatched: list[str] = Field(default_factory=list)
    window: dict[str, Any] | None = None
    window_note: str | None = None
    estimated_downtime_hours: float | None = None
    fits_window: bool | None = None
    mitigations: list[dict[str, Any]] = Field(default_factory=list)
    compensating_controls: list[dict[str, Any]] = Field(default_factory=list)


class Attestation(_Strict):
    """A practice the site file attests (traffic cannot show it)."""
    id: str
    status: str | bool | None = None
    evidence: str | None = None
    date: str | None = None


class Summary(_Strict):
    """The figures of the assessment in one place."""
    assets: int
    findings: dict[str, int]
    failed: int = Field(description="failing findings, suppressed ones left out")
    suppressed: int = Field(default=0, description="failing findings under an accepted risk (--suppress)")
    passed: int
    checks_not_run: int
    packets: int
    incidents: int | None = Field(default=None, description="incidents the findings form")
    incidents_failed: int | None = Field(default=None, description="incidents with a failing finding")


class Assessment(_Open):   # fields in the order the JSON lists them
    """What `plantguard assess --format json` writes: the whole assessment of the captured plant."""
    plantguard: str = Field(description="plantguard version that wrote it")
    site: str | None = None
    organization_size: str | None = None
    captures: list[Capture] = Field(default_factory=list)
    zones: list[Zone] = Field(default_factory=list)
    assets: list[Asset] = Field(default_factory=list)
    flows: list[Flow] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    incidents: list[Incident] = Field(default_factory=list, description="the findings grouped: every finding "
                                      "is in exactly one incident; failing incidents first, worst first")
    plc_changes: list[PlcChange] = Field(default_factory=list, description="the PLC change timeline: writes, "
                                         "configuration, program, firmware and run/stop changes per station, "
                                         "controller, protocol and operation, with their verdicts (at most "
                                         "5000, busiest kept; counters.plc_changes_dropped counts the rest)")
    summary: Summary
    checks_not_run: list[NotRun] = Field(default_factory=list)
    compliance: dict[str, Framework] = Field(default_factory=dict)
    roadmap: Roadmap | None = None
    patch_plan: list[PatchEntry] = Field(default_factory=list)
    attestations: list[Attestation] = Field(default_factory=list)
    counters: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    warnings: list[RunWarning] = Field(default_factory=list, description="what could not be read, by kind: "
                                       "the captures' warnings summed and the counters of frames not decoded "
                                       "and of limits hit (capture/unread.py)")
    suppressions: list[SuppressionUse] = Field(default_factory=list, description="every accepted risk "
                                               "(--suppress files, the site file's suppressions) with what became "
                                               "of it; absent when there is none")


def validated(contract: dict) -> dict:
    """The contract checked against the types (a ValidationError names the bad field) and
    dumped back in its published shape."""
    return Assessment.model_validate(contract).model_dump(mode="json", by_alias=True, exclude_unset=True)


def json_schema() -> dict:
    return Assessment.model_json_schema(by_alias=True)


# -- a saved contract read back into the live types ------------------------------------------------
# The stages after the checks (compliance view, roadmap, patch plan) take the live types only:
# checks.base.Finding, the {"check", "reason"} dicts run_checks gives, inventory.asset.Asset and
# site.Site. A saved contract, or JSON from elsewhere, is read back here, once. Nothing here
# raises on odd input: an entry that is not a mapping, or lacks what identifies it (a finding's
# check, an asset's address, an attestation's id), is skipped; a field of the wrong type takes
# its default.

def findings_from(data: Any) -> list[checkbase.Finding]:
    """The findings of a saved contract (or of a list of finding dicts) as checks.base.Finding;
    a finding's "detail" becomes its extra."""
    return [_finding(r) for r in _records(data, "findings") if _text(r.get("check"))]


def not_run_from(data: Any) -> list[dict[str, str]]:
    """The checks_not_run of a saved contract (or a list of them) as run_checks gives them."""
    return [{"check": r["check"], "reason": _text(r.get("reason"))}
            for r in _records(data, "checks_not_run") if _text(r.get("check"))]


def assets_from(data: Any) -> list[inventory.Asset]:
    """The assets of a saved contract (or a list of asset dicts) as inventory.asset.Asset, with
    what the contract keeps of them (it counts the peers, so the peer set stays empty)."""
    return [_asset(r) for r in _records(data, "assets") if _text(r.get("ip")) or _text(r.get("mac"))]


def site_from(data: Any) -> sitefile.Site | None:
    """What a saved contract keeps of the site file (name, organization_size, zones, attestations)
    as a site.Site; None when the contract was made without one."""
    if not isinstance(data, dict) or not any(data.get(k) for k in ("site", "organization_size", "attestations")):
        return None
    size = _text(data.get("organization_size")).lower()
    zones = [_zone(r) for r in _records(data, "zones") if _text(r.get("name"))]
    attestations = [a for a in map(_attestation, _attestation_records(data.get("attestations"))) if a]
    return sitefile.Site(name=_opt_text(data.get("site")),
                         organization_size=size if size in sitefile.ORGANIZATION_SIZES else "medium",
                         zones=zones, attestations={a.id: a for a in attestations})


def _records(data: Any, key: str) -> list[dict]:
    """The mappings listed in data[key] (data a contract) or in data itself (a list)."""
    return _dicts(data.get(key) if isinstance(data, dict) else data)


def _dicts(v: Any) -> list[dict]:
    return [r for r in v if isinstance(r, dict)] if isinstance(v, (list, tuple)) else []


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _opt_text(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _texts(v: Any) -> list[str]:
    return [x for x in v if isinstance(x, str)] if isinstance(v, (list, tuple)) else []


def _ints(v: Any) -> list[int]:
    return [x for x in v if isinstance(x, int) and not isinstance(x, bool)] if isinstance(v, (list, tuple)) else []


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _mapping(v: Any) -> dict:
    return dict(v) if isinstance(v, dict) else {}


def _epoch(v: Any) -> float | None:
    """A contract time (ISO 8601, UTC) as a POSIX timestamp."""
    try:
        t = datetime.fromisoformat(_text(v))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def _finding(r: dict) -> checkbase.Finding:
    evidence = [checkbase.Evidence(_opt_text(e.get("capture")), _int(e.get("frame")), _epoch(e.get("time")),
                                   _text(e.get("detail"))) for e in _dicts(r.get("evidence"))]
    controls = {fw: _texts(ids) for fw, ids in _mapping(r.get("controls")).items() if isinstance(fw, str)}
    return checkbase.Finding(r["check"], _text(r.get("status")), _text(r.get("severity")) or "info",
                             _text(r.get("title")), _texts(r.get("assets")), evidence, _text(r.get("practice")),
                             controls, _text(r.get("remediation")), _texts(r.get("attack")),
                             _mapping(r.get("detail")))


def _asset(r: dict) -> inventory.Asset:
    services = [inventory.Service(s["proto"], s["port"], _opt_text(s.get("name")), _opt_text(s.get("banner")))
                for s in _dicts(r.get("services")) if _text(s.get("proto")) and _int(s.get("port")) is not None]
    return inventory.Asset(
        _opt_text(r.get("ip")), _opt_text(r.get("mac")), ips=set(_texts(r.get("ips"))),
        macs=set(_texts(r.get("macs"))), vendor=_opt_text(r.get("vendor")), role=_text(r.get("role")) or "unknown",
        role_reasons=_texts(r.get("role_reasons")), zone=_opt_text(r.get("zone")), vlans=set(_ints(r.get("vlans"))),
        protocols=set(_texts(r.get("protocols"))), services={(s.proto, s.port): s for s in services},
        identity=_mapping(r.get("identity")), hostnames=set(_texts(r.get("hostnames"))),
        first_seen=_epoch(r.get("first_seen")), last_seen=_epoch(r.get("last_seen")),
        declared=_mapping(r.get("declared")) or None)


def _zone(r: dict) -> sitefile.Zone:
    networks = []
    for n in _texts(r.get("networks")):
        try:
            networks.append(ipaddress.ip_network(n, strict=False))
        except ValueError:
            continue
    return sitefile.Zone(r["name"], _text(r.get("kind")), networks, _ints(r.get("vlans")))


def _attestation_records(raw: Any) -> list[dict]:
    """The contract's list of {"id", "status", ...}; a site file's mapping of id -> status (or
    -> {"status", ...}) is read too."""
    if isinstance(raw, dict):
        return [{**(v if isinstance(v, dict) else {"status": v}), "id": k} for k, v in raw.items()]
    return _dicts(raw)


def _attestation(r: dict) -> sitefile.Attestation | None:
    aid, st = r.get("id"), r.get("status")
    if not _text(aid):
        return None
    # YAML reads a bare yes/no as a boolean
    status = {True: "yes", False: "no"}.get(st) if isinstance(st, bool) else _text(st).strip().lower()
    return sitefile.Attestation(aid, status if status in sitefile.ATTESTATION_STATUSES else "no",
                                _opt_text(r.get("evidence")), _opt_text(r.get("date")))
