"""The roadmap: what to do now, in the next three months, and later — built from the failing
findings, the checks that could not run and the site's attestations, weighted by the size of the
organisation (a small plant needs different first steps than a group with its own SOC).

The wording of an item comes from where the work is declared: a check's CheckMeta (action, why,
effort, owner, themes) for its failing findings, data/attestations.yaml for the attestations;
this module holds only the size guidance and the items no check owns."""
from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from plantguard.checks.base import severity_rank
from plantguard.checks.registry import check_meta
from plantguard.compliance.attestations import ATTESTATIONS, attestation_of, roadmap_action, site_attestations
from plantguard.plan.incidents import finding_ids

if TYPE_CHECKING:
    from plantguard.checks.base import Finding
    from plantguard.inventory.asset import Asset
    from plantguard.site import Site

HORIZONS = ("immediate", "1-3 months", "3+ months")
SIZES = ("small", "medium", "large")
MAX_ITEM_ASSETS = 50
MAX_IMMEDIATE = 10
CONTROLLER_ROLES = {"plc", "rtu", "safety-controller", "ied", "io-device", "drive"}

# what each size should concentrate on (themes get a priority boost) and how we say it
GUIDANCE: dict[str, dict[str, Any]] = {
    "small": {
        "themes": {"perimeter", "hygiene", "credentials", "monitoring-service"},
        "text": ("Start with the basics that stop most attacks on a small plant: one firewall that "
                 "keeps the office and the internet away from the machines, no factory passwords left "
                 "on any device, and services nobody uses switched off. You do not need your own "
                 "security team: a managed security provider can watch the network for you."),
        "focus": ["Close the perimeter between office, internet and plant",
                  "Replace factory-default passwords and switch off unused services",
                  "Let a managed security service provider (MSSP) watch the plant network"],
    },
    "medium": {
        "themes": {"visibility", "vulnerability", "incident-response", "perimeter"},
        "text": ("Know what you run and keep it patched: keep the device inventory current, match it "
                 "against vendor advisories on a fixed schedule, and write down how you keep "
                 "producing (or stop safely) when an incident takes machines or the network down."),
        "focus": ["Keep a complete, current inventory of plant devices",
                  "Run vulnerability management against that inventory on a schedule",
                  "Write and rehearse an incident-response plan for production downtime"],
    },
    "large": {
        "themes": {"monitoring", "segmentation", "access-control", "visibility"},
        "text": ("Run plant security as an operation: a security operations centre that understands "
                 "industrial protocols, inspection of control traffic at every zone boundary, regular "
                 "threat hunting, and response that is orchestrated across sites."),
        "focus": ["Operate an OT-aware security operations centre (SOC)",
                  "Inspect industrial protocols (deep packet inspection) at zone boundaries",
                  "Hunt for threats regularly and orchestrate response across sites"],
    },
}

# programme items each size should have on the list even when no finding points to them
PROGRAMME: dict[str, list[tuple[str, str, str, str, str]]] = {
    "small": [("immediate", "Put one firewall between the office/internet and the plant, deny by default",
               "A single well-configured boundary removes most of the exposure of a small plant.",
               "low", "network team or integrator")],
    "medium": [("1-3 months", "Keep the device inventory current and review it monthly",
                "Vulnerability management and incident response both start from a correct inventory.",
                "low", "OT engineer")],
    "large": [("1-3 months", "Inspect industrial protocols (deep packet inspection) at zone boundaries",
               "Inspection that understands Modbus, S7, EtherNet/IP and others can block writes and "
               "program changes that a port-based firewall lets through.", "high", "OT security team"),
              ("3+ months", "Hunt for threats in plant traffic on a regular schedule",
               "Attackers who are already inside are found by looking, not by waiting for alerts.",
               "medium", "OT SOC"),
              ("3+ months", "Orchestrate incident response across sites (playbooks, automation)",
               "Consistent, automated first steps contain an incident before it spreads to other plants.",
               "high", "OT SOC / corporate security")],
}

SITE_FILE_ITEM = ("Describe the plant in a site file: zones, conduits, engineering stations, attestations",
                  "Segmentation, authorised-station and several other checks need to know how the plant "
                  "is meant to work before they can tell what is wrong.", "low", "OT engineer")
SBOM_ITEM = ("Collect SBOMs from vendors and list them in the site file",
             "The SBOM checks need the vendors' software bills of materials to say which components "
             "the devices contain.", "low", "procurement / OT engineer")
INTEL_ITEM = ("Load vulnerability advisories so patch checks can run",
              "Without advisories the assessment cannot say which devices have known vulnerabilities.",
              "low", "OT engineer / IT security")


def _size(site: Site | None) -> tuple[str, bool]:
    size = site.organization_size if site is not None else ""
    return (size, False) if size in SIZES else ("medium", True)


def _earlier(horizon: str) -> str:
    return HORIZONS[max(0, HORIZONS.index(horizon) - 1)]


def _horizon_for(severity: str) -> str:
    r = severity_rank(severity)
    return "immediate" if r >= 3 else "1-3 months" if r == 2 else "3+ months"


