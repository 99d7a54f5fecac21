"""Zero trust: a control protocol without authentication (Modbus, S7comm, EtherNet/IP-CIP, DNP3
without Secure Authentication, BACnet, IEC 104, OPC UA with SecurityMode None or anonymous
users) that crosses a zone boundary. Input: flows placed in zones, DNP3 `operation`
observations of category auth and OPC UA `session` observations."""
from __future__ import annotations

from plantguard.checks._common import EvidenceLog, UNAUTHENTICATED_CONTROL, flow_detail, index, plural, rest_finding, top
from plantguard.checks.base import CheckMeta, Finding
from plantguard.checks.registry import NotRun, check

UNAUTH_CONTROL = CheckMeta(
    id="zerotrust.unauthenticated-control", conversation=True,
    title="Unauthenticated control protocol crosses a zone boundary",
    practice="zero-trust",
    severity="high",
    risk="The receiving controller cannot tell a legitimate master from any other host that can "
         "reach it; once the traffic leaves its zone, every network between them becomes part "
         "of the trust boundary.",
    remediation="Keep unauthenticated control traffic inside its zone (put the master beside the "
                "controller or relay through a DMZ gateway), or use the protocol's secure variant: "
                "DNP3 Secure Authentication v5, OPC UA SignAndEncrypt with user authentication, "
                "CIP Security, Modbus/TCP Security (TLS), IEC 62351 for IEC 104.",
    controls={"iec62443-3-3": ("SR 1.2", "SR 3.1", "SR 5.2"),
              "nist-800-53r5": ("IA-3", "IA-9", "SC-8", "SC-23", "AC-4"),
              "iso27001-2022": ("A.8.5", "A.8.20", "A.8.22")},
    attack=("T0855", "T0830", "T0848"),
    needs_site=True,
    action="Authenticate control traffic that crosses zone boundaries",
    why="Control commands without any authentication cross between zones; any host on the path can send them.",
    effort="high", owner="OT architect / integrator", themes=("access-control", "segmentation"),
)


def _auth_state(idx) -> tuple[set, dict]:
    """(client/server pairs with DNP3 authentication seen, OPC UA pair -> (mode, auth) verdicts)."""
    dnp3_auth = set()
    for o in idx.obs("operation"):
        if o.proto == "dnp3" and o.data.get("category") == "auth":
            dnp3_auth.add((o.src, o.dst))
            dnp3_auth.add((o.dst, o.src))
    for f in idx.flows:
        if f.app == "dnp3" and f.operations.get("auth"):
            dnp3_auth.add((f.client, f.server))
    opcua: dict[tuple, dict] = {}
    for o in idx.obs("session"):
        if o.proto != "opcua":
            continue
        client, server = (o.src, o.dst) if o.subject == "dst" else (o.dst, o.src)
        st = opcua.setdefault((client, server), {"modes": set(), "auths": set()})
        if o.data.get("security_mode"):
            st["modes"].add(str(o.data["security_mode"]))
        if o.data.get("auth"):
            st["auths"].add(str(o.data["auth"]).lower())
    return dnp3_auth, opcua


def _unauthenticated(app: str, client: str, server: str, dnp3_auth: set, opcua: dict) -> str | None:
    """Why this control conversation is unauthenticated, or None when it is authenticated
    (or cannot be judged)."""
    if app == "dnp3":
        return None if (client, server) in dnp3_auth else "DNP3 without Secure Authentication"
    if app == "opcua":
        st = opcua.get((client, server))
        if st is None:
            return None
        if any(m.lower() == "none" for m in st["modes"]):
            return "OPC UA with SecurityMode None"
        if "anonymous" in st["auths"]:
            return "OPC UA with anonymous users"
        return None
    return f"{app} has no authentication"


@check(UNAUTH_CONTROL)
def unauthenticated_control(ctx) -> list[Finding]:
    idx = index(ctx)
    site = idx.site
    dnp3_auth, opcua = _auth_state(idx)
    bad: dict[tuple, dict] = {}
    good: dict[tuple, EvidenceLog] = {}
    inside = crossing = unjudged = 0
    for f in idx.flows:
        app = (f.app or "").lower()
        if app not in UNAUTHENTICATED_CONTROL:
            continue
        zc, zs = site.zone_of(f.client, f.vlan), site.zone_of(f.server, f.vlan)
        if zc is None and zs is None:
            unjudged += 1              # neither end is in a zone: no boundary to judge
            continue
        if zc is not None and zs is not None and zc.name == zs.name:
            inside += 1
            continue
        crossing += 1
        why = _unauthenticated(app, f.client, f.server, dnp3_auth, opcua)
        zc_name = zc.name if zc else "(no zone)"
        zs_name = zs.name if zs else "(no zone)"
        if why is None:
            if app == "opcua" and (f.client, f.server) not in opcua:
                unjudged += 1
                continue
            good.setdefault((zc_name, zs_name, app), EvidenceLog()).add_flow(f, flow_detail(f) + " - authenticated", f.packets)
            continue
        allowed = zc is not None and zs is not None and site.conduit_allows(zc, zs, f.l4, f.port, f.app)
        g = bad.setdefault((f.client, f.server, app), {"ev": EvidenceLog(), "why": why, "zones": (zc_name, zs_name),
                                                       "allowed": True})
        g["allowed"] &= allowed
        g["ev"].add_flow(f, flow_detail(f) + f" - {zc_name} -> {zs_name}", f.packets)
    if not (inside or crossing):
        raise NotRun("no industrial control protocol traffic was seen in the captures" if not unjudged else
                     f"the {unjudged} industrial control flows seen have neither end in a declared zone")
    findings = []
    kept, rest = top(bad, lambda g: g["ev"].events)
    if rest:
        findings.append(rest_finding(UNAUTH_CONTROL, rest, lambda k, g: k[:2], lambda g: g["ev"].events,
                                     "unauthenticated control pairs crossing zones"))
    for (client, server, app), g in kept:
        zc_name, zs_name = g["zones"]
        title = (f"{g['why'][0].upper() + g['why'][1:]}: {idx.label(client)} (zone {zc_name}) controls "
                 f"{idx.label(server)} (zone {zs_name}) across the zone boundary"
                 + ("" if g["allowed"] else ", outside any conduit"))
        findings.append(Finding.from_meta(
            UNAUTH_CONTROL, "fail", title, [server, client], g["ev"].items,
            severity="high" if not g["allowed"] else "medium", protocol=app, reason=g["why"],
            src_zone=zc_name, dst_zone=zs_name, allowed_by_conduit=g["allowed"], events=g["ev"].events))
    for (zc_name, zs_name, app), ev in top(good, lambda ev: ev.events)[0]:
        findings.append(Finding.from_meta(
            UNAUTH_CONTROL, "pass", f"{app} traffic from zone {zc_name} to zone {zs_name} is authenticated",
            [], ev.items, protocol=app, events=ev.events))
    if not bad:
        findings.append(Finding.from_meta(
            UNAUTH_CONTROL, "pass",
            f"No unauthenticated control protocol crosses a zone boundary ({plural(inside, 'control flow')} "
            f"stay inside their zones)", [], inside_flows=inside, crossing_flows=crossing,
            unjudged_flows=unjudged))
    return findings
