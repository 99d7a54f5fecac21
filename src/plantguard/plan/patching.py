"""The patch plan: per vulnerable device, what to install (the advisory's fixed version or
remediation), when (the site's next suitable maintenance window, by priority), how long the
device will be down, and — where no patch exists or it cannot go in yet — the advisory's
mitigations and the compensating controls plantguard can verify from the traffic and site file.

build_patch_plan() returns one dict per device, most urgent first:
  asset, name, role, zone, criticality, vendor, product, firmware,
  priority ("now"|"next"|"later"), priority_reason, target_version (the highest fixed version,
  which closes every advisory that has one), advisories [{advisory, title, url, cves,
  known_exploited, max_cvss, confidence, fixed_in, remediation, priority}],
  actions [text], unpatched [advisory ids with no fix], window {name, start, hours, zones} or None,
  window_note, estimated_downtime_hours, fits_window, mitigations [{advisory, category, details,
  url}], compensating_controls [{control, status ("verified"|"failed"|"not-verifiable"), detail}]
report.patch_plan renders it: CSV (patch_plan_csv, one row per (device, advisory)), JSON, text."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Iterable

from plantguard.knowledge.priority import priority_rank
from plantguard.knowledge.versions import parse_version
from plantguard.report.patch_plan import CSV_COLUMNS, patch_plan_csv  # noqa: F401 - rendered in report/, importable here
from plantguard.site import declared_site

if TYPE_CHECKING:
    from plantguard.checks.base import Finding
    from plantguard.inventory.asset import Asset
    from plantguard.site import Site

VULN_CHECKS = ("vuln.known-exploited", "vuln.advisory")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_MITIGATIONS = 8

# Hours a device is out of service for a firmware update, including the functional test
# before the process restarts (planning figures; the site's engineers refine them).
DOWNTIME_HOURS = {
    "safety-controller": 4.0, "plc": 2.0, "rtu": 2.0, "ied": 2.0, "drive": 1.0, "io-device": 1.0,
    "gateway": 1.0, "hmi": 1.0, "engineering-workstation": 1.0, "historian": 1.5, "scada-server": 2.0,
    "switch": 0.5, "router": 0.5, "firewall": 1.0, "sensor": 0.5,
}
DEFAULT_DOWNTIME = 1.0


def build_patch_plan(findings: Iterable[Finding], assets: Iterable[Asset], site: Site | None,
                     now: datetime | None = None) -> list[dict]:
    """The plan for every device with a failing vulnerability finding. An advisory's odd detail
    never loses the plan: that device gets an entry with the error. A saved contract's findings,
    assets and site go through contract.findings_from, assets_from and site_from."""
    by_asset: dict[str, list[Finding]] = {}
    for f in findings:
        if f.check in VULN_CHECKS and f.status == "fail" and f.assets:
            by_asset.setdefault(f.assets[0], []).append(f)
    asset_by_key = {a.key: a for a in assets}
    declared = declared_site(site)
    plan = []
    for key, fs in by_asset.items():
        try:
            plan.append(_entry(key, fs, asset_by_key.get(key), declared, now))
        except Exception as exc:  # noqa: BLE001 - one odd finding must not lose the plan
            plan.append({"asset": key, "priority": "later", "error": f"{type(exc).__name__}: {exc}",
                         "advisories": [], "actions": [], "mitigations": [], "compensating_controls": []})
    plan.sort(key=lambda e: (priority_rank(e.get("priority", "later")), -e.get("_score", 0), str(e["asset"])))
    for e in plan:
        e.pop("_score", None)
    return plan


def _entry(key: str, fs: list[Finding], asset: Asset | None, site: Site | None, now: datetime | None) -> dict:
    details = [f.extra for f in fs]
    details.sort(key=lambda d: (priority_rank(d.get("priority", "later")), -(d.get("priority_score") or 0)))
    top = details[0]
    ident = top.get("identity") or {}
    role, zone = _role_and_zone(top, asset)
    advisories, unpatched, fixes, mitigations = _per_advisory(details)
    target = _highest(fixes)
    downtime = DOWNTIME_HOURS.get(role, DEFAULT_DOWNTIME)
    window, note, fits = _schedule(site, zone, top.get("priority", "later"), now, downtime)
    return {
        "asset": key, "name": ident.get("name") or _asset_name(asset),
        "role": role, "zone": zone, "criticality": top.get("criticality"),
        "vendor": ident.get("vendor"), "product": ident.get("product") or ident.get("order_number"),
        "firmware": ident.get("firmware"),
        "priority": top.get("priority", "later"), "priority_reason": top.get("priority_reason"),
        "target_version": target, "advisories": advisories,
        "actions": _actions(target, len(fixes), len(details), unpatched),
        "unpatched": [a for a in unpatched if a],
        "window": window, "window_note": note, "estimated_downtime_hours": downtime, "fits_window": fits,
        "mitigations": mitigations,
        "compensating_controls": _controls(top, site, zone),
        "_score": top.get("priority_score") or 0,
    }


def _per_advisory(details: list[dict]) -> tuple[list[dict], list, list[str], list[dict]]:
    """(advisory rows, advisories with no fix, fixed versions, mitigations) over the device's
    findings, most urgent first."""
    advisories, unpatched, fixes, mitigations = [], [], [], []
    seen_mit = set()
    for d in details:
        fixed = d.get("fixed_in")
        remediation, has_fix = _remediation(d)
        no_fix = _no_fix_planned(d)
        if fixed:
            fixes.append(fixed)
        if not has_fix:
            unpatched.append(d.get("advisory"))
        elif no_fix and not fixed and d.get("advisory") not in unpatched:
            unpatched.append(d.get("advisory"))
        advisories.append(_advisory_row(d, fixed, remediation))
        _add_mitigations(d, mitigations, seen_mit)
    return advisories, unpatched, fixes, mitigations


def _remediation(d: dict) -> tuple[str, bool]:
    """What to do about one advisory: (text, whether a fixed version or vendor fix exists)."""
    fixed = d.get("fixed_in")
    vendor_fix = next((r for r in d.get("remediations") or [] if r.get("category") == "vendor_fix"), None)
    if fixed:
        return f"update to {fixed} or later", True
    if vendor_fix:
        return _short(vendor_fix.get("details")), True
    return "no fix published: apply the mitigations", False


def _no_fix_planned(d: dict) -> bool:
    return any(r.get("category") in ("no_fix_planned", "none_available") for r in d.get("remediations") or [])


def _advisory_row(d: dict, fixed, remediation: str) -> dict:
    return {
        "advisory": d.get("advisory"), "title": d.get("title"), "url": d.get("url"),
        "cves": [c.get("cve") for c in d.get("cves") or [] if c.get("cve")],
        "known_exploited": d.get("known_exploited") or [], "max_cvss": d.get("max_cvss"),
        "confidence": d.get("confidence"), "fixed_in": fixed, "remediation": remediation,
        "priority": d.get("priority")}


def _add_mitigations(d: dict, mitigations: list[dict], seen: set) -> None:
    """The advisory's mitigations and workarounds not listed yet, up to MAX_MITIGATIONS in all."""
    for r in d.get("remediations") or []:
        if r.get("category") in ("mitigation", "workaround") and r.get("details"):
            k = _short(r["details"], 160)
            if k not in seen and len(mitigations) < MAX_MITIGATIONS:
                seen.add(k)
                mitigations.append({"advisory": d.get("advisory"), "category": r["category"],
                                    "details": _short(r["details"], 400), "url": r.get("url")})


