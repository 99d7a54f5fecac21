"""Segmentation practice: traffic between zones that no conduit allows, IT/guest hosts talking
straight to OT zones, sensing and control devices sharing VLANs, and hosts outside every zone.
Input: flows (who talks to whom, on which VLAN) placed in the site's zones."""
from __future__ import annotations

import ipaddress
from collections import defaultdict

from plantguard.checks._common import (EvidenceLog, address_class, flow_detail, index, plural, rest_finding, top)
from plantguard.checks.base import CheckMeta, Finding
from plantguard.checks.registry import NotRun, check
from plantguard.inventory.asset import CONTROLLER_ROLES

SEG_CONTROLS = {"iec62443-3-3": ("SR 5.1", "SR 5.2"),
                "nist-800-53r5": ("SC-7", "SC-7(5)", "AC-4"),
                "iso27001-2022": ("A.8.20", "A.8.22")}

ZONE_VIOLATION = CheckMeta(
    id="segmentation.zone-violation", conversation=True,
    title="Traffic between zones that no conduit allows",
    practice="segmentation",
    severity="high",
    risk="Traffic that crosses a zone boundary outside the declared conduits shows the boundary "
         "does not filter: an intruder in one zone can reach the devices of the other.",
    remediation="Block the flow at the zone boundary (firewall or router ACL), or, if the "
                "conversation is needed, declare it as a conduit with the narrowest allow list.",
    controls=SEG_CONTROLS,
    attack=("T0886", "T0866"),
    needs_site=True,
    action="Block traffic between zones that no conduit allows",
    why="Traffic crossed zone boundaries the site did not allow, so one infected zone can reach the next.",
    effort="medium", owner="network team", themes=("perimeter", "segmentation"),
)

IT_OT_BRIDGE = CheckMeta(
    id="segmentation.it-ot-bridge", conversation=True,
    title="IT or guest hosts talk directly to OT zones",
    practice="segmentation",
    severity="high",
    risk="A direct path from office or guest networks to control or sensing devices lets malware "
         "and intruders from the IT side reach the process without passing a DMZ.",
    remediation="Route IT-to-OT exchanges through a DMZ (historian replica, jump host, broker) and "
                "block direct IT/guest-to-OT traffic; remove second network interfaces that "
                "join IT and OT on one host.",
    controls={"iec62443-3-3": ("SR 5.1", "SR 5.2", "SR 5.3"),
              "nist-800-53r5": ("SC-7", "SC-7(21)", "AC-4"),
              "iso27001-2022": ("A.8.20", "A.8.22")},
    attack=("T0886", "T0866", "T0883"),
    needs_site=True,
    action="Separate office and guest networks from the machines",
    why="Office or guest computers talk straight to control or sensing devices; malware on a laptop can "
        "reach the production line.",
    effort="medium", owner="network team", themes=("perimeter", "segmentation"),
)

VLAN_MIXING = CheckMeta(
    id="segmentation.vlan-mixing",
    title="Sensing and control devices share VLANs",
    practice="vlan-separation",
    severity="medium",
    risk="When sensors and controllers share a VLAN, a compromised sensor or IoT gateway sits on "
         "the same broadcast domain as the controllers it could attack.",
    remediation="Put sensing devices and controllers on separate VLANs with filtering between "
                "them, and keep each zone's hosts on the VLANs the site file declares.",
    controls={"iec62443-3-3": ("SR 5.1",),
              "nist-800-53r5": ("SC-7", "SC-7(29)", "AC-4(21)"),
              "iso27001-2022": ("A.8.22",)},
    attack=("T0886",),
    action="Put sensing and control devices on their own VLANs",
    why="Devices of different zones share a VLAN, so the zone plan is not enforced on the wire.",
    effort="medium", owner="network team", themes=("segmentation",),
)

UNZONED = CheckMeta(
    id="segmentation.unzoned-host",
    title="Hosts outside every declared zone",
    practice="segmentation",
    severity="low",
    risk="Addresses no zone covers are either undocumented networks or devices in the wrong "
         "place; the segmentation checks cannot judge their traffic.",
    remediation="Add the network to the right zone in the site file, or move the device.",
    controls={"iec62443-3-3": ("SR 5.1", "SR 7.8"),
              "nist-800-53r5": ("CM-8", "SC-7"),
              "iso27001-2022": ("A.5.9", "A.8.22")},
    needs_site=True,
    action="Place every network in a declared zone",
    why="Some addresses belong to no zone in the site file: undocumented networks or misplaced devices.",
    effort="low", owner="network team / OT engineer", themes=("segmentation", "visibility"),
)

