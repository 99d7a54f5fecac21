"""Finding, Evidence and check metadata: the shapes every check returns (JSON contract §5)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from plantguard.checks.practices import PRACTICES
from plantguard.util.timefmt import iso

SEVERITIES = ("info", "low", "medium", "high", "critical")
EFFORTS = ("low", "medium", "high")
# what a roadmap action is about; each organisation size puts some of these first (plan/roadmap.py)
THEMES = ("access-control", "credentials", "crypto", "hygiene", "incident-response", "integrity",
          "monitoring", "monitoring-service", "perimeter", "segmentation", "supply-chain",
          "visibility", "vulnerability")


def severity_rank(sev: str) -> int:
    return SEVERITIES.index(sev) if sev in SEVERITIES else 0


def severities_at_least(sev: str) -> list[str] | None:
    """The severities at or above `sev` (any case); None when it is not a severity."""
    s = sev.strip().lower()
    return [x for x in SEVERITIES if severity_rank(x) >= severity_rank(s)] if s in SEVERITIES else None


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


class CheckMetaError(ValueError):
    """A check's metadata is incomplete or names an unknown severity, practice, effort or theme.
    The message is one line and names the check."""


@dataclass(frozen=True)
class CheckMeta:
    """Everything about a check but its code: what the finding says, the controls it gives
    evidence for, and the roadmap's wording for the work a FAIL calls for."""
    id: str                    # stable check ID (docs/architecture.md, Contracts); never renamed
    title: str
    practice: str              # a key of checks/practices.py PRACTICES
    severity: str              # severity of a FAIL
    risk: str                  # one or two sentences: why it matters
    remediation: str
    controls: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # framework key -> control IDs; keys: "iec62443-3-3", "nist-800-53r5", "iso27001-2022"
    attack: tuple[str, ...] = ()     # MITRE ATT&CK for ICS technique IDs
    needs_site: bool = False         # cannot decide without a site file
    # its findings are about one conversation: a failing one names the two ends first (either
    # order); plan/incidents.py groups them with every other finding on that host pair
    conversation: bool = False
    needs_store: bool = False        # reads imported intelligence from the store (says so in the docs)
    # the roadmap item a FAIL becomes (plan/roadmap.py); required, the defaults only keep the
    # dataclass valid and are refused by __post_init__
    action: str = ""                 # what to do, as a title ("Change factory-default passwords ...")
    why: str = ""                    # why, in plain words
    effort: str = ""                 # one of EFFORTS
    owner: str = ""                  # who would usually do it
    themes: tuple[str, ...] = ()     # THEMES it belongs to (the organisation size weights them)

    def __post_init__(self):
        if isinstance(self.themes, str):            # themes="hygiene" means the one theme
            object.__setattr__(self, "themes", (self.themes,))
        elif isinstance(self.themes, (list, set, frozenset)):
            object.__setattr__(self, "themes", tuple(sorted(self.themes)))
        problems = self.problems()
        if problems:
            raise CheckMetaError(f"check {self.id or '<no id>'}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """What is missing or unknown in this metadata (empty when it is complete)."""
        out = []
        for what, keys in (("missing", ("id", "title", "risk", "remediation")),
                           ("missing roadmap wording", ("action", "why", "effort", "owner", "themes"))):
            missing = [k for k in keys if not _filled(getattr(self, k))]
            if missing:
                out.append(f"{what} ({', '.join(missing)})")
        return out + self._unknown()

    def _unknown(self) -> list[str]:
        themes = self.themes if isinstance(self.themes, tuple) else (self.themes,)
        bad = {"severity": [self.severity] if self.severity not in SEVERITIES else [],
               "practice": [self.practice] if self.practice not in PRACTICES else [],
               "effort": [self.effort] if self.effort and self.effort not in EFFORTS else [],
               "themes": [t for t in themes if t not in THEMES]}
        return [f"unknown {k} {', '.join(map(repr, v))} (known: {_KNOWN[k]})" for k, v in bad.items() if v]


_KNOWN = {"severity": ", ".join(SEVERITIES), "practice": "checks/practices.py", "effort": ", ".join(EFFORTS),
          "themes": "checks/base.py THEMES"}


def _filled(v) -> bool:
    return bool(v.strip()) if isinstance(v, str) else bool(v) and isinstance(v, tuple)


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
