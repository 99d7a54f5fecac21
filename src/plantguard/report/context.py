"""Reads the contract dict defensively and shapes what the HTML and Markdown reports show: plain
sentences first, then the detail. Anything missing or malformed becomes empty, never an error."""
from __future__ import annotations

from collections import Counter
from typing import Any

from plantguard.checks.practices import PRACTICES as CHECK_PRACTICES
from plantguard.plan.incidents import group as group_incidents
from plantguard.report.display_filter import capture_filters, conversation_filter, frames_filter
from plantguard.util.warnings import summarize

SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
HORIZONS = ("immediate", "1-3 months", "3+ months")
HORIZON_TITLES = {"immediate": "Now", "1-3 months": "Next 1–3 months", "3+ months": "Later (3+ months)"}
FRAMEWORK_ORDER = ("iec62443-3-3", "nist-800-53r5", "nist-800-82r3-ot", "iso27001-2022", "attack-ics")
STATUS_WORDS = {"fail": "Gap found", "pass": "Evidence OK", "attested": "Declared by site", "none": "No evidence"}
MAX_EVIDENCE_SHOWN = 20
FINDING_STATUSES = ("fail", "pass", "suppressed")
MAX_LINKS = 3    # incident links per roadmap item / device row; the rest counted

# practice key -> (plain name, what it means): the checks' table, plus the short names older
# contracts used for three of them
PRACTICES: dict[str, tuple[str, str]] = {
    **CHECK_PRACTICES,
    "encryption": CHECK_PRACTICES["encrypted-communications"],
    "zerotrust": CHECK_PRACTICES["zero-trust"],
    "sbom": CHECK_PRACTICES["sbom-procurement"],
}
ZONE_KIND_WORDS = {"it": "office IT", "guest": "guest network", "dmz": "DMZ", "ot-control": "OT control zone",
                   "ot-sensing": "OT sensing zone", "ot-safety": "OT safety zone", "ot-supervisory": "OT supervisory zone",
                   "internet": "outside the plant", "inferred": "zone inferred from traffic",
                   "unzoned": "in no declared zone"}
FRAMEWORK_SHORT = {"iec62443-3-3": "IEC 62443-3-3", "nist-800-53r5": "NIST SP 800-53", "iso27001-2022": "ISO/IEC 27001"}
ATTESTATION_WORDS = {"yes": "In place", "partial": "Partly in place", "no": "Not in place"}
HEADER_WORDS = {"cves": "CVEs", "cve": "CVE", "kev": "Known exploited", "ip": "IP", "fixed_in": "Fixed in",
                "sbom": "SBOM", "epss": "EPSS", "cvss": "CVSS"}


def as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else []


