"""Finding, Evidence and check metadata: the shapes every check returns (JSON contract §5)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from plantguard.util.timefmt import iso

SEVERITIES = ("info", "low", "medium", "high", "critical")


def severity_rank(sev: str) -> int:
    return SEVERITIES.index(sev) if sev in SEVERITIES else 0


@dataclass
class Evidence:
    capture: str | None
    frame: int | None
    time: float | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"capture": self.capture, "frame": self.frame, "time": iso(self.time), "detail": self.detail}

    @classmethod
    def of(cls, obs, detail: str) -> "Evidence":
        """Evidence pointing at the frame an Observation came from."""
        return cls(obs.capture, obs.frame, obs.ts, detail)


@dataclass(frozen=True)
class CheckMeta:
    id: str                    # stable check ID (ARCHITECTURE §6); never renamed
    title: str
    practice: str              # e.g. "inventory", "default-credentials", "rbac-plc-changes"
    severity: str              # severity of a FAIL
    risk: str                  # one or two sentences: why it matters
    remediation: str
    controls: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # framework key -> control IDs; keys: "iec62443-3-3", "nist-800-53r5", "iso27001-2022"
    attack: tuple[str, ...] = ()     # MITRE ATT&CK for ICS technique IDs
    needs_site: bool = False         # cannot decide without a site file


@dataclass
class Finding:
    check: str
    status: str                      # "pass" | "fail"
    severity: str                    # the check's severity for a fail; "info" for a pass
    title: str                       # specific to this finding (names the asset / pair)
    assets: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    practice: str = ""
    controls: dict[str, list[str]] = field(default_factory=dict)
    remediation: str = ""
    attack: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)   # check-specific structured detail

    @classmethod
    def from_meta(cls, meta: CheckMeta, status: str, title: str, assets=(), evidence=(), /,
                  severity: str | None = None, **extra) -> "Finding":
        # positional-only so that a check's extra detail may use these names as keys
        return cls(meta.id, status, severity or (meta.severity if status == "fail" else "info"),
                   title, list(assets), list(evidence), meta.practice,
                   {k: list(v) for k, v in meta.controls.items()}, meta.remediation,
                   list(meta.attack), dict(extra))

    def as_dict(self) -> dict[str, Any]:
        d = {"check": self.check, "status": self.status, "severity": self.severity,
             "title": self.title, "assets": self.assets,
             "evidence": [e.as_dict() for e in self.evidence[:MAX_EVIDENCE]],
             "evidence_total": max(len(self.evidence), _int(self.extra.get("events"))),
             "practice": self.practice, "controls": self.controls,
             "attack": self.attack, "remediation": self.remediation}
        if self.extra:
            d["detail"] = self.extra
        return d


def _int(v) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


MAX_EVIDENCE = 20   # evidence items kept per finding in outputs (the count says how many in all)

CheckFn = Callable[["AssessContext"], list[Finding]]  # noqa: F821


@dataclass
class AssessContext:
    """Everything a check may read. Checks never parse packets."""
    result: Any                 # plantguard.model.AnalysisResult (observations, flows)
    assets: list                # list[plantguard.inventory.asset.Asset]
    site: Any | None = None     # plantguard.site.Site or None
    db: Any | None = None       # SQLAlchemy engine of the store (intel, SBOMs), or None
    options: dict[str, Any] = field(default_factory=dict)

    def asset(self, ip_or_mac: str):
        for a in self.assets:
            if a.ip == ip_or_mac or a.mac == ip_or_mac or ip_or_mac in a.ips:
                return a
        return None