def _controller_keys(assets: Iterable[Asset]) -> set[str]:
    return {k for a in assets if a.role in CONTROLLER_ROLES for k in (a.ip, a.mac) if k}


def _order(item: dict) -> tuple:
    return tuple(-int(x) for x in item["_rank"]), item["title"]


def build_roadmap(findings: Iterable[Finding], not_run: Iterable[Mapping[str, str]], site: Site | None,
                  assets: Iterable[Asset]) -> dict:
    """{"organization_size", "size_assumed", "guidance", "focus", and per horizon its items}: one
    item per failing check (worded by the check's metadata), per kind of check that could not
    run, per attestation the site has not confirmed and per programme step of the size.

    not_run: the {"check", "reason"} dicts run_checks gives. A saved contract's findings, not-run
    checks, site and assets go through contract.findings_from, not_run_from, site_from and
    assets_from."""
    size, assumed = _size(site)
    themes = GUIDANCE[size]["themes"]
    measured, declared_severity = _group_findings(findings)
    controllers = _controller_keys(assets)
    items = [_finding_item(cid, group, themes, controllers) for cid, group in measured.items()]
    items += _not_run_items(not_run, site, themes)
    if site is not None:    # without a site file the site-file item covers the attestations
        items += _attestation_items(site, size, themes, declared_severity)
    items += _programme_items(size)
    out: dict[str, Any] = {"organization_size": size, "size_assumed": assumed,
                           "guidance": GUIDANCE[size]["text"], "focus": list(GUIDANCE[size]["focus"])}
    out.update(_by_horizon(items))
    return out


# 1. failing findings, one item per check

def _group_findings(findings: Iterable[Finding]) -> tuple[OrderedDict[str, list[Finding]], dict[str, str]]:
    """(check id -> its failing findings, attestation id -> the most severe gap its check gave).
    Findings restating an attestation become the attestation items, not duplicates of them."""
    by_check: OrderedDict[str, list[Finding]] = OrderedDict()
    declared_severity: dict[str, str] = {}
    for f in findings:
        if f.status != "fail":
            continue
        declared = attestation_of(f)
        if declared is None:
            by_check.setdefault(f.check, []).append(f)
        else:
            prev = declared_severity.get(declared[0], "info")
            declared_severity[declared[0]] = max(prev, f.severity, key=severity_rank)
    return by_check, declared_severity


def _wording(check_id: str, first: Finding) -> tuple[str, str, str, str, set[str]]:
    """(title, why, effort, owner, themes) from the check's metadata; a check the registry does
    not know is worded by its own finding."""
    meta = check_meta(check_id)
    if meta is not None:
        return meta.action, meta.why, meta.effort, meta.owner, set(meta.themes)
    return first.remediation or first.title or check_id, first.title, "medium", "OT engineer", set()


def _seen(times: int, controllers: int) -> str:
    out = f" Seen {times} times." if times > 1 else ""
    if controllers:
        out += f" {controllers} of the devices concerned {'are controllers' if controllers > 1 else 'is a controller'}."
    return out


def _finding_item(check_id: str, group: list[Finding], themes: set[str], controllers: set[str]) -> dict[str, Any]:
    sev = max((f.severity for f in group), key=severity_rank)
    assets_hit = list(OrderedDict.fromkeys(a for f in group for a in f.assets))
    title, why, effort, owner, item_themes = _wording(check_id, group[0])
    n_ctrl = sum(1 for a in assets_hit if a in controllers)
    emphasis = bool(item_themes & themes)
    horizon = _horizon_for(sev)
    if emphasis and severity_rank(sev) >= 2:
        horizon = _earlier(horizon)
    return {"title": title, "why": why + _seen(len(group), n_ctrl), "checks": [check_id],
            "assets": assets_hit[:MAX_ITEM_ASSETS], "effort": effort, "owner_hint": owner, "severity": sev,
            "source": "finding", "emphasis": emphasis,
            "findings": finding_ids({"check": f.check, "assets": f.assets, "title": f.title} for f in group),
            "_horizon": horizon,
            "_rank": (severity_rank(sev), emphasis, 2, n_ctrl, len(assets_hit))}


# 2. checks that could not run, one item per kind of missing input

# kind -> (wording, severity, horizon, the theme that puts it in the size's emphasis)
NOT_RUN_ITEMS: dict[str, tuple[tuple[str, str, str, str], str, str, str | None]] = {
    "site": (SITE_FILE_ITEM, "high", "immediate", None),
    "intel": (INTEL_ITEM, "medium", "immediate", "vulnerability"),
    "sbom": (SBOM_ITEM, "low", "1-3 months", "supply-chain"),
}


def _not_run_kind(reason: str, site: Site | None) -> str:
    low = reason.lower()
    if "needs a site file" in low or (site is None and "site" in low):
        return "site"
    if any(w in low for w in ("intel", "advisor", "kev")):
        return "intel"
    return "sbom" if "sbom" in low else "other"


