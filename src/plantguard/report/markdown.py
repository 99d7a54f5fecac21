"""Markdown report: the same story as the HTML, for wikis, tickets and e-mail."""
from __future__ import annotations

from plantguard.report import context as cx
from plantguard.report.registry import Renderer, register
from plantguard.report.zones_svg import zone_graph

MD_SPECIAL = "\\`*_[]|#<>&"
ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
MAX_ASSET_ROWS = 500


def md(v) -> str:
    """Text that Markdown shows literally: no markup, links, HTML or table breaks can sneak in."""
    out = []
    for ch in " ".join(cx.text(v).split()):
        out.append(ENTITIES.get(ch) or ("\\" + ch if ch in MD_SPECIAL else ch))
    return "".join(out)


def table(head: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(md(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(md(c) for c in r) + " |" for r in rows]
    return lines + [""]


def render_markdown(contract: dict) -> str:
    c = cx.build(contract)
    out = [f"# Security assessment: {md(c['site'])}", "", md(c["headline"]), ""]

    out += ["## Summary", ""]
    if c["practices"]:
        out += table(["Practice", "Result", "Failed", "Passed"],
                     [[p["name"], p["verdict"], p["fail"], p["pass"]] for p in c["practices"]])
    out += ["Problems by severity: " + md(", ".join(f"{s} {n}" for s, n in c["severity_counts"])), ""]

    out += ["## What to do next", ""]
    rm = c["roadmap"]
    if rm["guidance"]:
        out += [md(rm["guidance"]), ""]
    for h in rm["horizons"]:
        out += [f"### {md(h['title'])}", ""]
        if not h["items"]:
            out += ["Nothing here.", ""]
        for i in h["items"]:
            line = f"- **{md(i['title'])}**: {md(i['why'])}"
            extra = [x for x in (f"effort {i['effort']}" if i["effort"] else "",
                                 f"owner: {i['owner']}" if i["owner"] else "",
                                 f"devices: {', '.join(i['assets'])}" if i["assets"] else "") if x]
            out.append(line + (f" ({md('; '.join(extra))})" if extra else ""))
        out.append("")

    graph = zone_graph(contract)
    out += ["## Zones and traffic between them", ""]
    if graph["edges"]:
        out += table(["From zone", "To zone", "Traffic", "Flows", "Packets", "Status"],
                     [[e["src"], e["dst"], e["label"], e["flows"], f"{e['packets']:,}",
                       "VIOLATION" if e["violation"] else "ok"] for e in graph["edges"]])
    else:
        out += ["No traffic between zones was seen.", ""]

    out += ["## Problems found", ""]
    if not c["fails"]:
        out += ["None.", ""]
    for f in c["fails"]:
        out += [f"### [{md(f['severity'].upper())}] {md(f['title'])}", "",
                f"- Check: {md(f['check'])} ({md(f['practice'])})"]
        if f["assets"]:
            out.append(f"- Devices: {md(', '.join(f['assets']))}")
        if f["remediation"]:
            out.append(f"- What to do: {md(f['remediation'])}")
        for fw, ids in f["controls"]:
            out.append(f"- {md(fw)}: {md(ids)}")
        if f["attack"]:
            out.append(f"- ATT&amp;CK for ICS: {md(f['attack'])}")
        out.append("")
        if f["evidence"]:
            out += table(["Capture", "Frame", "Time", "Detail"],
                         [[e["capture"], e["frame"], e["time"], e["detail"]] for e in f["evidence"]])
            if f["evidence_total"] > len(f["evidence"]):
                out += [f"Showing {len(f['evidence'])} of {f['evidence_total']} evidence items.", ""]
    if c["passes"]:
        out += ["### Checks that passed", ""] + [f"- {md(p['title'])} ({md(p['check'])})" for p in c["passes"]] + [""]
    if c["not_run"]:
        out += ["### Checks that could not run", ""] + [f"- {md(n['check'])}: {md(n['reason'])}" for n in c["not_run"]] + [""]

    out += ["## Devices", ""]
    if c["assets"]:
        out += table(["IP", "MAC", "Name", "Role", "Vendor", "Product", "Firmware", "Zone", "Protocols"],
                     [[a["ip"], a["mac"], a["name"], a["role"], a["vendor"], a["product"], a["firmware"], a["zone"],
                       a["protocols"]] for a in c["assets"][:MAX_ASSET_ROWS]])
        if len(c["assets"]) > MAX_ASSET_ROWS:
            out += [f"First {MAX_ASSET_ROWS} of {len(c['assets'])} devices; the JSON report lists all.", ""]
    else:
        out += ["No devices were seen.", ""]

    if c["patch_plan"]["rows"]:
        out += ["## Patch plan", ""] + table([h for _, h in c["patch_plan"]["columns"]], c["patch_plan"]["rows"])

    out += ["## Standards", ""]
    for fw in c["compliance"]:
        out += [f"### {md(fw['title'])}", "",
                md(", ".join(f"{cx.STATUS_WORDS[s]}: {n}" for s, n in fw["summary"])), ""]
        if fw["rows"]:
            out += table(["Control", "Title", "Status", "Checks", "Failed", "Passed", "Link"],
                         [[r["id"], r["title"], r["status_word"], r["checks"], r["fail"], r["pass"],
                           r["link"]] for r in fw["rows"]])
    if c["attestations"]:
        out += ["## What the site declared", ""] + table(["Attestation", "Status", "Evidence", "Date"],
                                                         [[a["title"], a["status_word"], a["evidence"], a["date"]] for a in c["attestations"]])
    if c["notes"]:
        out += ["## Notes", ""] + [f"- {md(n)}" for n in c["notes"]] + [""]
    out += ["---", "", f"Generated by plantguard {md(c['version'])}. MITRE ATT&amp;CK for ICS data © The MITRE Corporation, "
            "reproduced and distributed with its permission.", ""]
    return "\n".join(out)


MARKDOWN = register(Renderer("md", "md", "text/markdown", render_markdown, ("assess",)))