def _actions(target: str | None, n_fixed: int, n_advisories: int, unpatched: list) -> list[str]:
    actions = []
    if target:
        actions.append(f"Update firmware to {target} or later (closes {n_fixed} of {n_advisories} advisories)")
    if unpatched:
        actions.append(f"No fix for {', '.join(a for a in unpatched if a)}: apply the advisories' mitigations "
                       "and keep the compensating controls below in place")
    return actions


def _schedule(site: Site | None, zone, priority, now, downtime: float) -> tuple[dict | None, str, bool | None]:
    """(window, note, whether the update fits the window)."""
    window, note = _window(site, zone, priority, now)
    fits = None if window is None else downtime <= window["hours"]
    if window is not None and not fits:
        note += f"; the update needs about {downtime:g} h but the window is {window['hours']:g} h: plan a longer stop"
    return window, note, fits


def _role_and_zone(detail: dict, asset: Asset | None) -> tuple[str, str | None]:
    """The device's role and zone as the finding says them, else as the inventory does."""
    if asset is None:
        return detail.get("role") or "unknown", detail.get("zone") or None
    return detail.get("role") or asset.role or "unknown", detail.get("zone") or asset.zone


def _asset_name(asset: Asset | None) -> str | None:
    return asset.identity.get("name") if asset is not None else None


def _short(text, n: int = 240) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= n else s[:n - 1].rstrip() + "…"


def _highest(versions: list[str]) -> str | None:
    parsed = [(parse_version(v), v) for v in versions if v]
    parsed = [(p, v) for p, v in parsed if p is not None and not p.has_wildcard]
    if not parsed:
        return versions[0] if versions else None
    return max(parsed, key=lambda pv: pv[0])[1]


