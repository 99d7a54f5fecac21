"""`plantguard checks list`: every registered check with its metadata (CheckMeta), as records of
one typed shape (CheckInfo, the JSON contract of `checks list --format json`, documented in
docs/cli-conventions.md). Like the assessment contract it only grows: fields are added, never renamed or
removed. Not a check module (the registry skips it)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

LISTING_VERSION = 1


class CheckInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="stable check id, as findings[].check names it")
    title: str
    severity: str = Field(description="severity of a fail: low, medium, high or critical")
    practice: str = Field(description="the good practice it judges (checks/practices.py key)")
    practice_title: str
    risk: str
    remediation: str
    controls: dict[str, list[str]] = Field(description="framework key -> control ids")
    attack: list[str] = Field(description="MITRE ATT&CK for ICS technique ids")
    needs_site: bool = Field(description="skipped (checks_not_run) without a site file")
    action: str = Field(description="the roadmap item a fail becomes")
    why: str
    effort: str
    owner: str
    themes: list[str]


class CheckListing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = LISTING_VERSION
    checks: list[CheckInfo]
    load_errors: list[dict[str, str]] = Field(default_factory=list,
                                              description="check modules that failed to load: check, reason")


def listing() -> CheckListing:
    from plantguard.checks.practices import practice_title
    from plantguard.checks.registry import all_checks, load_errors
    infos = [CheckInfo(id=m.id, title=m.title, severity=m.severity, practice=m.practice,
                       practice_title=practice_title(m.practice), risk=m.risk, remediation=m.remediation,
                       controls={k: list(v) for k, v in m.controls.items()}, attack=list(m.attack),
                       needs_site=m.needs_site, action=m.action, why=m.why, effort=m.effort, owner=m.owner,
                       themes=list(m.themes)) for m, _fn in all_checks()]
    return CheckListing(checks=infos, load_errors=load_errors())
