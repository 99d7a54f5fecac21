"""Inventory practice: devices seen on the network but missing from the declared inventory, and
OT devices that speak an industrial protocol without revealing who made them and what they are.
Input: assets (with identity, role, services) and flows; the site's declared assets."""
from __future__ import annotations

from plantguard.checks._common import INDUSTRIAL_PROTOCOLS, EvidenceLog, address_class, flow_detail, index, plural
from plantguard.checks.base import CheckMeta, Finding
from plantguard.checks.registry import NotRun, check
from plantguard.inventory.asset import CONTROLLER_ROLES

INV_CONTROLS = {"iec62443-3-3": ("SR 7.8",),
                "nist-800-53r5": ("CM-8", "CM-8(3)", "PM-5"),
                "iso27001-2022": ("A.5.9",)}

UNKNOWN_ASSET = CheckMeta(
    id="inventory.unknown-asset",
    title="Devices missing from the declared inventory",
    practice="inventory",
    severity="medium",
    risk="A device nobody declared is a device nobody patches, backs up or watches: a forgotten "
         "spare, a contractor laptop, or an intruder's implant.",
    remediation="Identify the device and its owner; add it to the inventory (site file assets) "
                "with its role and criticality, or remove it from the network.",
    controls={**INV_CONTROLS, "iec62443-3-3": ("SR 7.8", "SR 1.2")},   # SR 1.2: only known devices connect
    attack=("T0864", "T0848"),
    needs_site=True,
    action="Add unknown devices to the inventory, or remove them",
    why="Devices were seen that nobody declared; you cannot protect what you do not know.",
    effort="low", owner="OT engineer / plant IT", themes=("visibility",),
)

UNIDENTIFIED = CheckMeta(
    id="inventory.unidentified",
    title="OT devices with unknown vendor or product",
    practice="inventory",
    severity="low",
    risk="Without vendor, product and firmware, the device cannot be matched to advisories or "
         "known-exploited vulnerabilities, so its patch status stays unknown.",
    remediation="Record vendor, product and firmware for the device in the site file assets, or "
                "let an identity exchange (e.g. a read of its identification object) be captured.",
    controls=INV_CONTROLS,
    action="Identify the make, model and firmware of unidentified controllers",
    why="Industrial devices could not be identified, so advisories cannot be matched to them.",
    effort="low", owner="OT engineer", themes=("visibility", "vulnerability"),
)


def _first_flows(idx) -> dict[str, object]:
    first: dict[str, object] = {}
    for f in idx.flows:
        for ip in (f.client, f.server):
            g = first.get(ip)
            if g is None or f.first < g.first:
                first[ip] = f
    return first


def _declared(site, a) -> dict | None:
    if getattr(a, "declared", None):
        return a.declared
    for ip in ([a.ip] if a.ip else []) + sorted(a.ips or ()):
        d = site.declared_asset(ip=ip)
        if d:
            return d
    for mac in ([a.mac] if a.mac else []) + sorted(a.macs or ()):
        d = site.declared_asset(mac=mac)
        if d:
            return d
    return None