SENSING_KINDS = frozenset({"ot-sensing"})
CONTROL_KINDS = frozenset({"ot-control", "ot-safety"})
SENSING_ROLES = frozenset({"sensor", "gateway"})


def _zones_of_flow(site, f):
    return site.zone_of(f.client, f.vlan), site.zone_of(f.server, f.vlan)


@check(ZONE_VIOLATION)
def zone_violation(ctx) -> list[Finding]:
    idx = index(ctx)
    site = idx.site
    bad: dict[tuple, dict] = {}
    ok: dict[tuple, dict] = {}
    crossing = 0
    inside = 0
    for f in idx.flows:
        if address_class(f.server) == "other":
            continue
        zc, zs = _zones_of_flow(site, f)
        if zc is None or zs is None:
            continue
        if zc.name == zs.name:
            inside += 1
            continue
        crossing += 1
        if site.conduit_allows(zc, zs, f.l4, f.port, f.app):
            g = ok.setdefault((zc.name, zs.name), {"ev": EvidenceLog(), "services": set()})
            g["services"].add(f"{f.l4}/{f.port}" + (f" ({f.app})" if f.app else ""))
            g["ev"].add_flow(f, flow_detail(f) + " - allowed by conduit", f.packets)
            continue
        g = bad.setdefault((f.client, f.server), {"ev": EvidenceLog(), "services": set(),
                                                  "zones": (zc, zs), "packets": 0})
        g["services"].add(f"{f.l4}/{f.port}" + (f" ({f.app})" if f.app else ""))
        g["packets"] += f.packets
        g["ev"].add_flow(f, flow_detail(f) + f" - no conduit {zc.name} -> {zs.name} allows it", f.packets)
    if crossing == 0 and inside == 0:
        raise NotRun("no flow had both ends in declared zones")
    findings = []
    kept, rest = top(bad, lambda g: g["ev"].events)
    if rest:
        findings.append(rest_finding(ZONE_VIOLATION, rest, lambda k, g: k, lambda g: g["ev"].events,
                                     "host pairs crossing zones without a conduit"))
    for (client, server), g in kept:
        zc, zs = g["zones"]
        services = sorted(g["services"])
        sev = "high" if (zc.is_ot or zs.is_ot) else "medium"
        title = (f"{idx.label(client)} in zone {zc.name} reaches {idx.label(server)} in zone {zs.name} "
                 f"on {', '.join(services[:5])}{' ...' if len(services) > 5 else ''}, which no conduit allows")
        findings.append(Finding.from_meta(
            ZONE_VIOLATION, "fail", title, [client, server], g["ev"].items, severity=sev,
            src_zone=zc.name, dst_zone=zs.name, services=services[:50], packets=g["packets"],
            events=g["ev"].events))
    for (zc, zs), g in top(ok, lambda g: g["ev"].events)[0]:
        findings.append(Finding.from_meta(
            ZONE_VIOLATION, "pass",
            f"Traffic {zc} -> {zs} stays within its conduit ({', '.join(sorted(g['services'])[:5])})",
            [], g["ev"].items, src_zone=zc, dst_zone=zs, services=sorted(g["services"])[:50],
            packets=g["ev"].events))
    if not bad:
        findings.append(Finding.from_meta(
            ZONE_VIOLATION, "pass",
            f"All {plural(crossing, 'flow')} between zones are allowed by conduits "
            f"({plural(inside, 'flow')} stayed inside their zones)", [],
            crossing_flows=crossing, inside_flows=inside))
    return findings


def _is_bridge_pair(za, zb) -> bool:
    return (za.is_it and zb.kind in CONTROL_KINDS | SENSING_KINDS) or \
           (zb.is_it and za.kind in CONTROL_KINDS | SENSING_KINDS)


