"""SBOM in procurement: every controller and gateway should come with an SBOM (sbom.missing);
each SBOM should carry the minimum elements (sbom.incomplete); and no component should match a
loaded advisory that the supplier's VEX does not answer (sbom.vulnerable-component)."""
from __future__ import annotations

from pathlib import Path

from plantguard.checks.base import CheckMeta, Evidence, Finding
from plantguard.checks.registry import NotRun, check
from plantguard.inventory.asset import CONTROLLER_ROLES
from plantguard.sbom.link import link_sboms, stored_sboms
from plantguard.site import declared_site

_CONTROLS = {"iec62443-3-3": ("SR 7.8",), "nist-800-53r5": ("SR-4", "SA-4", "CM-8", "SR-3"),
             "iso27001-2022": ("A.5.20", "A.5.21", "A.8.8")}
NEEDS_SBOM_ROLES = CONTROLLER_ROLES | {"gateway", "safety-controller"}

MISSING = CheckMeta(
    id="sbom.missing", title="Controller or gateway without an SBOM", practice="sbom-procurement",
    severity="medium",
    risk="Without a software bill of materials nobody can tell which third-party components run on the "
         "device, so a new vulnerability in one of them cannot be traced to it.",
    remediation="Ask the supplier for a CycloneDX or SPDX SBOM (make it a procurement clause), check it with "
                "`plantguard sbom check` and declare it in the site file (sboms: [{file, asset}]).",
    controls=_CONTROLS,
    action="Obtain software bills of materials (SBOMs) for plant devices",
    why="Without an SBOM you cannot tell which devices carry a vulnerable component.",
    effort="low", owner="procurement / vendor management", themes=("supply-chain",))

INCOMPLETE = CheckMeta(
    id="sbom.incomplete", title="SBOM invalid or missing minimum elements", practice="sbom-procurement",
    severity="low",
    risk="An SBOM without suppliers, versions or unique identifiers cannot be matched to advisories; one "
         "without author or timestamp cannot be trusted or kept current.",
    remediation="Return the SBOM to the supplier with the missing elements listed and require them by contract.",
    controls=_CONTROLS,
    action="Ask vendors to complete their SBOMs",
    why="The SBOMs received lack versions or components, so matching them to advisories is unreliable.",
    effort="low", owner="procurement / vendor management", themes=("supply-chain",))

VULNERABLE = CheckMeta(
    id="sbom.vulnerable-component", title="SBOM component named in a security advisory",
    needs_store=True,
    practice="sbom-procurement", severity="high",
    risk="A component inside the device matches a published vulnerability and the supplier has not stated "
         "(VEX) that the product is unaffected.",
    remediation="Ask the supplier for a fixed release or a VEX statement; meanwhile treat the device as "
                "vulnerable in the patch plan.",
    controls=_CONTROLS,
    action="Fix devices whose SBOM lists a vulnerable component",
    why="A component inside the device has a published vulnerability.",
    effort="medium", owner="OT engineer with the vendor", themes=("supply-chain", "vulnerability"))


def _sources(ctx):
    key = "_sbom_sources"
    opts = ctx.options if isinstance(ctx.options, dict) else {}
    if key not in opts:
        opts[key] = link_sboms(ctx.site, ctx.assets or [], stored_sboms(ctx.db))
    return opts[key]


def _declared_site(ctx) -> bool:
    return declared_site(ctx.site) is not None


def _declared_in_site(ctx, path) -> bool:
    if not _declared_site(ctx):
        return False
    files = [str(e.get("file")) for e in getattr(ctx.site, "sboms", None) or []]
    files += [str((a or {}).get("sbom")) for a in getattr(ctx.site, "assets", None) or [] if (a or {}).get("sbom")]
    return any(Path(f) == Path(path) for f in files)


def _reports(ctx):
    """Fresh check reports for every known SBOM file (current intel and VEX applied)."""
    key = "_sbom_reports"
    opts = ctx.options if isinstance(ctx.options, dict) else {}
    if key in opts:
        return opts[key]
    from plantguard.knowledge.assess_intel import intel_state
    from plantguard.sbom.check import check_files
    state = intel_state(ctx) if ctx.db is not None else None
    out = []
    for src in _sources(ctx):
        if src.declared_for is None and not src.assets and src.stored_report is not None \
                and not _declared_in_site(ctx, src.path):
            continue    # a stored SBOM for none of this assessment's devices
        if Path(src.path).is_file():
            rep = check_files([src.path], state.index if state else None)[0].as_dict()
        elif src.stored_report:
            rep = dict(src.stored_report)
            rep.setdefault("reasons", [])
        else:
            rep = {"file": src.path, "verdict": "invalid", "reasons": [f"{src.path}: no such file"],
                   "vulnerable_components": []}
        out.append((src, rep))
    opts[key] = out
    return out