def as_dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def text(v: Any) -> str:
    """A scalar as display text; containers and None as empty."""
    if v is None or isinstance(v, (dict, list, tuple, set)):
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def num(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def joined(v: Any, sep: str = ", ") -> str:
    if isinstance(v, (list, tuple, set)):
        return sep.join(text(x) for x in v if text(x))
    return text(v)


def severity(v: Any) -> str:
    s = text(v).lower()
    return s if s in SEVERITY_ORDER else "info"


def practice_name(key: str) -> str:
    if key in PRACTICES:
        return PRACTICES[key][0]
    return key.replace("-", " ").replace("_", " ").capitalize() if key else "Other"


def short_time(iso: Any) -> str:
    """'2024-03-04T08:00:00.123456Z' -> '2024-03-04 08:00:00 UTC' (unknown shapes unchanged)."""
    s = text(iso)
    if len(s) >= 19 and s[10] == "T":
        return f"{s[:10]} {s[11:19]} UTC"
    return s


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def evidence_rows(f: dict) -> list[dict]:
    out = []
    for e in as_list(f.get("evidence"))[:MAX_EVIDENCE_SHOWN]:
        e = as_dict(e)
        out.append({"capture": text(e.get("capture")), "frame": text(e.get("frame")),
                    "time": short_time(e.get("time")), "detail": text(e.get("detail")),
                    "filter": frames_filter([e.get("frame")])})
    return out


def token(v: Any) -> str:
    """One word of a space-separated data attribute (whitespace inside a value becomes _)."""
    return "_".join(text(v).split())


def finding_status(f: dict) -> str:
    """pass, fail or suppressed (a finding a suppression answered, whatever its status)."""
    return "suppressed" if f.get("suppressed") else text(f.get("status"))


def finding_row(f: dict, zone_of: dict[str, str] | None = None) -> dict:
    controls = as_dict(f.get("controls"))
    ev = evidence_rows(f)
    total = num(f.get("evidence_total")) or len(as_list(f.get("evidence")))
    assets = [text(a) for a in as_list(f.get("assets")) if text(a)]
    zones = dict.fromkeys((zone_of or {}).get(a, "") for a in assets)
    detail = as_dict(f.get("detail"))
    return {
        "id": text(f.get("id")), "incident": text(f.get("incident")), "data_status": finding_status(f),
        "practice_key": token(f.get("practice")), "zones": " ".join(token(z) for z in zones if token(z)),
        "devices": " ".join(token(a) for a in assets),
        "check": text(f.get("check")), "status": text(f.get("status")), "severity": severity(f.get("severity")),
        "title": text(f.get("title")) or text(f.get("check")), "assets": [text(a) for a in as_list(f.get("assets")) if text(a)],
        "practice": practice_name(text(f.get("practice"))), "remediation": text(f.get("remediation")),
        "evidence": ev, "evidence_total": max(total, len(ev)),
        # Wireshark filters: every listed evidence frame of each capture, and the conversation
        "capture_filters": [(text(cap), flt) for cap, flt in capture_filters(as_list(f.get("evidence")))],
        "conversation": conversation_filter(as_list(f.get("assets")), detail.get("port")),
        "controls": [(FRAMEWORK_SHORT[fw], joined(controls.get(fw))) for fw in ("iec62443-3-3", "nist-800-53r5", "iso27001-2022")
                     if joined(controls.get(fw))],
        "attack": joined(f.get("attack")),
    }


def build(contract: Any) -> dict[str, Any]:
    c = as_dict(contract)
    findings = [as_dict(f) for f in as_list(c.get("findings"))]
    accepted = [accepted_row(f) for f in findings if f.get("status") == "fail" and as_dict(f.get("suppressed"))]
    findings = [f for f in findings if not (f.get("status") == "fail" and as_dict(f.get("suppressed")))]
    fails = [finding_row(f) for f in findings if f.get("status") == "fail"]
    fails.sort(key=lambda r: SEVERITY_ORDER.index(r["severity"]))
    passes = [finding_row(f) for f in findings if f.get("status") == "pass"]
    sev_counts = Counter(r["severity"] for r in fails)
    raw_assets = [as_dict(a) for a in as_list(c.get("assets"))]
    incidents = incident_rows(c, findings, raw_assets)
    failing_at: dict[str, list[dict]] = {}
    for i in incidents:
        for a in i["assets"] if i["status"] == "fail" else ():
            failing_at.setdefault(a, []).append(i)
    assets = [asset_row(a, failing_at) for a in raw_assets]
    captures = [as_dict(x) for x in as_list(c.get("captures"))]
    packets = sum(num(x.get("packets")) for x in captures)
    firsts = sorted(text(x.get("first")) for x in captures if text(x.get("first")))
    lasts = sorted(text(x.get("last")) for x in captures if text(x.get("last")))
    ctx = {
        "version": text(c.get("plantguard")), "site": text(c.get("site")) or "Unnamed site",
        "organization_size": text(c.get("organization_size")),
        "captures": [{"path": text(x.get("path")), "packets": num(x.get("packets")),
                      "first": short_time(x.get("first")), "last": short_time(x.get("last")),
                      "warnings": summarize(text(w) for w in as_list(x.get("warnings")) if text(w))} for x in captures],
        "period": (short_time(firsts[0]), short_time(lasts[-1])) if firsts and lasts else None,
        "packets": packets, "fails": fails, "passes": passes,
        "incidents_failed": [i for i in incidents if i["status"] == "fail"],
        "incidents_passed": [i for i in incidents if i["status"] != "fail"],
        "severity_counts": [(s, sev_counts.get(s, 0)) for s in SEVERITY_ORDER[:4]],
        "practices": practices(findings),
        "assets": assets,
        "not_run": [{"check": text(as_dict(n).get("check")), "reason": text(as_dict(n).get("reason"))}
                    for n in as_list(c.get("checks_not_run"))],
        "roadmap": roadmap(as_dict(c.get("roadmap")), incidents),
        "patch_plan": patch_plan(as_list(c.get("patch_plan"))),
        "compliance": compliance(as_dict(c.get("compliance"))),
        "attestations": [attestation_row(as_dict(a)) for a in as_list(c.get("attestations"))],
        "notes": [text(n) for n in as_list(c.get("notes")) if text(n)],
        "unread": unread(as_list(c.get("warnings"))),
        "accepted": accepted, "suppression_warnings": suppression_warnings(c),
        "counters": [(text(k), text(v)) for k, v in as_dict(c.get("counters")).items() if text(v)][:40],
    }
    ctx["headline"] = headline(ctx)
    from plantguard.report import facets  # it reads this module's helpers
    ctx["facets"] = facets.annotate([r for i in incidents for r in i["findings"]] + accepted)
    return ctx


def unread(warnings: list) -> list[str]:
    """The contract's top-level warnings (capture.unread) as one line each, for the "What could
    not be read" box; an entry of a saved contract that is not a mapping is left out."""
    from plantguard.capture.unread import line
    out = []
    for w in warnings:
        d = as_dict(w)
        if d and text(d.get("text")):
            out.append(line({"count": num(d.get("count")), "text": text(d.get("text")),
                             "captures": [text(x) for x in as_list(d.get("captures")) if text(x)]}))
    return out


def headline(ctx: dict) -> str:
    n_fail = len(ctx["fails"])
    parts = []
    if ctx["packets"] or ctx["captures"]:
        parts.append(f"We examined {plural(ctx['packets'], 'packet')} from {plural(len(ctx['captures']), 'capture')}"
                     + (f" ({ctx['period'][0]} to {ctx['period'][1]})" if ctx["period"] else "")
                     + f" and found {plural(len(ctx['assets']), 'device')}.")
    if n_fail:
        sev = ", ".join(f"{n} {s}" for s, n in ctx["severity_counts"] if n)
        parts.append(f"{plural(n_fail, 'problem')} {'needs' if n_fail == 1 else 'need'} attention"
                     + (f" ({sev})." if sev else "."))
    elif ctx["passes"]:
        parts.append("No problems were found by the checks that ran.")
    else:
        parts.append("No check produced a result, so nothing can be said about the plant yet.")
    if ctx["accepted"]:
        parts.append(f"{plural(len(ctx['accepted']), 'accepted risk')} left out (see Accepted risks).")
    if ctx["passes"]:
        parts.append(f"{plural(len(ctx['passes']), 'check')} passed.")
    if ctx["not_run"]:
        parts.append(f"{plural(len(ctx['not_run']), 'check')} could not run (see below).")
    return " ".join(parts)


def accepted_row(f: dict) -> dict:
    """A failing finding under an accepted risk (--suppress): the finding and who accepted it, why,
    until when."""
    s = as_dict(f.get("suppressed"))
    return {**finding_row(f), "reason": text(s.get("reason")), "owner": text(s.get("owner")),
            "expires": text(s.get("expires")), "ticket": text(s.get("ticket")),
            "source": f"{text(s.get('file'))}, entry {text(s.get('entry'))}"}


def suppression_warnings(c: dict) -> list[str]:
    """A line per suppression that expired or matched nothing."""
    from plantguard.suppress import message
    return [message(u) for u in map(as_dict, as_list(c.get("suppressions"))) if u.get("status") in ("expired", "unused")]


def practices(findings: list[dict]) -> list[dict]:
    rows: dict[str, dict] = {}
    for f in findings:
        key = text(f.get("practice"))
        r = rows.setdefault(key, {"key": key, "name": practice_name(key),
                                  "means": PRACTICES.get(key, ("", ""))[1], "pass": 0, "fail": 0, "worst": "info"})
        if f.get("status") == "fail":
            r["fail"] += 1
            s = severity(f.get("severity"))
            if SEVERITY_ORDER.index(s) < SEVERITY_ORDER.index(r["worst"]):
                r["worst"] = s
        elif f.get("status") == "pass":
            r["pass"] += 1
    out = sorted(rows.values(), key=lambda r: (r["fail"] == 0, SEVERITY_ORDER.index(r["worst"]), r["name"]))
    for r in out:
        r["verdict"] = "Needs action" if r["fail"] else "OK"
    return out


def attestation_row(a: dict) -> dict:
    from plantguard.compliance.attestations import ATTESTATIONS
    aid, status = text(a.get("id")), text(a.get("status"))
    return {"id": aid, "title": ATTESTATIONS.get(aid, {}).get("title") or aid.replace("_", " "),
            "status": status, "status_word": ATTESTATION_WORDS.get(status, status),
            "evidence": text(a.get("evidence")), "date": text(a.get("date"))}


def header_word(key: str) -> str:
    return HEADER_WORDS.get(key.lower()) or key.replace("_", " ").capitalize()


def incident_rows(c: dict, findings: list[dict], assets: list[dict]) -> list[dict]:
    """The incidents with their finding rows (failing first, worst first). The contract's own
    when every finding names one of them; a contract without them (older, or foreign) is grouped
    here the same way (plan/incidents.py)."""
    findings = [f for f in findings if text(f.get("status")) in FINDING_STATUSES]
    listed = [as_dict(i) for i in as_list(c.get("incidents")) if text(as_dict(i).get("id"))]
    known = {text(i.get("id")) for i in listed}
    if findings and not all(text(f.get("id")) and text(f.get("incident")) in known for f in findings):
        flows = [(as_dict(x).get("src"), as_dict(x).get("dst"), as_dict(x).get("packets")) for x in as_list(c.get("flows"))]
        ids, of, listed = group_incidents(findings, flows, assets)
        findings = [{**f, "id": fid, "incident": iid} for f, fid, iid in zip(findings, ids, of)]
    zone_of = {text(k): text(a.get("zone")) for a in assets for k in [a.get("ip"), a.get("mac"), *as_list(a.get("ips"))] if text(k)}
    members: dict[str, list[dict]] = {}
    for f in findings:
        members.setdefault(text(f.get("incident")), []).append(finding_row(f, zone_of))
    out = []
    for i in listed:
        rows = members.get(text(i.get("id")), [])
        if not rows:
            continue
        rows.sort(key=lambda r: (r["status"] != "fail", SEVERITY_ORDER.index(r["severity"])))
        out.append({"id": text(i.get("id")), "kind": text(i.get("kind")), "title": text(i.get("title")),
                    "severity": severity(i.get("severity")), "status": "fail" if any(r["status"] == "fail" for r in rows) else "pass",
                    "assets": [text(a) for a in as_list(i.get("assets")) if text(a)],
                    "src": text(i.get("src")), "dst": text(i.get("dst")), "product": text(i.get("product")),
                    "firmware": text(i.get("firmware")), "advisories": joined(i.get("advisories")),
                    "checks": [text(x) for x in as_list(i.get("checks")) if text(x)], "findings": rows,
                    "failed": sum(1 for r in rows if r["status"] == "fail")})
    return out


def links(hits: list[dict]) -> tuple[list[dict], int]:
    """(the first MAX_LINKS of these incidents, how many more) for anchors #I-..."""
    hits = list({i["id"]: i for i in hits}.values())
    return [{"id": i["id"], "title": i["title"], "severity": i["severity"]} for i in hits[:MAX_LINKS]], max(0, len(hits) - MAX_LINKS)


def asset_row(a: dict, failing_at: dict[str, list[dict]] | None = None) -> dict:
    """A device's row; failing_at: address -> the failing incidents naming it (linked)."""
    ident = as_dict(a.get("identity"))
    services = ", ".join(f"{text(as_dict(s).get('name')) or '?'} {text(as_dict(s).get('proto'))}/{text(as_dict(s).get('port'))}"
                         for s in as_list(a.get("services"))[:12])
    name = text(ident.get("name")) or joined(as_list(a.get("hostnames"))[:2])
    keys = {text(k) for k in [a.get("ip"), a.get("mac"), *as_list(a.get("ips"))] if text(k)}
    problems, more = links(sorted((i for k in keys for i in (failing_at or {}).get(k, ())),
                                  key=lambda i: SEVERITY_ORDER.index(i["severity"])))
    return {"problems": problems, "more_problems": more,"ip": text(a.get("ip")), "mac": text(a.get("mac")), "name": name, "role": text(a.get("role")),
            "owner": text(as_dict(a.get("declared")).get("owner")),
            "vendor": text(ident.get("vendor")) or text(a.get("vendor")), "product": text(ident.get("product")),
            "firmware": text(ident.get("firmware")), "zone": text(a.get("zone")), "vlans": joined(a.get("vlans")),
            "protocols": joined(a.get("protocols")), "services": services,
            "first_seen": short_time(a.get("first_seen")), "last_seen": short_time(a.get("last_seen")),
            "ips": [text(x) for x in as_list(a.get("ips")) if text(x)],
            "probed": probed(a)}


def probed(a: dict) -> str:
    """"" or the identity keys plantguard probe learnt, with when: 'firmware, product (probed 2026-…)'."""
    active = {k: as_dict(v) for k, v in as_dict(a.get("identity_sources")).items()
              if as_dict(v).get("via") == "active"}
    if not active:
        return ""
    when = max(text(v.get("at")) for v in active.values())
    return f"{', '.join(sorted(text(k) for k in active))} (probed {when})"


def roadmap(r: dict, incidents: list[dict] = ()) -> dict:
    out = {"guidance": text(r.get("guidance")), "focus": [text(x) for x in as_list(r.get("focus")) if text(x)],
           "size": text(r.get("organization_size")), "size_assumed": bool(r.get("size_assumed")), "horizons": []}
    for h in HORIZONS:
        items = []
        for i in as_list(r.get(h)):
            i = as_dict(i)
            assets = [text(a) for a in as_list(i.get("assets")) if text(a)]
            # the incidents holding its findings (an older contract's item names none: its checks')
            mine = {text(x) for x in as_list(i.get("findings"))}
            shown, more = links([x for x in incidents if any(
                f["id"] in mine if mine else f["status"] == "fail" and f["check"] in as_list(i.get("checks"))
                for f in x["findings"])])
            items.append({"incidents": shown, "more_incidents": more,"title": text(i.get("title")), "why": text(i.get("why")), "effort": text(i.get("effort")),
                          "owner": text(i.get("owner_hint")), "checks": joined(i.get("checks")),
                          "assets": assets[:8], "more_assets": max(0, len(assets) - 8),
                          "severity": severity(i.get("severity")), "source": text(i.get("source"))})
        out["horizons"].append({"key": h, "title": HORIZON_TITLES[h], "items": items})
    out["empty"] = not any(h["items"] for h in out["horizons"])
    return out


def patch_plan(items: list) -> dict:
    """The plan's own flat table (one row per device); any other shape falls back to a generic
    table, so a malformed contract still renders."""
    try:
        from plantguard.plan.patching import patch_plan_table
        columns, table_rows = patch_plan_table([i for i in items if isinstance(i, dict)])
        return {"columns": [(k, h) for k, h in columns], "rows": [[text(v) for v in r] for r in table_rows]}
    except Exception:  # noqa: BLE001  (a report must render whatever the plan holds)
        pass
    rows = [as_dict(i) for i in items if isinstance(i, dict)]
    cols: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k not in cols and not isinstance(v, dict):
                cols.append(k)
    return {"columns": [(k, header_word(k)) for k in cols],
            "rows": [[joined(r.get(k)) if isinstance(r.get(k), (list, tuple)) else text(r.get(k)) for k in cols]
                     for r in rows]}


def compliance(comp: dict) -> list[dict]:
    out = []
    keys = [k for k in FRAMEWORK_ORDER if k in comp] + sorted(k for k in comp if k not in FRAMEWORK_ORDER)
    for key in keys:
        fw = as_dict(comp.get(key))
        rows = []
        for ctl in as_list(fw.get("controls")):
            ctl = as_dict(ctl)
            status = text(ctl.get("status"))
            if status == "none" and not ctl.get("checks") and not ctl.get("attestations"):
                continue
            rows.append({"id": text(ctl.get("id")), "title": text(ctl.get("title")), "group": text(ctl.get("group")),
                         "status": status if status in STATUS_WORDS else "none",
                         "status_word": STATUS_WORDS.get(status, status), "checks": joined(ctl.get("checks")),
                         "fail": num(ctl.get("fail")), "pass": num(ctl.get("pass")),
                         "via": joined(ctl.get("via"), "; "),
                         "attestations": joined([f"{text(as_dict(a).get('id')).replace('_', ' ')}: {text(as_dict(a).get('status'))}"
                                                 for a in as_list(ctl.get("attestations"))], "; "),
                         "baselines": joined(ctl.get("ot_baselines"), "/")})
            r = rows[-1]
            parts = [r["via"] or ("cited by the check" if r["checks"] else "")]
            if r["attestations"]:
                parts.append(f"declared: {r['attestations']}")
            r["link"] = "; ".join(p for p in parts if p)
        order = {"fail": 0, "pass": 1, "attested": 2, "none": 3}
        rows.sort(key=lambda r: order.get(r["status"], 3))
        summary = as_dict(fw.get("summary"))
        out.append({"key": key, "title": text(fw.get("title")) or key, "rows": rows,
                    "summary": [(s, num(summary.get(s))) for s in ("fail", "pass", "attested", "none")],
                    "unknown": joined(fw.get("unknown_ids"))})
    return out


