"""SARIF 2.1.0: one rule per check ID, one result per finding (fails as "fail", passes as "pass"),
each located at the capture file with the frame named in the location's message."""
from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath
from urllib.parse import quote

from plantguard.report.context import as_dict, as_list, joined, severity, text
from plantguard.report.registry import Renderer, register

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
    titles = _rule_titles()
    rules, rule_index = [], {}
    for f in findings:
        cid = text(f.get("check"))
        if cid in rule_index:
            rule = rules[rule_index[cid]]
            if f.get("status") == "fail":
                # the rule's default level is the worst fail seen for it
                sev = severity(f.get("severity"))
                if float(SECURITY_SEVERITY[sev]) > float(rule["properties"]["security-severity"]):
                    rule["properties"]["security-severity"] = SECURITY_SEVERITY[sev]
                    rule["defaultConfiguration"]["level"] = LEVEL[sev]
            continue
        title, risk = titles.get(cid, ("", ""))
        sev = severity(f.get("severity")) if f.get("status") == "fail" else "info"
        controls = as_dict(f.get("controls"))
        tags = ["security", text(f.get("practice"))] + [f"{fw}:{c}" for fw in sorted(controls)
                                                         for c in as_list(controls.get(fw)) if text(c)]
        rule = {"id": cid, "name": "".join(p.capitalize() for p in cid.replace("-", ".").split(".")),
                "shortDescription": {"text": title or f"plantguard check {cid}"},
                "fullDescription": {"text": risk or title or f"plantguard check {cid} ({text(f.get('practice'))})"},
                "help": {"text": text(f.get("remediation")) or "See the plantguard report for this check."},
                "defaultConfiguration": {"level": LEVEL[sev]},
                "properties": {"tags": [t for t in tags if t], "security-severity": SECURITY_SEVERITY[sev],
                               "precision": "high"}}
        rule_index[cid] = len(rules)
        rules.append(rule)

    artifacts, artifact_index = [], {}
    results = []
    for f in findings:
        cid = text(f.get("check"))
        failed = f.get("status") == "fail"
        sev = severity(f.get("severity"))
        locations = []
        for e in as_list(f.get("evidence"))[:MAX_LOCATIONS]:
            e = as_dict(e)
            cap = text(e.get("capture"))
            where = ", ".join(x for x in (f"frame {text(e.get('frame'))}" if text(e.get("frame")) else "",
                                          text(e.get("time"))) if x)
            msg = f"{where}: {text(e.get('detail'))}" if where else text(e.get("detail"))
            if cap:
                if cap not in artifact_index:
                    artifact_index[cap] = len(artifacts)
                    artifacts.append({"location": {"uri": capture_uri(cap)}, "roles": ["analysisTarget"]})
                locations.append({"physicalLocation": {"artifactLocation": {"uri": capture_uri(cap),
                                                                            "index": artifact_index[cap]}},
                                  "message": {"text": msg or "capture"}})
        if not locations:
            for a in as_list(f.get("assets"))[:MAX_LOCATIONS]:
                if text(a):
                    locations.append({"logicalLocations": [{"name": text(a), "kind": "device"}]})
        fp = hashlib.sha256(json.dumps([cid, text(f.get("title")), sorted(text(a) for a in as_list(f.get("assets")))]).encode()).hexdigest()
        result = {"ruleId": cid, "ruleIndex": rule_index[cid], "kind": "fail" if failed else "pass",
                  "level": LEVEL[sev] if failed else "none",
                  "message": {"text": text(f.get("title")) + (f" Fix: {text(f.get('remediation'))}"
                                                              if failed and text(f.get("remediation")) else "")},
                  "partialFingerprints": {"plantguardFinding/v1": fp[:32]},
                  "properties": {"severity": sev if failed else "info", "assets": [text(a) for a in as_list(f.get("assets"))],
                                 "practice": text(f.get("practice")), "evidenceTotal": f.get("evidence_total"),
                                 "attack": joined(f.get("attack"))}}
        if locations:
            result["locations"] = locations
        results.append(result)

    notifications = [{"level": "note", "descriptor": {"id": text(as_dict(n).get("check")) or "unknown"},
                      "message": {"text": f"check not run: {text(as_dict(n).get('reason')) or 'no reason given'}"}}
                     for n in as_list(contract.get("checks_not_run"))]
    run = {"tool": {"driver": {"name": "plantguard", "version": text(contract.get("plantguard")) or "0",
                               "rules": rules}},
           "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications}],
           "artifacts": artifacts, "results": results,
           "properties": {"site": text(contract.get("site")), "summary": as_dict(contract.get("summary"))}}
    doc = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"


SARIF = register(Renderer("sarif", "sarif", "application/sarif+json", render_sarif, ("assess",)))
