"""The assessment contract (`assess --format json`) as types: every stage's output is validated
into these models once, when the contract is built, and the JSON is dumped from them. The
published JSON Schema (docs/contract.schema.json) is generated from the same models
(`python -m plantguard.docs_gen`), and a test keeps it current.

The contract only grows: fields are added, never renamed or removed. Maps whose keys are data
(framework ids, operation categories, check-specific detail) stay open dictionaries."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    """A closed record: a key the model does not declare is an error, not a silent extra."""
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """A record whose declared keys are typed and whose other keys pass through unchanged."""
    model_config = ConfigDict(extra="allow")


class Capture(_Strict):
    path: str
    packets: int
    bytes: int | None = None
    first: str | None = None
    last: str | None = None
    warnings: list[str] = Field(default_factory=list)


class Zone(_Strict):
    name: str
    kind: str
    networks: list[str] = Field(default_factory=list)
    vlans: list[int] = Field(default_factory=list)


class Service(_Strict):
    proto: str
    port: int
    name: str | None = None
    banner: str | None = None


class Asset(_Open):
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
    src: str
    dst: str
    proto: str
    port: int | None = None
    app: str | None = None
    vlan: int | None = None
    packets: int
    bytes: int
    operations: dict[str, int] = Field(default_factory=dict, description="operation category -> count")
    first: str | None = None
    last: str | None = None


class Evidence(_Strict):
    capture: str | None = None
    frame: int | None = None
    time: str | None = None
    detail: str


class Finding(_Strict):
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


class NotRun(_Strict):
    check: str
    reason: str


class Framework(_Open):
    title: str
    summary: dict[str, int] = Field(default_factory=dict)
    controls: list[dict[str, Any]] = Field(default_factory=list)


class RoadmapItem(_Open):
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


class Roadmap(_Open):
    organization_size: str | None = None
    size_assumed: bool | None = None
    guidance: str | None = None
    focus: list[str] = Field(default_factory=list)
    immediate: list[RoadmapItem] = Field(default_factory=list)
    months_1_3: list[RoadmapItem] = Field(default_factory=list, alias="1-3 months")
    months_3_plus: list[RoadmapItem] = Field(default_factory=list, alias="3+ months")


class PatchEntry(_Open):
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
    id: str
    status: str | bool | None = None
    evidence: str | None = None
    date: str | None = None


class Summary(_Strict):
    assets: int
    findings: dict[str, int]
    failed: int
    passed: int
    checks_not_run: int
    packets: int


class Assessment(_Open):   # fields in the order the JSON lists them
    plantguard: str = Field(description="plantguard version that wrote it")
    site: str | None = None
    organization_size: str | None = None
    captures: list[Capture] = Field(default_factory=list)
    zones: list[Zone] = Field(default_factory=list)
    assets: list[Asset] = Field(default_factory=list)
    flows: list[Flow] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    summary: Summary
    checks_not_run: list[NotRun] = Field(default_factory=list)
    compliance: dict[str, Framework] = Field(default_factory=dict)
    roadmap: Roadmap | None = None
    patch_plan: list[PatchEntry] = Field(default_factory=list)
    attestations: list[Attestation] = Field(default_factory=list)
    counters: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


def validated(contract: dict) -> dict:
    """The contract checked against the types (a ValidationError names the bad field) and
    dumped back in its published shape."""
    return Assessment.model_validate(contract).model_dump(mode="json", by_alias=True, exclude_unset=True)


def json_schema() -> dict:
    return Assessment.model_json_schema(by_alias=True)