@check(IT_OT_BRIDGE)
def it_ot_bridge(ctx) -> list[Finding]:
    idx = index(ctx)
    site = idx.site
    pairs: dict[tuple, dict] = {}
    crossing = 0
    for f in idx.flows:
        zc, zs = _zones_of_flow(site, f)
        if zc is None or zs is None or zc.name == zs.name:
            continue
        crossing += 1
        if not _is_bridge_pair(zc, zs):
            continue
        it_host, ot_host = (f.client, f.server) if zc.is_it else (f.server, f.client)
        it_zone, ot_zone = (zc, zs) if zc.is_it else (zs, zc)
        g = pairs.setdefault((it_host, ot_host), {"ev": EvidenceLog(), "zones": (it_zone, ot_zone),
                                                  "services": set(), "allowed": True, "initiator": set()})
        g["services"].add(f"{f.l4}/{f.port}" + (f" ({f.app})" if f.app else ""))
        g["initiator"].add("it" if zc.is_it else "ot")
        g["allowed"] &= site.conduit_allows(zc, zs, f.l4, f.port, f.app)
        g["ev"].add_flow(f, flow_detail(f), f.packets)
    findings = []
    kept, rest = top(pairs, lambda g: g["ev"].events)
    if rest:
        findings.append(rest_finding(IT_OT_BRIDGE, rest, lambda k, g: k, lambda g: g["ev"].events,
                                     "IT/OT host pairs talking directly"))
    for (it_host, ot_host), g in kept:
        it_zone, ot_zone = g["zones"]
        how = "reaches" if "it" in g["initiator"] else "is reached from"
        title = (f"{it_zone.kind.upper() if it_zone.kind == 'it' else 'Guest'} host {idx.label(it_host)} "
                 f"(zone {it_zone.name}) talks directly with {idx.label(ot_host)} in {ot_zone.kind} zone "
                 f"{ot_zone.name} ({', '.join(sorted(g['services'])[:5])})")
        if g["allowed"]:
            title += "; a conduit allows it, but the path bypasses the DMZ"
        sev = "critical" if it_zone.kind == "guest" else "high"
        findings.append(Finding.from_meta(
            IT_OT_BRIDGE, "fail", title, [it_host, ot_host], g["ev"].items, severity=sev,
            it_zone=it_zone.name, ot_zone=ot_zone.name, services=sorted(g["services"])[:50],
            allowed_by_conduit=g["allowed"], direction=how, events=g["ev"].events))
    # one host with addresses in both an IT and an OT zone joins the two networks itself
    for a in idx.assets:
        ips = sorted(set(a.ips or ()) | ({a.ip} if a.ip else set()))
        if len(ips) < 2:
            continue
        zones = {ip: site.zone_of(ip) for ip in ips}
        it = [ip for ip, z in zones.items() if z is not None and z.is_it]
        ot = [ip for ip, z in zones.items() if z is not None and z.kind in CONTROL_KINDS | SENSING_KINDS]
        if it and ot:
            findings.append(Finding.from_meta(
                IT_OT_BRIDGE, "fail",
                f"Host {a.mac or a.key} is dual-homed: {', '.join(it)} in zone {zones[it[0]].name} and "
                f"{', '.join(ot)} in zone {zones[ot[0]].name}", ips, [], severity="high",
                dual_homed=True, it_addresses=it, ot_addresses=ot))
    if not findings:
        findings.append(Finding.from_meta(
            IT_OT_BRIDGE, "pass",
            f"No direct traffic between IT/guest zones and OT control, sensing or safety zones "
            f"({plural(crossing, 'flow')} crossed zones)", [], crossing_flows=crossing))
    return findings


def _hosts_by_vlan(idx) -> dict[int, dict[str, object]]:
    """VLAN -> {host ip: the first flow that showed it there, else the ARP/DHCP frame it sent}.

    The inventory decides which VLANs a device is on: only frames that carry the device's own
    MAC count, because a routed leg carries the router's MAC (inventory.build). A flow end
    counts when its device lists that VLAN and the frame carried one of the device's MACs;
    routers are on every VLAN they route and are left out. An address the inventory does not
    know (checks run on bare flows) falls back to the frames alone: a MAC that fronts a single
    address is that host's own."""
    out: dict[int, dict[str, object]] = defaultdict(dict)
    unknown: list[tuple] = []
    for f in idx.flows:
        if f.vlan is None:
            continue
        for ip, mac in ((f.client, f.client_mac), (f.server, f.server_mac)):
            if address_class(ip) != "private" or ip in out[f.vlan]:
                continue
            a = idx.asset(ip)
            if a is None:
                unknown.append((f, ip, mac))
            elif not getattr(a, "is_router", False) and f.vlan in (a.vlans or ()) and _own_mac(a, mac):
                out[f.vlan][ip] = f
    arp = {}
    for o in idx.obs("address"):
        if o.vlan is not None and o.subject_mac == o.data.get("mac"):
            arp.setdefault((o.data.get("ip"), o.vlan), o)
    for a in idx.assets:       # on a VLAN by its own ARP (or other) frames alone
        if getattr(a, "is_router", False) or not a.ip or address_class(a.ip) != "private":
            continue
        for v in a.vlans or ():
            if a.ip not in out[v] and (a.ip, v) in arp:
                out[v][a.ip] = arp[(a.ip, v)]
    _hosts_from_frames(unknown, out)
    return {v: m for v, m in out.items() if m}


