"""Deny-all outbound and the "air-gap illusion": devices in egress-restricted zones reaching
destinations not allowed, and OT devices exchanging traffic with public (internet) addresses.
Input: flows, placed in zones; OT devices from roles, zones and industrial protocols."""
from __future__ import annotations

import ipaddress

from plantguard.checks._common import EvidenceLog, address_class, flow_detail, index, is_public, plural, rest_finding, top
from plantguard.checks.base import CheckMeta, Finding
from plantguard.checks.registry import NotRun, check

NOT_ALLOWLISTED = CheckMeta(
    id="egress.not-allowlisted", conversation=True,
    title="Outbound traffic to destinations not allowed",
    practice="deny-all-outbound",
    severity="medium",
    risk="Devices in a deny-all zone that reach other destinations show the outbound filter is "
         "missing or leaky; that path is how malware calls home and how data leaves the plant.",
    remediation="Enforce deny-by-default outbound filtering at the zone boundary and allow only "
                "the destinations listed in the site file (or add a destination that is needed).",
    controls={"iec62443-3-3": ("SR 5.1", "SR 5.2"),
              "nist-800-53r5": ("SC-7", "SC-7(5)", "AC-4"),
              "iso27001-2022": ("A.8.20", "A.8.22")},
    attack=("T0869", "T0885"),
    needs_site=True,
    action="Restrict outbound traffic from plant zones to the destinations they need",
    why="Devices in a deny-by-default zone reached destinations that were never allowed.",
    effort="low", owner="network team", themes=("perimeter", "segmentation"),
)

INTERNET = CheckMeta(
    id="egress.internet", conversation=True,
    title="OT devices exchange traffic with the internet",
    practice="air-gap",
    severity="high",
    risk="An OT device that talks to public addresses is not air-gapped: it can be reached from, "
         "or leak data to, the internet, often without anyone knowing the path exists.",
    remediation="Find and close the path (NAT rule, cellular modem, vendor cloud agent, dual-homed "
                "host); if remote access is needed, route it through a DMZ jump host with MFA and "
                "declare it under remote_access in the site file.",
    controls={"iec62443-3-3": ("SR 5.1", "SR 5.2", "SR 1.13"),
              "nist-800-53r5": ("SC-7", "SC-7(4)", "AC-17"),
              "iso27001-2022": ("A.8.20", "A.8.22")},
    attack=("T0883", "T0822", "T0869"),
    action="Cut direct internet access from plant devices",
    why="Plant devices talk to public internet addresses: the plant is not isolated as assumed.",
    effort="low", owner="network team", themes=("perimeter",),
)


@check(NOT_ALLOWLISTED)
def not_allowlisted(ctx) -> list[Finding]:
    idx = index(ctx)
    site = idx.site
    restricted = {e.zone: e for e in site.egress}
    if not restricted:
        raise NotRun("the site file declares no egress rules")
    bad: dict[tuple, dict] = {}
    allowed: dict[str, dict] = {z: {"flows": 0, "dests": set()} for z in restricted}
    for f in idx.flows:
        if address_class(f.server) == "other":
            continue
        zc = site.zone_of(f.client, f.vlan)
        if zc is None or zc.name not in restricted:
            continue
        verdict = site.egress_allows(zc.name, f.server)
        zs = site.zone_of(f.server)
        if zs is not None and zs.name == zc.name:
            continue                     # not outbound
        if verdict:
            allowed[zc.name]["flows"] += 1
            allowed[zc.name]["dests"].add(f.server)
            continue
        g = bad.setdefault((f.client, f.server), {"ev": EvidenceLog(), "zone": zc.name, "services": set(),
                                                  "dst_zone": zs.name if zs else None})
        g["services"].add(f"{f.l4}/{f.port}" + (f" ({f.app})" if f.app else ""))
        g["ev"].add_flow(f, flow_detail(f) + f" - not in zone {zc.name}'s egress allow list", f.packets)
    findings = []
    kept, rest = top(bad, lambda g: g["ev"].events)
    for (client, server), g in kept:
        where = "a public address" if is_public(server) else (f"zone {g['dst_zone']}" if g["dst_zone"] else "an unzoned address")
        findings.append(Finding.from_meta(
            NOT_ALLOWLISTED, "fail",
            f"{idx.label(client)} in deny-all zone {g['zone']} reaches {server} ({where}) on "
            f"{', '.join(sorted(g['services'])[:5])}, which its egress allow list does not permit",
            [client, server], g["ev"].items, severity="high" if is_public(server) else None,
            zone=g["zone"], destination=server, services=sorted(g["services"])[:50], events=g["ev"].events))
    if rest:
        findings.append(rest_finding(NOT_ALLOWLISTED, rest, lambda k, g: k, lambda g: g["ev"].events,
                                     "outbound pairs outside the allow lists"))
    bad_zones = {g["zone"] for g in bad.values()}
    for zone, st in sorted(allowed.items()):
        if zone in bad_zones:
            continue
        allow = ", ".join(str(n) for n in restricted[zone].allow) or "nothing"
        title = (f"All {plural(st['flows'], 'outbound flow')} from zone {zone} went to allowed destinations ({allow})"
                 if st["flows"] else f"No outbound traffic from deny-all zone {zone} was seen")
        findings.append(Finding.from_meta(NOT_ALLOWLISTED, "pass", title, [], zone=zone,
                                          outbound_flows=st["flows"], destinations=sorted(st["dests"])[:50]))
    return findings