def _window(site: Site | None, zone, priority, now) -> tuple[dict | None, str]:
    """The maintenance window to use: the next one for 'now', the one after for 'next' (time to
    test the update first), a later one for 'later'."""
    if site is None:
        return None, "no site file: declare maintenance_windows to schedule the update"
    wins = [w for w in site.maintenance_windows if not w.zones or zone in w.zones]
    if not wins:
        return None, (f"no maintenance window covers zone '{zone}'" if zone else "no maintenance window declared")
    tz = site._tz
    start = (now or datetime.now(tz)).astimezone(tz)
    occurrences = []
    for w in wins:
        occurrences += [(t, w) for t in _next_starts(w, start, 5)]
    occurrences.sort(key=lambda tw: tw[0])
    skip = {"now": 0, "next": 1, "later": 3}.get(priority, 3)
    t, w = occurrences[min(skip, len(occurrences) - 1)]
    note = {"now": "next window", "next": "the window after next (test the update first)",
            "later": "a later window, with other planned work"}.get(priority, "")
    if priority == "now" and (t - start) > timedelta(days=7):
        note += "; more than a week away: consider an emergency change or apply the mitigations now"
    return {"name": w.name, "start": t.isoformat(timespec="minutes"), "hours": w.hours,
            "zones": list(w.zones)}, note


def _next_starts(w, after: datetime, n: int) -> list[datetime]:
    hh, mm = (int(x) for x in w.start.split(":"))
    out = []
    for d in range(0, 7 * (n + 1)):
        day = (after + timedelta(days=d)).date()
        if DAYS[day.weekday()] not in w.days:
            continue
        t = datetime(day.year, day.month, day.day, hh, mm, tzinfo=after.tzinfo)
        if t > after:
            out.append(t)
            if len(out) >= n:
                break
    return out


def _controls(detail: dict, site: Site | None, zone) -> list[dict]:
    """Compensating controls verified from what was measured: segmentation of who reaches the
    device, and the egress allow-list of its zone."""
    exp = detail.get("exposure") or {}
    level = exp.get("level")
    out = []
    if site is None:
        out.append({"control": "segmentation", "status": "not-verifiable",
                    "detail": "no site file: zones and conduits are not declared"})
    elif level in ("internet", "it"):
        out.append({"control": "segmentation", "status": "failed",
                    "detail": f"reached {exp.get('summary')}: block this path before relying on it"})
    elif exp.get("unallowed_crossings"):
        out.append({"control": "segmentation", "status": "failed",
                    "detail": f"{exp['unallowed_crossings']} connection(s) from other zones that no conduit allows"})
    else:
        out.append({"control": "segmentation", "status": "verified",
                    "detail": "only reached from its own zone" if level in ("zone-local", "not-seen")
                    else "reached from other zones only through declared conduits"})
    if site is not None:
        rules = {e.zone for e in site.egress}
        if zone and zone in rules:
            out.append({"control": "egress allow-list", "status": "verified",
                        "detail": f"zone '{zone}' has a deny-all egress rule with an allow-list "
                                  "(violations are reported by egress.not-allowlisted)"})
        else:
            out.append({"control": "egress allow-list", "status": "failed",
                        "detail": f"zone '{zone}' has no egress rule: outbound traffic is not restricted"
                        if zone else "the device is in no declared zone"})
    return out


TABLE_COLUMNS = (("priority", "Priority"), ("device", "Device"), ("firmware", "Product / firmware"),
                 ("advisories", "Advisories"), ("action", "Action"), ("window", "Window"),
                 ("downtime", "Downtime (h)"), ("controls", "Compensating controls"), ("reason", "Why"))


def patch_plan_table(plan: list[dict]) -> tuple[tuple, list[list[str]]]:
    """One flat row of text per device, for reports: (columns as (key, header), rows)."""
    rows = []
    for e in plan or ():
        advs = []
        for a in e.get("advisories") or []:
            kev = " (KEV)" if a.get("known_exploited") else ""
            advs.append(f"{a.get('advisory')}{kev}" + (f" → {a['fixed_in']}" if a.get("fixed_in") else ""))
        win = e.get("window") or {}
        window = f"{win.get('name')} {win.get('start')}" if win else (e.get("window_note") or "")
        rows.append([
            str(e.get("priority") or ""),
            " ".join(x for x in (str(e.get("asset") or ""), f"({e['role']}, {e['zone']})" if e.get("zone") else "") if x),
            " ".join(str(x) for x in (e.get("vendor"), e.get("product"), e.get("firmware")) if x),
            ", ".join(advs),
            "; ".join(e.get("actions") or []) or "see the advisories",
            window + (" — does not fit" if e.get("fits_window") is False else ""),
            f"{e.get('estimated_downtime_hours', '')}",
            "; ".join(f"{c['control']}: {c['status']}" for c in e.get("compensating_controls") or []),
            str(e.get("priority_reason") or ""),
        ])
    return TABLE_COLUMNS, rows