def _own_mac(a, mac) -> bool:
    macs = set(a.macs or ()) | ({a.mac} if a.mac else set())
    return mac in macs if macs else not mac


def _hosts_from_frames(ends: list[tuple], out: dict) -> None:
    mac_ips: dict[str, set] = defaultdict(set)
    for f, ip, mac in ends:
        if mac and len(mac_ips[mac]) < 2:
            mac_ips[mac].add(ip)
    for f, ip, mac in ends:
        if ip not in out[f.vlan] and (mac is None or len(mac_ips.get(mac, ())) <= 1):
            out[f.vlan][ip] = f


def _add_evidence(ev: EvidenceLog, seen, detail: str) -> None:
    """Evidence that a host is on a VLAN: a flow, or an ARP/DHCP frame it sent."""
    if hasattr(seen, "kind"):
        ev.add_obs(seen, detail + f"{seen.proto} from its own MAC {seen.data.get('mac')}")
    else:
        ev.add_flow(seen, detail + flow_detail(seen))


@check(VLAN_MIXING)
def vlan_mixing(ctx) -> list[Finding]:
    idx = index(ctx)
    site = idx.site
    findings = []
    hosts = _hosts_by_vlan(idx)
    if site is not None:
        findings += _declared_mixing(site)
        findings += _observed_mixing_by_zone(idx, site, hosts)
    elif hosts:
        findings += _observed_mixing_by_role(idx, hosts)
    if not hosts and not findings:
        if any(f.vlan is not None for f in idx.flows):
            raise NotRun("802.1Q VLAN tags were seen, but no host was seen on a VLAN with its own MAC "
                         "address (only routed legs, which carry the router's MAC; see the inventory notes)")
        raise NotRun("no 802.1Q VLAN tags in the captures" + ("" if site is not None else
                     " and no site file declaring VLANs"))
    return findings


def _declared_mixing(site) -> list[Finding]:
    out = []
    for v in sorted({v for z in site.zones for v in z.vlans}):
        zs = [z for z in site.zones if v in z.vlans]
        sensing = [z.name for z in zs if z.kind in SENSING_KINDS]
        control = [z.name for z in zs if z.kind in CONTROL_KINDS]
        if sensing and control:
            out.append(Finding.from_meta(
                VLAN_MIXING, "fail", f"The site file puts sensing zone {', '.join(sensing)} and control "
                                     f"zone {', '.join(control)} on the same VLAN {v}", [], [],
                vlan=v, sensing_zones=sensing, control_zones=control, source="site file"))
    return out


def _observed_mixing_by_zone(idx, site, hosts) -> list[Finding]:
    out = []
    clean_zones: dict[str, int] = {}
    strays: dict[tuple, dict] = {}
    for v, members in sorted(hosts.items()):
        by_kind: dict[str, dict] = {"sensing": {}, "control": {}}
        for ip, f in members.items():
            z = site.zone_of(ip)           # by address only: the VLAN is what we are testing
            if z is None:
                continue
            if z.kind in SENSING_KINDS:
                by_kind["sensing"][ip] = (z, f)
            elif z.kind in CONTROL_KINDS:
                by_kind["control"][ip] = (z, f)
            if z.vlans and v not in z.vlans:
                g = strays.setdefault((z.name, v), {"ev": EvidenceLog(), "hosts": [], "zone": z})
                g["hosts"].append(ip)
                _add_evidence(g["ev"], f, f"{ip} (zone {z.name}, VLANs {', '.join(map(str, z.vlans))}) "
                                          f"seen on VLAN {v}: ")
            elif z.vlans:
                clean_zones[z.name] = clean_zones.get(z.name, 0) + 1
        if by_kind["sensing"] and by_kind["control"]:
            ev = EvidenceLog()
            for ip, (z, f) in list(by_kind["sensing"].items())[:5] + list(by_kind["control"].items())[:5]:
                _add_evidence(ev, f, f"{ip} (zone {z.name}) on VLAN {v}: ")
            s_ips, c_ips = sorted(by_kind["sensing"]), sorted(by_kind["control"])
            out.append(Finding.from_meta(
                VLAN_MIXING, "fail",
                f"VLAN {v} carries both sensing devices ({', '.join(s_ips[:3])}{' ...' if len(s_ips) > 3 else ''}) "
                f"and control devices ({', '.join(c_ips[:3])}{' ...' if len(c_ips) > 3 else ''})",
                (s_ips + c_ips)[:50], ev.items, vlan=v, sensing_hosts=s_ips[:50], control_hosts=c_ips[:50]))
    for (zname, v), g in top(strays, lambda g: g["ev"].events)[0]:
        z = g["zone"]
        out.append(Finding.from_meta(
            VLAN_MIXING, "fail",
            f"Zone {zname} spans unexpected VLAN {v}: {plural(len(g['hosts']), 'host')} "
            f"({', '.join(sorted(g['hosts'])[:3])}) outside its VLANs {', '.join(map(str, z.vlans))}",
            sorted(g["hosts"])[:50], g["ev"].items, severity="low", zone=zname, vlan=v,
            declared_vlans=list(z.vlans)))
    stray_zones = {zn for zn, _ in strays}
    for zname, n in sorted(clean_zones.items()):
        if zname not in stray_zones:
            z = site.zone(zname)
            out.append(Finding.from_meta(
                VLAN_MIXING, "pass", f"The {plural(n, 'host')} seen of zone {zname} stay on its VLANs "
                                     f"({', '.join(map(str, z.vlans))})", [], zone=zname, hosts=n))
    if hosts and not any(f.status == "fail" for f in out):
        out.append(Finding.from_meta(
            VLAN_MIXING, "pass", f"No VLAN of the {plural(len(hosts), 'VLAN')} seen mixes sensing and "
                                 "control devices", [], vlans=sorted(hosts)))
    return out


