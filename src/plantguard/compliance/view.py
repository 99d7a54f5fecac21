"""The compliance view: for each framework, which controls the assessment gives evidence for and
what that evidence says (pass / fail), which ones the site attests, and which have nothing."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from plantguard.compliance.attestations import ATTESTATIONS, attestation_of, site_attestations
from plantguard.compliance.catalog import FRAMEWORKS, load_catalog, normalize_id

if TYPE_CHECKING:
    from plantguard.checks.base import CheckMeta, Finding
    from plantguard.site import Site

DIRECT_FRAMEWORKS = ("iec62443-3-3", "nist-800-53r5", "iso27001-2022")
STATUSES = ("fail", "pass", "attested", "none")


def _registered_checks() -> list[CheckMeta]:
    """Metadata of every registered check (so controls with no finding still show up)."""
    try:
        from plantguard.checks.registry import all_checks
        return [meta for meta, _fn in all_checks()]
    except Exception:   # registry absent or a check module broken: the findings still carry links
        return []


class _Links:
    """check id -> framework -> control id -> path ("" for a direct citation)."""

    def __init__(self):
        self.by_check: dict[str, dict[str, dict[str, str]]] = {}
        self.unknown: dict[str, set[str]] = {}

    def add_check(self, check_id: str, controls: Mapping[str, Iterable[str]], attack: Iterable[str]) -> None:
        if check_id in self.by_check:
            return
        cat = load_catalog()
        links: dict[str, dict[str, str]] = {fw: {} for fw in (*DIRECT_FRAMEWORKS, "attack-ics")}
        for fw, ids in controls.items():
            if fw in links:
                self._cite(links[fw], fw, ids, cat.has)
        self._cite(links["attack-ics"], "attack-ics", attack, lambda fw, nid: nid in cat.controls[fw])
        _one_hop(cat, links)
        self.by_check[check_id] = links

    def _cite(self, into: dict[str, str], fw: str, ids: Iterable[str], known) -> None:
        """The direct citations of one framework; IDs the catalog lacks are kept as unknown."""
        for cid in ids:
            nid = normalize_id(fw, cid)
            if known(fw, nid):
                into[nid] = ""
            else:
                self.unknown.setdefault(fw, set()).add(cid)


def _one_hop(cat, links: dict[str, dict[str, str]]) -> None:
    """One hop through published mappings into frameworks the check does not cite itself."""
    cited = {fw: dict(links[fw]) for fw in DIRECT_FRAMEWORKS}
    for target in DIRECT_FRAMEWORKS:
        if cited[target]:
            continue
        for src_fw in DIRECT_FRAMEWORKS:
            for cid in cited[src_fw]:
                for other, path in cat.one_hop(src_fw, cid, target):
                    prev = links[target].get(other)
                    links[target][other] = path if prev is None else "; ".join(sorted({prev, path}))


def compliance_view(findings: Iterable[Finding], site: Site | None = None, *, full: bool = False,
                    checks: Iterable[CheckMeta] | None = None) -> dict[str, Any]:
    """Per framework key: {"title", "summary": {status: n}, "controls": [...], "unknown_ids"}.

    findings: the checks' Finding objects (a saved contract's go through contract.findings_from,
    its site through contract.site_from). checks: the CheckMeta whose links are shown even
    without a finding (default: every registered check). full=True lists the whole catalog, with
    "none" for controls nothing speaks to."""
    findings = list(findings)
    links = _links_of(findings, checks)
    tally: dict[tuple[str, str], dict[str, Any]] = {}
    _tally_links(tally, links)
    _tally_findings(tally, findings, links)
    _tally_site(tally, site)
    return {fw: _framework_view(fw, tally, links, full)
            for fw in (*DIRECT_FRAMEWORKS, "nist-800-82r3-ot", "attack-ics")}


def _links_of(findings: list[Finding], checks: Iterable[CheckMeta] | None) -> _Links:
    links = _Links()
    for meta in (_registered_checks() if checks is None else checks):
        links.add_check(meta.id, meta.controls, meta.attack)
    for f in findings:
        links.add_check(f.check, f.controls, f.attack)
    return links


def _new_entry() -> dict[str, Any]:
    return {"checks": set(), "fail": 0, "pass": 0, "via": set(), "attestations": []}


def _entry(tally: dict, fw: str, cid: str) -> dict[str, Any]:
    """The tally of one (framework, control)."""
    return tally.setdefault((fw, cid), _new_entry())


def _tally_links(tally: dict, links: _Links) -> None:
    for check_id, per_fw in links.by_check.items():
        for fw, ids in per_fw.items():
            for cid, path in ids.items():
                e = _entry(tally, fw, cid)
                e["checks"].add(check_id)
                if path:
                    e["via"].add(f"{check_id}: {path}")


def _tally_findings(tally: dict, findings: list[Finding], links: _Links) -> None:
    for f in findings:
        if f.status not in ("pass", "fail"):
            continue
        declared = attestation_of(f)
        for fw, ids in links.by_check.get(f.check, {}).items():
            for cid in ids:
                _count(_entry(tally, fw, cid), f.status, declared)


def _count(e: dict[str, Any], status: str, declared: tuple[str, str] | None) -> None:
    if declared is None:
        e[status] += 1
        return
    # a finding that restates an attestation is a declaration, not a measurement:
    # "yes" attests the control, "no"/"partial" is a declared gap, unmentioned is no evidence
    aid, said = declared
    e["attestations"].append({"id": aid, "status": "yes" if status == "pass" else (said or "no")})
    if status == "fail" and said != "missing":
        e["fail"] += 1


def _tally_site(tally: dict, site: Site | None) -> None:
    for aid, a in site_attestations(site).items():
        for fw, ids in ATTESTATIONS.get(aid, {}).get("controls", {}).items():
            for cid in ids:
                _entry(tally, fw, cid)["attestations"].append({"id": aid, "status": a["status"]})


def _framework_view(fw: str, tally: dict, links: _Links, full: bool) -> dict[str, Any]:
    cat = load_catalog()
    src_fw = "nist-800-53r5" if fw == "nist-800-82r3-ot" else fw
    rows = []
    for cid, ctl in cat.controls[src_fw].items():
        if fw == "nist-800-82r3-ot" and not cat.in_ot_overlay(cid):
            continue
        e = tally.get((src_fw, cid))
        if e is None and not full:
            continue
        rows.append(_row(cat, fw, src_fw, cid, ctl, e or _new_entry()))
    summary = {s: 0 for s in STATUSES}
    for r in rows:
        summary[r["status"]] += 1
    fw_out = {"title": FRAMEWORKS[fw], "summary": summary, "controls": rows}
    unknown = links.unknown.get(src_fw)
    if unknown:
        fw_out["unknown_ids"] = sorted(unknown)
    return fw_out


def _row(cat, fw: str, src_fw: str, cid: str, ctl, e: dict[str, Any]) -> dict[str, Any]:
    row = {"id": cid, "title": ctl.title, "group": ctl.group, "status": _status(e),
           "checks": sorted(e["checks"]), "fail": e["fail"], "pass": e["pass"]}
    if e["via"]:
        row["via"] = sorted(e["via"])
    if e["attestations"]:
        uniq = {(a["id"], a["status"]): a for a in e["attestations"]}
        row["attestations"] = sorted(uniq.values(), key=lambda a: (a["id"], a["status"]))
    if src_fw == "nist-800-53r5":
        row["ot_baselines"] = list(cat.ot_baselines(cid))
    if fw == "attack-ics" and row["status"] == "fail":
        row["mitigations"] = [{"id": m, "name": cat.mitigations.get(m, "")}
                              for m in cat.technique_mitigations.get(cid, ())]
    return row


def _status(e: dict[str, Any]) -> str:
    # measured evidence outranks what the site declares; a failing finding outranks everything
    if e["fail"]:
        return "fail"
    if e["pass"]:
        return "pass"
    if any(a["status"] == "yes" for a in e["attestations"]):
        return "attested"
    return "none"