@check(MISSING)
def missing(ctx) -> list[Finding]:
    sources = _sources(ctx)
    if not _declared_site(ctx) and not sources:
        raise NotRun("no SBOMs declared in a site file (sboms:) or checked into the store with "
                     "`plantguard sbom check`")
    covered: dict[str, list] = {}
    for s in sources:
        for k in s.assets:
            covered.setdefault(k, []).append(s)
    out = []
    for a in ctx.assets or ():
        if a.role not in NEEDS_SBOM_ROLES:
            continue
        label = f"{a.role} {a.key}" + (f" ({(a.identity or {}).get('product')})" if (a.identity or {}).get("product") else "")
        if a.key in covered:
            s = covered[a.key][0]
            out.append(Finding.from_meta(MISSING, "pass", f"{label} has an SBOM: {Path(s.path).name}", [a.key],
                                         [Evidence(None, None, None, "; ".join(s.how[:2]))], sbom=s.path))
        else:
            out.append(Finding.from_meta(MISSING, "fail", f"{label} has no SBOM on file", [a.key],
                                         [Evidence(None, None, None,
                                                   "no site-file sboms entry and no checked SBOM names this "
                                                   "device or its product")]))
    return out


@check(INCOMPLETE)
def incomplete(ctx) -> list[Finding]:
    reps = _reports(ctx)
    if not reps:
        raise NotRun("no SBOM declared in the site file or checked into the store")
    out = []
    for src, rep in reps:
        name = Path(src.path).name
        ev = [Evidence(None, None, None, r) for r in (rep.get("reasons") or [])[:20]]
        if rep.get("verdict") in ("invalid", "incomplete"):
            what = "is invalid" if rep["verdict"] == "invalid" else "lacks minimum elements"
            out.append(Finding.from_meta(INCOMPLETE, "fail", f"SBOM {name} {what}", src.assets, ev,
                                         file=src.path, verdict=rep["verdict"], missing=rep.get("missing", []),
                                         errors=rep.get("errors", [])))
        elif rep.get("verdict") != "vex":
            out.append(Finding.from_meta(INCOMPLETE, "pass", f"SBOM {name} is valid and has the minimum elements",
                                         src.assets, file=src.path, verdict=rep.get("verdict")))
    return out


@check(VULNERABLE)
def vulnerable_component(ctx) -> list[Finding]:
    from plantguard.knowledge.assess_intel import NO_INTEL_REASON, intel_state
    if ctx.db is None or intel_state(ctx) is None:
        raise NotRun(NO_INTEL_REASON)
    reps = _reports(ctx)
    if not reps:
        raise NotRun("no SBOM declared in the site file or checked into the store")
    out = []
    for src, rep in reps:
        name = Path(src.path).name
        if rep.get("verdict") in ("invalid", "vex"):
            continue
        vul = [v for v in rep.get("vulnerable_components") or [] if v.get("open_cves")]
        if vul:
            order = ("low", "medium", "high", "critical")
            worst = max((v.get("severity") if v.get("severity") in order else "medium" for v in vul), key=order.index)
            sev = "critical" if any(v.get("known_exploited") for v in vul) else worst
            ev = [Evidence(None, None, None, f"{v['component']}: {v['advisory']} {', '.join(v['open_cves'][:5])}"
                           f" ({v.get('confidence')} match)") for v in vul[:20]]
            out.append(Finding.from_meta(VULNERABLE, "fail",
                                         f"SBOM {name}: {len(vul)} component match(es) with open CVEs",
                                         src.assets, ev, severity=sev, file=src.path, components=vul))
        else:
            supp = sum(len(v.get("vex_suppressed") or []) for v in rep.get("vulnerable_components") or [])
            out.append(Finding.from_meta(VULNERABLE, "pass",
                                         f"SBOM {name}: no component matches an open advisory"
                                         + (f" ({supp} CVE(s) answered by VEX)" if supp else ""),
                                         src.assets, file=src.path))
    return out
