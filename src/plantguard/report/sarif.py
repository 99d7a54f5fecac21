"""SARIF 2.1.0: one rule per check ID, one result per finding (fails as "fail", passes as "pass"),
each located at the capture file with the frame named in the location's message, carrying its
finding id (`fingerprints`) and incident id (`properties.incident`). The JSON
encoder escapes what JSON must; message texts, which SARIF viewers scan for embedded links, go
through util.sanitize.sarif_message (device strings may hold [text](http://...))."""
from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath
from urllib.parse import quote

from plantguard.report.context import as_dict, as_list, joined, severity, text
from plantguard.report.registry import Renderer, register
from plantguard.util.sanitize import sarif_message

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}
MAX_LOCATIONS = 10


def capture_uri(path: str) -> str:
    if path.startswith("/"):
        return "file://" + quote(path)
    return quote(str(PurePosixPath(path.replace("\\", "/"))), safe="/")


def _rule_titles() -> dict[str, tuple[str, str]]:
    """check id -> (title, risk) from the registered checks, when they can be loaded."""
    try:
        from plantguard.checks.registry import all_checks
        return {m.id: (m.title, m.risk) for m, _ in all_checks()}
    except Exception:   # reports must render even where the checks cannot be imported
        return {}


def render_sarif(contract: dict) -> str:
    findings = [as_dict(f) for f in as_list(contract.get("findings")) if text(as_dict(f).get("check"))]
    rules, rule_index = _rules(findings, _rule_titles())
    artifacts = _Artifacts()
    results = [_result(f, rule_index[text(f.get("check"))], artifacts) for f in findings]
    run = {"tool": {"driver": {"name": "plantguard", "version": text(contract.get("plantguard")) or "0",
                               "rules": rules}},
           "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": _notifications(contract)}],
           "artifacts": artifacts.items, "results": results,
           "properties": {"site": text(contract.get("site")), "summary": as_dict(contract.get("summary"))}}
    doc = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"


def _rules(findings: list[dict], titles: dict[str, tuple[str, str]]) -> tuple[list[dict], dict[str, int]]:
    """One rule per check id, in first-seen order, and the index of each."""
    rules, rule_index = [], {}
    for f in findings:
        cid = text(f.get("check"))
        if cid in rule_index:
            _raise_level(rules[rule_index[cid]], f)
            continue
        rule_index[cid] = len(rules)
        rules.append(_rule(cid, f, titles))
    return rules, rule_index


def _raise_level(rule: dict, f: dict) -> None:
    """The rule's default level is the worst fail seen for it."""
    if f.get("status") != "fail":
        return
    sev = severity(f.get("severity"))
    if float(SECURITY_SEVERITY[sev]) > float(rule["properties"]["security-severity"]):
        rule["properties"]["security-severity"] = SECURITY_SEVERITY[sev]
        rule["defaultConfiguration"]["level"] = LEVEL[sev]


def _rule(cid: str, f: dict, titles: dict[str, tuple[str, str]]) -> dict:
    title, risk = titles.get(cid, ("", ""))
    sev = severity(f.get("severity")) if f.get("status") == "fail" else "info"
    controls = as_dict(f.get("controls"))
    tags = ["security", text(f.get("practice"))] + [f"{fw}:{c}" for fw in sorted(controls)
                                                     for c in as_list(controls.get(fw)) if text(c)]
    return {"id": cid, "name": "".join(p.capitalize() for p in cid.replace("-", ".").split(".")),
            "shortDescription": {"text": title or f"plantguard check {cid}"},
            "fullDescription": {"text": risk or title or f"plantguard check {cid} ({text(f.get('practice'))})"},
            "help": {"text": text(f.get("remediation")) or "See the plantguard report for this check."},
            "defaultConfiguration": {"level": LEVEL[sev]},
            "properties": {"tags": [t for t in tags if t], "security-severity": SECURITY_SEVERITY[sev],
                           "precision": "high"}}


