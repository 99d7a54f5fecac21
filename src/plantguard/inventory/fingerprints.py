"""Fingerprints: what a device is, as data. Each fingerprint names the evidence it needs (MAC vendor,
an identity field from a given protocol, served and used protocols or ports, behaviour, context),
what it concludes (a role and/or vendor/product/family) and how sure it is (0-1). The shipped set
is src/plantguard/data/fingerprints/*.yaml; PLANTGUARD_FINGERPRINTS=/a.yaml:/b.yaml adds a user's
own files (loaded after the shipped ones; a user fingerprint with a shipped id replaces it).
The format is described in docs/fingerprints.md.

`score(evidence)` runs every fingerprint on one device: the role is the one whose fingerprints,
combined (1 - product of (1 - confidence)), score highest; the reasons say which fingerprints fired
and on what evidence. Free text never decides a role on its own: an identity regex is tied to the
identity fields (and protocols) it may read, and a User-Agent (a fact about a client's browser or
tool, not about the device) may only conclude an IT role - the loader refuses anything else.

The evidence and what each kind of it tests are inventory/fingerprint_evidence.py's, reading and
validating the files inventory/fingerprint_files.py's; this module scores, and every public name of
the three is importable from it."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from plantguard.inventory.fingerprint_evidence import (
    BINDER_KINDS,
    SERVED_ROLE,
    Condition,
    Evidence,
    Fingerprint,
)
from plantguard.inventory.fingerprint_files import (
    ENV,
    FORMAT,
    IDENTITY_FIELDS,
    IDENTITY_KEYS,
    USER_AGENT_ROLES,
    FingerprintError,
    load,
    parse_text,
    shipped_files,
    user_files,
)

__all__ = ["BINDER_KINDS", "ENV", "FORMAT", "IDENTITY_FIELDS", "IDENTITY_KEYS", "MIN_IDENTITY_CONFIDENCE",
           "MIN_SCORE", "SERVED_ROLE", "USER_AGENT_ROLES", "Condition", "Evidence", "Fingerprint",
           "FingerprintError", "Fired", "Verdict", "combine", "load", "parse_text", "score", "shipped_files",
           "user_files"]

MIN_SCORE = 0.2                      # below this, the role stays "unknown"
MIN_IDENTITY_CONFIDENCE = 0.5        # identity facts come only from fingerprints at least this sure


# -- scoring -------------------------------------------------------------------------------------
@dataclass
class Fired:
    fingerprint: Fingerprint
    role: str | None
    seen: list[str]
    identity: dict

    def reason(self) -> str:
        what = "; ".join(self.seen) or self.fingerprint.description or self.fingerprint.id
        return f"{what} [fingerprint {self.fingerprint.id} {self.fingerprint.confidence:.2f}]"


@dataclass
class Verdict:
    role: str
    score: float
    reasons: list[str]
    identity: dict                      # facts to add (key -> (value, fingerprint id))
    fired: list[Fired]
    scores: dict[str, float]


def combine(confidences: Iterable[float]) -> float:
    """Independent pieces of evidence for one role: 1 - product of (1 - confidence)."""
    miss = 1.0
    for c in confidences:
        miss *= 1.0 - c
    return 1.0 - miss


def score(ev: Evidence, fingerprints: Iterable[Fingerprint] | None = None) -> Verdict:
    fps = load() if fingerprints is None else fingerprints
    fired: list[Fired] = []
    for fp in fps:
        r = fp.fire(ev)
        if r is not None:
            seen, groups = r
            fired.append(Fired(fp, fp.role_for(groups), seen, fp.identity_for(groups)))
    by_role: dict[str, list[Fired]] = {}
    for f in fired:
        if f.role:
            by_role.setdefault(f.role, []).append(f)
    scores = {role: combine(f.fingerprint.confidence for f in fs) for role, fs in by_role.items()}
    order = {id(f): i for i, f in enumerate(fired)}
    ranked = sorted(scores, key=lambda r: (-round(scores[r], 9),
                                           -max(f.fingerprint.confidence for f in by_role[r]),
                                           min(order[id(f)] for f in by_role[r])))
    identity: dict[str, tuple[str, str]] = {}
    for f in sorted(fired, key=lambda f: -f.fingerprint.confidence):
        if f.fingerprint.confidence < MIN_IDENTITY_CONFIDENCE:
            continue
        for k, v in f.identity.items():
            identity.setdefault(k, (v, f.fingerprint.id))
    if not ranked or scores[ranked[0]] < MIN_SCORE:
        return Verdict("unknown", 0.0, ["not enough traffic to tell"], identity, fired, scores)
    best = ranked[0]
    winners = sorted(by_role[best], key=lambda f: (-f.fingerprint.confidence, order[id(f)]))
    reasons = [f.reason() for f in winners]
    tail = f"{best} {scores[best]:.2f}"
    if len(ranked) > 1:
        tail += "; outweighed: " + ", ".join(f"{r} {scores[r]:.2f}" for r in ranked[1:4])
    reasons.append(tail)
    return Verdict(best, scores[best], reasons, identity, fired, scores)