def _observed_mixing_by_role(idx, hosts) -> list[Finding]:
    """Without a site file: sensors/gateways and controllers (by inferred role) on one VLAN."""
    out = []
    for v, members in sorted(hosts.items()):
        sensing = {ip: f for ip, f in members.items() if idx.role(ip) in SENSING_ROLES}
        control = {ip: f for ip, f in members.items() if idx.role(ip) in CONTROLLER_ROLES}
        if sensing and control:
            ev = EvidenceLog()
            for ip, f in list(sensing.items())[:5] + list(control.items())[:5]:
                _add_evidence(ev, f, f"{idx.label(ip)} on VLAN {v}: ")
            out.append(Finding.from_meta(
                VLAN_MIXING, "fail",
                f"VLAN {v} carries both sensing devices ({', '.join(sorted(sensing)[:3])}) and "
                f"controllers ({', '.join(sorted(control)[:3])}) (roles inferred; no site file)",
                sorted(sensing)[:25] + sorted(control)[:25], ev.items, vlan=v,
                sensing_hosts=sorted(sensing)[:50], control_hosts=sorted(control)[:50]))
    if not out:
        out.append(Finding.from_meta(
            VLAN_MIXING, "pass", f"None of the {plural(len(hosts), 'VLAN')} seen carries both sensors "
                                 "and controllers (roles inferred; no site file)", [], vlans=sorted(hosts)))
    return out


@check(UNZONED)
def unzoned_hosts(ctx) -> list[Finding]:
    idx = index(ctx)
    site = idx.site
    hosts: dict[str, object] = {}
    for f in idx.flows:
        for ip in (f.client, f.server):
            if ip not in hosts and address_class(ip) == "private":
                hosts[ip] = f
    for a in idx.assets:
        if a.ip and a.ip not in hosts and address_class(a.ip) == "private":
            hosts[a.ip] = None
    if not hosts:
        raise NotRun("no private addresses in the captures")
    by_net: dict[str, dict] = {}
    zoned = 0
    for ip, f in hosts.items():
        if site.zone_of(ip) is not None:
            zoned += 1
            continue
        addr = ipaddress.ip_address(ip)
        if addr.is_link_local or addr.is_loopback:
            continue
        net = str(ipaddress.ip_network(f"{ip}/{24 if addr.version == 4 else 64}", strict=False))
        g = by_net.setdefault(net, {"ev": EvidenceLog(), "hosts": []})
        g["hosts"].append(ip)
        if f is not None:
            g["ev"].add_flow(f, f"{ip} is in no zone: " + flow_detail(f))
    findings = [Finding.from_meta(
        UNZONED, "fail", f"{plural(len(g['hosts']), 'host')} in {net} belong to no declared zone "
                         f"({', '.join(sorted(g['hosts'], key=ipaddress.ip_address)[:5])}"
                         f"{' ...' if len(g['hosts']) > 5 else ''})",
        sorted(g["hosts"], key=ipaddress.ip_address)[:50], g["ev"].items, network=net, hosts=len(g["hosts"]))
        for net, g in top(by_net, lambda g: len(g["hosts"]))[0]]
    if not findings:
        findings.append(Finding.from_meta(
            UNZONED, "pass", f"All {plural(zoned, 'private address', 'private addresses')} seen are in declared zones",
            [], hosts=zoned))
    return findings