@check(UNKNOWN_ASSET)
def unknown_asset(ctx) -> list[Finding]:
    idx = index(ctx)
    site = idx.site
    if not site.assets:
        raise NotRun("the site file declares no assets (assets: [...])")
    first = _first_flows(idx)
    findings = []
    seen_declared = []
    for a in idx.assets:
        if a.ip and address_class(a.ip) != "private":
            continue
        if a.ip is None and a.mac is None:
            continue
        d = _declared(site, a)
        if d:
            seen_declared.append(a.key)
            continue
        ev = EvidenceLog()
        f = first.get(a.ip) if a.ip else None
        if f is not None:
            ev.add_flow(f, f"first seen: {flow_detail(f)}")
        z = site.zone_of(a.ip) if a.ip else None
        ot = idx.is_ot(a.ip) or (z is not None and z.is_ot)
        where = f" in zone {z.name}" if z else ""
        vendor = a.vendor or (a.identity or {}).get("vendor")
        findings.append(Finding.from_meta(
            UNKNOWN_ASSET, "fail", f"{idx.label(a.ip, a.mac)}{where} is not in the declared inventory"
                                   + (f" (MAC vendor {vendor})" if vendor else ""),
            [a.key], ev.items, severity="high" if ot else None, zone=z.name if z else None,
            mac=a.mac, role=a.role, vendor=vendor))
    declared_ips = {d.get("ip") for d in site.assets if d.get("ip")}
    declared_macs = {d.get("mac") for d in site.assets if d.get("mac")}
    observed_ips = {ip for a in idx.assets for ip in ({a.ip} if a.ip else set()) | set(a.ips or ())}
    observed_macs = {m for a in idx.assets for m in ({a.mac} if a.mac else set()) | set(a.macs or ())}
    not_seen = [d.get("name") or d.get("ip") or d.get("mac") for d in site.assets
                if not ((d.get("ip") and d["ip"] in observed_ips) or (d.get("mac") and d["mac"] in observed_macs))]
    if seen_declared or not findings:
        findings.append(Finding.from_meta(
            UNKNOWN_ASSET, "pass",
            f"{plural(len(seen_declared), 'observed device')} matched the declared inventory "
            f"({len(declared_ips | declared_macs)} declared, {len(not_seen)} not seen in the captures)",
            seen_declared[:50], matched=len(seen_declared), declared_not_seen=not_seen[:50]))
    return findings


def _identity_of(a) -> dict:
    ident = dict(a.identity or {})
    for k, v in (getattr(a, "declared", None) or {}).items():
        if k in ("vendor", "product", "model", "firmware") and v:
            ident.setdefault(k, v)
    return ident


@check(UNIDENTIFIED)
def unidentified(ctx) -> list[Finding]:
    idx = index(ctx)
    served = idx.server_apps()
    candidates = []
    for a in idx.assets:
        if a.ip and address_class(a.ip) != "private":
            continue
        apps = set()
        for ip in ({a.ip} if a.ip else set()) | set(a.ips or ()):
            apps |= served.get(ip, set()) & INDUSTRIAL_PROTOCOLS
        protos = set(a.protocols or ()) & INDUSTRIAL_PROTOCOLS
        if apps or (a.role in CONTROLLER_ROLES and protos):
            candidates.append((a, apps or protos))
    if not candidates:
        raise NotRun("no device served an industrial protocol in the captures")
    first = _first_flows(idx)
    findings = []
    identified = []
    for a, protos in candidates:
        ident = _identity_of(a)
        product = ident.get("product") or ident.get("model")
        if product:
            identified.append({"asset": a.key, "vendor": ident.get("vendor") or a.vendor,
                               "product": product, "firmware": ident.get("firmware")})
            continue
        ev = EvidenceLog()
        f = first.get(a.ip) if a.ip else None
        if f is not None:
            ev.add_flow(f, flow_detail(f))
        vendor = ident.get("vendor") or a.vendor
        findings.append(Finding.from_meta(
            UNIDENTIFIED, "fail",
            f"{idx.label(a.ip, a.mac)} speaks {', '.join(sorted(protos))} but its product is unknown"
            + (f" (vendor from {'identity' if ident.get('vendor') else 'MAC address'}: {vendor})" if vendor else
               " and so is its vendor"),
            [a.key], ev.items, protocols=sorted(protos), vendor=vendor, role=a.role))
    if identified:
        findings.append(Finding.from_meta(
            UNIDENTIFIED, "pass",
            f"{plural(len(identified), 'OT device')} identified by vendor and product"
            + f" ({', '.join(str(i['product'])[:30] for i in identified[:3])}{' ...' if len(identified) > 3 else ''})",
            [i["asset"] for i in identified][:50], devices=identified[:50]))
    return findings
