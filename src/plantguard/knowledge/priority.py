"""OT-aware priority for a vulnerable device: now / next / later, with the reason.

Order of concerns, as plants patch: a CVE known to be exploited (CISA KEV) comes first; then the
severity (CVSS, EPSS when loaded) weighed by how exposed the device is on this network (from the
traffic and site model) and how much the process depends on it (safety systems and controllers
above sensors). A match on the product family alone, with the firmware unknown, is held back a
step: it needs the firmware confirmed before anyone plans downtime for it.
"""
from __future__ import annotations

from dataclasses import dataclass

from plantguard.knowledge.exposure import LEVELS, Exposure

PRIORITIES = ("now", "next", "later")

# role -> criticality when the site file does not declare one
ROLE_CRITICALITY = {
    "safety-controller": "critical",
    "plc": "high", "rtu": "high", "ied": "high", "drive": "high", "dcs": "high",
    "gateway": "high", "scada-server": "high", "firewall": "high",
    "hmi": "medium", "engineering-workstation": "medium", "historian": "medium", "io-device": "medium",
    "broker": "medium", "switch": "medium", "router": "medium",
    "sensor": "low", "camera": "low", "printer": "low",
}
_CRIT_WEIGHT = {"critical": 1.3, "high": 1.15, "medium": 1.0, "low": 0.8}
_EXPOSURE_WEIGHT = {"internet": 1.5, "it": 1.35, "cross-zone": 1.15, "zone-local": 1.0, "not-seen": 0.9}


def criticality_of(asset) -> tuple[str, str]:
    """(criticality, where it came from)."""
    declared = getattr(asset, "declared", None) or {}
    if declared.get("criticality"):
        return declared["criticality"], "declared in the site file"
    role = getattr(asset, "role", "unknown") or "unknown"
    return ROLE_CRITICALITY.get(role, "medium"), f"role {role}"


@dataclass
class Priority:
    level: str          # now | next | later
    score: float        # for ordering within a level (0-15)
    reason: str

    def as_dict(self) -> dict:
        return {"priority": self.level, "score": round(self.score, 2), "reason": self.reason}


def prioritise(max_cvss: float | None, kev_cves: list[str], exposure: Exposure, criticality: str,
               confidence: str, epss: float | None = None, crit_source: str = "") -> Priority:
    cvss = max_cvss if max_cvss is not None else 5.0
    score = _score(cvss, kev_cves, exposure, criticality, epss)
    reasons = _reasons(max_cvss, cvss, kev_cves, exposure, criticality, epss, crit_source)
    level = _level(cvss, kev_cves, exposure, criticality, epss)
    held = _held_back(level, confidence, kev_cves)
    if held:
        level = held
        reasons.append("held back: only the product family matched and the firmware is unknown")
    return Priority(level, score, "; ".join(reasons))


def _score(cvss: float, kev_cves: list[str], exposure: Exposure, criticality: str, epss: float | None) -> float:
    """For ordering within a level: CVSS weighed by exposure and criticality, plus 1 for an EPSS
    of 0.1 or more and 5 for a known-exploited CVE."""
    score = cvss * _EXPOSURE_WEIGHT.get(exposure.level, 1.0) * _CRIT_WEIGHT.get(criticality, 1.0)
    if epss is not None and epss >= 0.1:
        score += 1.0
    if kev_cves:
        score += 5
    return score


def _reasons(max_cvss: float | None, cvss: float, kev_cves: list[str], exposure: Exposure, criticality: str,
             epss: float | None, crit_source: str) -> list[str]:
    reasons = []
    if kev_cves:
        reasons.append(f"{', '.join(kev_cves[:3])} {'is' if len(kev_cves) == 1 else 'are'} in CISA KEV "
                       "(exploited in the wild)")
    sev = "critical" if cvss >= 9 else "high" if cvss >= 7 else "medium" if cvss >= 4 else "low"
    reasons.append(f"CVSS {max_cvss:.1f} ({sev})" if max_cvss is not None else "no CVSS score given")
    if epss is not None:
        reasons.append(f"EPSS {epss:.2f}")
    reasons.append(f"exposure: {exposure.describe()}")
    reasons.append(f"criticality {criticality}" + (f" ({crit_source})" if crit_source else ""))
    return reasons


def _level(cvss: float, kev_cves: list[str], exposure: Exposure, criticality: str, epss: float | None) -> str:
    exposed = exposure.level in ("internet", "it")
    crossing = LEVELS.index(exposure.level) >= LEVELS.index("cross-zone")
    important = criticality in ("critical", "high")
    if kev_cves:
        return "now"
    if cvss >= 7 and (exposed or (crossing and important) or (epss or 0) >= 0.5):
        return "now"
    if cvss >= 9 and important:
        return "next"
    if cvss >= 7 and (crossing or important):
        return "next"
    if cvss >= 4 and exposed:
        return "next"
    return "later"


def _held_back(level: str, confidence: str, kev_cves: list[str]) -> str | None:
    """One step later for a match on the product family alone with the firmware unknown
    (confidence low), unless a CVE is known to be exploited; None when not held back."""
    if confidence != "low":
        return None
    if level == "now" and not kev_cves:
        return "next"
    if level == "next":
        return "later"
    return None


def priority_rank(level: str) -> int:
    return PRIORITIES.index(level) if level in PRIORITIES else len(PRIORITIES)