def _classify_not_run(not_run: Iterable[Mapping[str, str]],
                      site: Site | None) -> tuple[dict[str, list[str]], OrderedDict[str, list[str]]]:
    """(kind -> check ids, other reason -> check ids)."""
    by_kind: dict[str, list[str]] = {k: [] for k in NOT_RUN_ITEMS}
    other: OrderedDict[str, list[str]] = OrderedDict()
    for n in not_run:
        cid, reason = n["check"], n["reason"]
        kind = _not_run_kind(reason, site)
        if kind in by_kind:
            by_kind[kind].append(cid)
        else:
            other.setdefault(reason or "no reason given", []).append(cid)
    return by_kind, other


def _not_run_items(not_run: Iterable[Mapping[str, str]], site: Site | None, themes: set[str]) -> list[dict[str, Any]]:
    by_kind, other = _classify_not_run(not_run, site)
    items = []
    for kind, ((title, why, effort, owner), sev, horizon, theme) in NOT_RUN_ITEMS.items():
        cids = by_kind[kind]
        if cids or (kind == "site" and site is None):
            items.append({"title": title, "why": why, "checks": sorted(set(cids)), "assets": [], "effort": effort,
                          "owner_hint": owner, "severity": sev, "source": "not-run", "emphasis": theme in themes,
                          "_horizon": horizon, "_rank": (severity_rank(sev), True, 1, 0, len(cids))})
    for reason, cids in other.items():
        items.append({"title": f"Make {len(cids)} more check{'s' if len(cids) > 1 else ''} runnable",
                      "why": f"They could not run: {reason}", "checks": sorted(set(cids)), "assets": [],
                      "effort": "low", "owner_hint": "OT engineer", "severity": "low", "source": "not-run",
                      "emphasis": False, "_horizon": "1-3 months", "_rank": (1, False, 1, 0, len(cids))})
    return items


# 3. attestations the site has not confirmed (data/attestations.yaml words them)

def _attestation_state(a: dict[str, Any] | None) -> str:
    if a is None:
        return "The site file does not say whether this is in place."
    if a["status"] == "partial":
        return "The site file says this is only partly in place."
    return "The site file says this is not in place."


def _attestation_horizon(road: dict[str, Any], emphasis: bool, sev: str) -> str:
    # declared gaps move up a step when they are this size's focus; only urgent ones (weak remote
    # access) join the measured problems in "immediate"
    base = road["horizon"]
    horizon = _earlier(base) if emphasis and (base == "3+ months" or road["urgent"]) else base
    # the attestation check's own judgement of the gap, when it ran, can only make it more urgent
    if HORIZONS.index(_horizon_for(sev)) < HORIZONS.index(horizon) and severity_rank(sev) >= 3:
        horizon = _horizon_for(sev)
    return horizon


def _attestation_items(site: Site, size: str, themes: set[str], declared_severity: dict[str, str]) -> list[dict]:
    attested = site_attestations(site)
    items = []
    for aid, att in ATTESTATIONS.items():
        a = attested.get(aid)
        if a and a["status"] == "yes":
            continue
        road = att["roadmap"]
        emphasis = bool(set(road["themes"]) & themes)
        sev = declared_severity.get(aid) or ("medium" if emphasis else "low")
        items.append({"title": roadmap_action(aid, size), "why": f"{road['why']} {_attestation_state(a)}",
                      "checks": [att["check"]], "assets": [], "effort": road["effort"],
                      "owner_hint": road["owner"], "severity": sev, "source": "attestation", "attestation": aid,
                      "emphasis": emphasis, "controls": {fw: list(ids) for fw, ids in att["controls"].items()},
                      "_horizon": _attestation_horizon(road, emphasis, sev),
                      "_rank": (max(severity_rank(sev), 1), emphasis, 0, 0, 0)})
    return items


# 4. the programme items of this size

def _programme_items(size: str) -> list[dict[str, Any]]:
    return [{"title": title, "why": why, "checks": [], "assets": [], "effort": effort, "owner_hint": owner,
             "severity": "info", "source": "guidance", "emphasis": True, "_horizon": horizon,
             "_rank": (2, True, 0, 0, 0)}
            for horizon, title, why, effort, owner in PROGRAMME[size]]


# the items by horizon, in order

def _by_horizon(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    buckets: dict[str, list[dict[str, Any]]] = {h: [] for h in HORIZONS}
    for i in items:
        buckets[i.pop("_horizon")].append(i)
    _cap_immediate(buckets)
    for h in HORIZONS:
        # most severe first; then the size's emphasis, measured before declared, controllers
        # touched and breadth
        buckets[h].sort(key=_order)
        for i in buckets[h]:
            del i["_rank"]
    return buckets


def _cap_immediate(buckets: dict[str, list[dict[str, Any]]]) -> None:
    """Keep "immediate" short: beyond MAX_IMMEDIATE, what is not critical or high waits a step."""
    buckets["immediate"].sort(key=_order)
    keep = [i for n, i in enumerate(buckets["immediate"]) if n < MAX_IMMEDIATE or i["_rank"][0] >= 3]
    kept = {id(i) for i in keep}
    buckets["1-3 months"] += [i for i in buckets["immediate"] if id(i) not in kept]
    buckets["immediate"] = keep
