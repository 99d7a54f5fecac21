"""Patch management: devices whose product and firmware match loaded advisories (CSAF, NVD),
and those among them with a CVE in CISA KEV. Each finding says which advisory, why it matched
(order number, catalogue number, name or family; firmware in range or unknown), how sure the
match is, and the OT priority (now / next / later) with its reason."""
from __future__ import annotations

from plantguard.checks.base import CheckMeta, Evidence, Finding
from plantguard.checks.registry import NotRun, check
from plantguard.knowledge.assess_intel import NO_INTEL_REASON, intel_state
from plantguard.knowledge.priority import criticality_of, prioritise

_CONTROLS = {"iec62443-3-3": ("SR 3.4", "SR 7.6"), "nist-800-53r5": ("RA-5", "SI-2", "SI-5", "CM-8"),
             "iso27001-2022": ("A.8.8", "A.5.7")}

KNOWN_EXPLOITED = CheckMeta(
    id="vuln.known-exploited", title="Firmware with a vulnerability known to be exploited",
    needs_store=True,
    practice="patch-management", severity="critical",
    risk="The device runs a product and firmware with a CVE listed in CISA's Known Exploited "
         "Vulnerabilities catalogue: attackers use it in the wild, so exposure turns into compromise fast.",
    remediation="Update to the fixed firmware in the next maintenance window (see the patch plan); until "
                "then restrict who can reach the device to the stations that need it and watch it closely.",
    controls=_CONTROLS, attack=("T0866", "T0819"),
    action="Patch or shield devices with vulnerabilities that are being exploited",
    why="These devices run firmware with vulnerabilities attackers are known to use (see the patch plan).",
    effort="medium", owner="OT engineer with the vendor", themes=("vulnerability",))

ADVISORY = CheckMeta(
    id="vuln.advisory", title="Firmware named in a vendor or CISA security advisory",
    needs_store=True,
    practice="patch-management", severity="high",
    risk="A published advisory names this product and firmware: its vulnerabilities and often working "
         "exploits are public.",
    remediation="Plan the advisory's fixed version into a maintenance window (see the patch plan); where no "
                "fix exists apply the advisory's mitigations and verify segmentation.",
    controls=_CONTROLS, attack=("T0866",),
    action="Plan fixes for devices named in vendor security advisories",
    why="Vendors published security advisories for this hardware and firmware (see the patch plan).",
    effort="medium", owner="OT engineer with the vendor", themes=("vulnerability",))


def _state(ctx):
    if ctx.db is None:
        raise NotRun(NO_INTEL_REASON)
    st = intel_state(ctx)
    if st is None:
        raise NotRun(NO_INTEL_REASON)
    return st


def _identified(ctx) -> list:
    out = []
    for a in ctx.assets or ():
        ident = dict(a.identity or {})
        declared = a.declared or {}
        if any(ident.get(k) or declared.get(k) for k in ("product", "model", "order_number")):
            out.append(a)
    return out


def _evidence(ctx, asset) -> list[Evidence]:
    ips = ({asset.ip} if asset.ip else set()) | set(asset.ips or ())
    ev = []
    for o in getattr(ctx.result, "observations", None) or ():
        if o.kind == "identity" and o.subject_ip in ips:
            d = o.data
            shown = ", ".join(f"{k}={d[k]}" for k in ("vendor", "product", "order_number", "firmware", "product_code")
                              if d.get(k) not in (None, ""))
            ev.append(Evidence.of(o, f"{o.proto} identity: {shown}"))
            if len(ev) >= 3:
                break
    if not ev and asset.declared:
        ev.append(Evidence(None, None, None, f"declared in the site file: {asset.declared.get('product')} "
                                             f"firmware {asset.declared.get('firmware')}"))
    return ev


def _label(asset) -> str:
    ident = asset.identity or {}
    prod = ident.get("product") or ident.get("model") or (asset.declared or {}).get("product") or "device"
    return f"{prod} at {asset.key}"


def _finding(meta, ctx, st, asset, am, kev_cves) -> Finding:
    exposure = st.exposure.of_asset(asset)
    crit, crit_src = criticality_of(asset)
    epss = max((c.epss for c in am.cves if c.epss is not None), default=None)
    prio = prioritise(am.max_cvss, kev_cves, exposure, crit, am.confidence, epss, crit_src)
    sev = "critical" if kev_cves else am.severity
    if am.confidence == "low" and sev in ("critical", "high") and not kev_cves:
        sev = "medium"    # family-only, firmware unknown: a lead to confirm, not a verdict
    cves = [c.cve for c in am.cves if c.cve]
    title = (f"{_label(asset)} matches {am.advisory_id}"
             + (f" with {', '.join(kev_cves[:3])} in CISA KEV" if kev_cves else
                f" ({len(cves)} CVE{'s' if len(cves) != 1 else ''}, max CVSS {am.max_cvss})" if am.max_cvss
                else ""))
    ident = asset.identity or {}
    detail = am.as_dict()
    detail.update({
        "asset": asset.key, "role": asset.role, "zone": asset.zone,
        "identity": {k: ident.get(k) for k in ("vendor", "product", "order_number", "firmware", "product_code")
                     if ident.get(k) not in (None, "")},
        "priority": prio.level, "priority_score": round(prio.score, 2), "priority_reason": prio.reason,
        "exposure": exposure.as_dict(), "criticality": crit, "criticality_source": crit_src,
    })
    f = Finding.from_meta(meta, "fail", title, [asset.key], _evidence(ctx, asset), severity=sev)
    f.extra = detail
    return f


@check(KNOWN_EXPLOITED)
def known_exploited(ctx) -> list[Finding]:
    st = _state(ctx)
    if not st.index.kev:
        raise NotRun("the CISA KEV catalogue is not loaded (plantguard intel import known_exploited_vulnerabilities.json)")
    out = []
    for asset in _identified(ctx):
        hits = [am for am in st.matches(asset) if am.known_exploited]
        for am in hits:
            out.append(_finding(KNOWN_EXPLOITED, ctx, st, asset, am, [c.cve for c in am.known_exploited]))
        if not hits:
            out.append(Finding.from_meta(KNOWN_EXPLOITED, "pass",
                                         f"{_label(asset)}: no CVE in CISA KEV for its product and firmware",
                                         [asset.key], _evidence(ctx, asset)))
    return out


@check(ADVISORY)
def advisory(ctx) -> list[Finding]:
    st = _state(ctx)
    out = []
    for asset in _identified(ctx):
        # an advisory with a KEV CVE is reported once, as vuln.known-exploited (when KEV is loaded)
        hits = [am for am in st.matches(asset) if not (am.known_exploited and st.index.kev)]
        for am in hits:
            out.append(_finding(ADVISORY, ctx, st, asset, am, []))
        if not st.matches(asset):
            out.append(Finding.from_meta(ADVISORY, "pass",
                                         f"{_label(asset)}: no loaded advisory names its product and firmware",
                                         [asset.key], _evidence(ctx, asset)))
    return out