class _Artifacts:
    """The run's artifacts (capture files), each listed once, in first-seen order."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self._index: dict[str, int] = {}

    def index(self, cap: str) -> int:
        if cap not in self._index:
            self._index[cap] = len(self.items)
            self.items.append({"location": {"uri": capture_uri(cap)}, "roles": ["analysisTarget"]})
        return self._index[cap]


def _result(f: dict, rule_index: int, artifacts: _Artifacts) -> dict:
    cid = text(f.get("check"))
    failed = f.get("status") == "fail"
    sev = severity(f.get("severity"))
    assets = [text(a) for a in as_list(f.get("assets"))]
    fix = f" Fix: {text(f.get('remediation'))}" if failed and text(f.get("remediation")) else ""
    result = {"ruleId": cid, "ruleIndex": rule_index, "kind": "fail" if failed else "pass",
              "level": LEVEL[sev] if failed else "none",
              "message": {"text": sarif_message(text(f.get("title")) + fix)},
              "partialFingerprints": {"plantguardFinding/v1": _fingerprint(cid, f)},
              "properties": {"severity": sev if failed else "info", "assets": assets,
                             "practice": text(f.get("practice")), "evidenceTotal": f.get("evidence_total"),
                             "attack": joined(f.get("attack"))}}
    locations = _locations(f, artifacts)
    if locations:
        result["locations"] = locations
    if text(f.get("id")):        # SARIF 2.1.0 §3.27.16: a stable identity of the result across runs
        result["fingerprints"] = {"plantguardFindingId/v1": text(f.get("id"))}
        result["properties"]["finding"] = text(f.get("id"))
    if text(f.get("incident")):  # a grouping, not one result's identity (so no §3.27.4 correlationGuid): §3.8 property bag
        result["properties"]["incident"] = text(f.get("incident"))
    accepted = as_dict(f.get("suppressed"))
    if failed and accepted:
        result["suppressions"] = [_suppression(accepted)]
    return result


def _suppression(s: dict) -> dict:
    """SARIF 2.1.0 §3.35: an accepted risk, kept in a file outside the analysed artefact."""
    why = f"{text(s.get('reason'))} (owner {text(s.get('owner'))}, expires {text(s.get('expires'))})"
    props = {k: text(s.get(k)) for k in ("owner", "expires", "ticket", "file", "entry") if text(s.get(k))}
    return {"kind": "external", "status": "accepted", "justification": sarif_message(why), "properties": props}


def _fingerprint(cid: str, f: dict) -> str:
    key = [cid, text(f.get("title")), sorted(text(a) for a in as_list(f.get("assets")))]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]


def _locations(f: dict, artifacts: _Artifacts) -> list[dict]:
    """The evidence frames in their capture files; without any, the devices by name."""
    locations = [_evidence_location(as_dict(e), artifacts) for e in as_list(f.get("evidence"))[:MAX_LOCATIONS]]
    locations = [loc for loc in locations if loc is not None]
    if locations:
        return locations
    return [{"logicalLocations": [{"name": text(a), "kind": "device"}]}
            for a in as_list(f.get("assets"))[:MAX_LOCATIONS] if text(a)]


def _evidence_location(e: dict, artifacts: _Artifacts) -> dict | None:
    cap = text(e.get("capture"))
    if not cap:
        return None
    where = ", ".join(x for x in (f"frame {text(e.get('frame'))}" if text(e.get("frame")) else "",
                                  text(e.get("time"))) if x)
    msg = f"{where}: {text(e.get('detail'))}" if where else text(e.get("detail"))
    return {"physicalLocation": {"artifactLocation": {"uri": capture_uri(cap), "index": artifacts.index(cap)}},
            "message": {"text": sarif_message(msg or "capture")}}


def _notifications(contract: dict) -> list[dict]:
    from plantguard.suppress import message
    warnings = [{"level": "warning", "descriptor": {"id": "suppression"}, "message": {"text": sarif_message(message(u))}}
                for u in map(as_dict, as_list(contract.get("suppressions"))) if u.get("status") in ("expired", "unused")]
    return warnings + [{"level": "note", "descriptor": {"id": text(as_dict(n).get("check")) or "unknown"},
             "message": {"text": sarif_message(f"check not run: {text(as_dict(n).get('reason')) or 'no reason given'}")}}
            for n in as_list(contract.get("checks_not_run"))]

SARIF = register(Renderer("sarif", "sarif", "application/sarif+json", render_sarif, ("assess",)))
