"""The site attestations (site file `attestations:` keys), read once from data/attestations.yaml:
per attestation ID its check, title, practice, severity, risk, remediation, controls, ATT&CK IDs
and roadmap wording. The check module (checks/attestations.py), the compliance view, the roadmap
and the site file's allowed keys all read this one table.

Controls are chosen per control's own scope: a control is listed only when the attested measure
is what the control asks for (e.g. disabled USB ports are media-use restriction, not malware
protection). Frameworks with no fitting control get none rather than a loose one."""
from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from plantguard.checks.base import SEVERITIES, CheckMetaError
from plantguard.checks.practices import PRACTICES

if TYPE_CHECKING:
    from plantguard.checks.base import Finding
    from plantguard.site import Site

DATA_FILE = ("data", "attestations.yaml")
ORGANIZATION_SIZES = ("small", "medium", "large")
FIELDS = ("check", "title", "practice", "severity", "risk", "remediation", "controls", "roadmap")
ROADMAP_FIELDS = ("horizon", "effort", "owner", "themes", "why", "action")


class AttestationDataError(CheckMetaError):
    """data/attestations.yaml is malformed; the message is one line and names the attestation.
    (The file is the attestation checks' metadata, so the check registry stops on it too.)"""


def _ids(v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise TypeError("a list of IDs")
    return list(v)


def _problem(raw: Any) -> str:
    """What is wrong with one entry, or ""."""
    if not isinstance(raw, dict):
        return "not a mapping"
    road = raw.get("roadmap") if isinstance(raw.get("roadmap"), dict) else {}
    missing = [k for k in FIELDS if not raw.get(k)] + [f"roadmap.{k}" for k in ROADMAP_FIELDS if not road.get(k)]
    if missing:
        return f"missing {', '.join(missing)}"
    if raw["severity"] not in SEVERITIES or raw["practice"] not in PRACTICES:
        return f"unknown severity {raw['severity']!r} or practice {raw['practice']!r}"
    if isinstance(road["action"], dict) and set(road["action"]) != set(ORGANIZATION_SIZES):
        return f"roadmap.action needs one title or one per size ({', '.join(ORGANIZATION_SIZES)})"
    return ""


def _entry(aid: str, raw: Any) -> dict[str, Any]:
    problem = _problem(raw)
    if problem:
        raise AttestationDataError(f"attestation {aid}: {problem}")
    road = raw["roadmap"]
    try:
        controls = {str(fw): _ids(ids) for fw, ids in raw["controls"].items()}
        attack = _ids(raw.get("attack") or [])
        themes = _ids(road["themes"])
    except (AttributeError, TypeError):
        raise AttestationDataError(f"attestation {aid}: controls, attack and roadmap.themes must list IDs") from None
    finding = raw.get("finding_roadmap") if isinstance(raw.get("finding_roadmap"), dict) else {}
    return {**raw, "id": aid, "controls": controls, "attack": attack,
            "roadmap": {**road, "themes": themes, "urgent": bool(road.get("urgent"))},
            "finding_roadmap": {"action": finding.get("action") or "", "why": finding.get("why") or ""}}


def load_attestations(text: str) -> dict[str, dict[str, Any]]:
    """{attestation id: entry} in file order, each entry with every field of the file (controls as
    framework -> list of IDs, attack a list, roadmap.urgent a bool, finding_roadmap filled)."""
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict) or not raw:
        raise AttestationDataError("attestations: the file must map attestation IDs to entries")
    out = {str(aid): _entry(str(aid), entry) for aid, entry in raw.items()}
    checks = [a["check"] for a in out.values()]
    if len(set(checks)) != len(checks):
        raise AttestationDataError("attestations: two attestations name the same check")
    return out


ATTESTATIONS: dict[str, dict[str, Any]] = load_attestations(
    resources.files("plantguard").joinpath(*DATA_FILE).read_text(encoding="utf-8"))
ATTESTATION_IDS: tuple[str, ...] = tuple(ATTESTATIONS)


def roadmap_action(aid: str, size: str) -> str:
    """The roadmap title of an attestation for an organisation size."""
    action = ATTESTATIONS[aid]["roadmap"]["action"]
    return action.get(size, action["medium"]) if isinstance(action, dict) else action


def attestation_of(finding: "Finding") -> tuple[str, str] | None:
    """(attestation id, its status) when a finding only restates a site attestation (the
    attestation checks put both in the finding's detail), else None. Status "missing" means the
    site file does not mention it."""
    detail = finding.extra
    if not isinstance(detail.get("attestation"), str):
        return None
    status = detail.get("attestation_status", detail.get("status"))
    return detail["attestation"], status if isinstance(status, str) else ""


def site_attestations(site: "Site | None") -> dict[str, dict[str, Any]]:
    """{id: {"id", "status", "evidence", "date"}} of the site's attestations (a saved contract's
    go through contract.site_from first)."""
    if site is None:
        return {}
    return {aid: {"id": aid, "status": a.status if a.status in ("yes", "no", "partial") else "no",
                  "evidence": a.evidence, "date": a.date}
            for aid, a in (site.attestations or {}).items()}