def _declared_path(site, local: str, public: str):
    """The site's remote_access entry that covers this (inside host, outside peer), if any."""
    if site is None:
        return None
    try:
        l_addr, p_addr = ipaddress.ip_address(local), ipaddress.ip_address(public)
    except ValueError:
        return None
    for ra in getattr(site, "remote_access", ()):
        host = ipaddress.ip_network(ra.host, strict=False)
        if l_addr.version == host.version and l_addr in host and \
                any(p_addr.version == n.version and p_addr in n for n in ra.peers):
            return ra
    return None


@check(INTERNET)
def internet(ctx) -> list[Finding]:
    idx = index(ctx)
    ot_hosts = {a.ip for a in idx.assets if a.ip and idx.is_ot(a.ip)}
    groups: dict[tuple, dict] = {}
    declared: dict[tuple, dict] = {}
    for f in idx.flows:
        c_pub, s_pub = is_public(f.client), is_public(f.server)
        if c_pub == s_pub:
            continue
        local, peer = (f.server, f.client) if c_pub else (f.client, f.server)
        if address_class(local) != "private" or not idx.is_ot(local):
            continue
        ot_hosts.add(local)
        direction = "inbound" if c_pub else "outbound"
        ra = _declared_path(idx.site, local, peer)
        target = declared if ra is not None else groups
        g = target.setdefault((local, direction), {"ev": EvidenceLog(), "peers": set(), "services": set(),
                                                   "path": ra})
        g["peers"].add(peer)
        g["services"].add(f"{f.l4}/{f.port}" + (f" ({f.app})" if f.app else ""))
        g["ev"].add_flow(f, flow_detail(f), f.packets)
    if not ot_hosts:
        raise NotRun("no OT device was identified (no industrial protocol, OT role or OT zone)")
    findings = []
    kept, rest = top(groups, lambda g: g["ev"].events)
    for (local, direction), g in kept:
        peers = sorted(g["peers"])
        services = ", ".join(sorted(g["services"])[:5])
        if direction == "inbound":
            title = (f"OT device {idx.label(local)} is reached from {plural(len(peers), 'public address', 'public addresses')} "
                     f"({', '.join(peers[:3])}) on {services}")
        else:
            title = (f"OT device {idx.label(local)} talks to {plural(len(peers), 'public address', 'public addresses')} "
                     f"({', '.join(peers[:3])}) on {services}")
        findings.append(Finding.from_meta(
            INTERNET, "fail", title, [local] + peers[:20], g["ev"].items,
            severity="critical" if direction == "inbound" else None, direction=direction,
            public_peers=peers[:50], services=sorted(g["services"])[:50], events=g["ev"].events))
    if rest:
        findings.append(rest_finding(INTERNET, rest, lambda k, g: [k[0]], lambda g: g["ev"].events,
                                     "OT devices talking to public addresses"))
    for (local, direction), g in top(declared, lambda g: g["ev"].events)[0]:
        ra = g["path"]
        mfa = {True: "with MFA", False: "without MFA", None: "MFA not stated"}[ra.mfa]
        findings.append(Finding.from_meta(
            INTERNET, "pass" if ra.mfa else "fail",
            f"OT device {idx.label(local)} exchanges traffic with {', '.join(sorted(g['peers'])[:3])} over the "
            f"declared remote-access path '{ra.name}' ({mfa})", [local], g["ev"].items,
            severity="medium" if not ra.mfa else None, remote_access=ra.name, direction=direction,
            public_peers=sorted(g["peers"])[:50], events=g["ev"].events))
    if not groups:
        quiet = sorted(ot_hosts - {k[0] for k in declared})
        findings.append(Finding.from_meta(
            INTERNET, "pass", f"None of the {plural(len(ot_hosts), 'OT device')} exchanged traffic with a public "
                              "address" + (" outside declared remote-access paths" if declared else ""),
            quiet[:50], ot_devices=len(ot_hosts)))
    return findings
