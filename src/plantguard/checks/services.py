"""Unnecessary / insecure services: devices on the plant network that serve Telnet, FTP, TFTP,
plain HTTP, SNMPv1/v2c, VNC or the r-services. Input: `service` and SNMP `credential`
observations, and flows (the server side of each conversation)."""
from __future__ import annotations

from plantguard.checks._common import EvidenceLog, flow_detail, index, is_public, is_unicast, plural, rest_finding, top
from plantguard.checks.base import CheckMeta, Finding
from plantguard.checks.registry import NotRun, check

INSECURE = CheckMeta(
    id="services.insecure",
    title="Insecure or unnecessary services offered",
    practice="unnecessary-services",
    severity="high",
    risk="Clear-text management services expose passwords and let anyone on the network change "
         "the device; every service left on is one more way in.",
    remediation="Turn off the services the process does not need; replace the rest with their "
                "secure variants (SSH, SFTP/FTPS, HTTPS, SNMPv3 authPriv) or reach them only "
                "through a management network or jump host.",
    controls={"iec62443-3-3": ("SR 7.7", "SR 4.1", "SR 7.6"),
              "nist-800-53r5": ("CM-7", "CM-7(1)", "SC-8"),
              "iso27001-2022": ("A.8.9", "A.8.20", "A.8.21")},
    attack=("T0886", "T0842"),
    action="Switch off unused and insecure services (Telnet, FTP, plain HTTP, old SNMP)",
    why="Old management services offer easy ways in and are rarely needed in production.",
    effort="low", owner="OT engineer", themes=("hygiene", "perimeter"),
)

# application name -> (label, severity of a FAIL, what to use instead)
INSECURE_SERVICES = {
    "telnet": ("Telnet", "high", "SSH"),
    "ftp": ("FTP", "high", "SFTP or FTPS"),
    "tftp": ("TFTP", "high", "an authenticated, encrypted transfer"),
    "http": ("HTTP (no TLS)", "medium", "HTTPS"),
    "snmp": ("SNMPv1/v2c (or SNMPv3 without authentication)", "medium", "SNMPv3 with authPriv"),
    "vnc": ("VNC", "high", "a remote-access gateway with MFA, or VNC over SSH/TLS"),
    "rfb": ("VNC", "high", "a remote-access gateway with MFA, or VNC over SSH/TLS"),
    "rlogin": ("rlogin", "high", "SSH"),
    "rsh": ("rsh", "high", "SSH"),
    "rexec": ("rexec", "high", "SSH"),
}
# Used only when no protocol module claimed the flow and the server answered with data.
PORT_FALLBACK = {("tcp", 23): "telnet", ("tcp", 21): "ftp", ("udp", 69): "tftp",
                 ("tcp", 5900): "vnc", ("tcp", 513): "rlogin", ("tcp", 514): "rsh", ("tcp", 512): "rexec"}
INSECURE_SNMP_VERSIONS = {"snmpv1", "snmpv2c", "1", "2c", "v1", "v2c", "0"}
MIN_SERVER_PACKETS = 3


def _snmp_servers(idx) -> tuple[set, set]:
    """(agents seen speaking v1/v2c, agents seen speaking v3)."""
    old, v3 = set(), set()
    for o in idx.obs("service"):
        if (o.data.get("name") or o.proto) == "snmp":
            v = str(o.data.get("version") or "").lower()
            (old if v in INSECURE_SNMP_VERSIONS else v3 if "3" in v else set()).add(o.subject_ip)
    for o in idx.obs("credential"):
        if o.proto == "snmp":
            no_auth = o.data.get("secret_type") == "usm" and o.data.get("auth") is False
            (old if o.data.get("secret_type") == "community" or no_auth else v3).add(o.dst)
    return old, v3


@check(INSECURE)
def insecure_services(ctx) -> list[Finding]:
    idx = index(ctx)
    snmp_old, _snmp_v3 = _snmp_servers(idx)
    # FTP sessions upgraded with AUTH TLS (FTPS): (server, client, client port)
    upgraded = {(o.src, o.dst, o.dport) if o.subject == "src" else (o.dst, o.src, o.sport)
                for o in idx.obs("session") if o.data.get("encrypted") is True}
    groups: dict[tuple, dict] = {}
    offered: set[str] = set()

    def group(server, name, l4, port):
        g = groups.get((server, name))
        if g is None:
            g = groups[(server, name)] = {"ev": EvidenceLog(), "ports": set(), "clients": set(),
                                          "confirmed": False, "banner": None}
        g["ports"].add(f"{l4}/{port}")
        return g

    for o in idx.obs("service"):
        server = o.subject_ip
        if not server or is_public(server) or not is_unicast(server):
            continue
        offered.add(server)
        name = str(o.data.get("name") or o.proto or "").lower()
        if name not in INSECURE_SERVICES or (name == "snmp" and server not in snmp_old):
            continue
        if (server, o.dst if o.subject == "src" else o.src, o.dport if o.subject == "src" else o.sport) in upgraded:
            continue
        g = group(server, name, o.l4, o.subject_port)
        g["confirmed"] = True
        banner = o.data.get("banner") or o.data.get("software")
        if banner and not g["banner"]:
            g["banner"] = str(banner)[:120]
        g["ev"].add_obs(o, f"{server} serves {INSECURE_SERVICES[name][0]} on {o.l4}/{o.subject_port}"
                           + (f": {str(banner)[:80]}" if banner else ""))
    for f in idx.flows:
        server = f.server
        if is_public(server) or not is_unicast(server):
            continue
        answered = f.packets - f.packets_to_server
        if answered > 0:
            offered.add(server)
        name = (f.app or "").lower()
        by_port = False
        if not name and answered >= MIN_SERVER_PACKETS:
            name = PORT_FALLBACK.get((f.l4, f.port), "")
            by_port = bool(name)
        if name not in INSECURE_SERVICES or (name == "snmp" and server not in snmp_old):
            continue
        if (server, f.client, f.client_port) in upgraded:
            continue
        g = group(server, name, f.l4, f.port)
        g["confirmed"] |= not by_port
        g["clients"].add(f.client)
        g["ev"].add_flow(f, flow_detail(f) + (" (by port)" if by_port else ""))
    if not offered:
        raise NotRun("no device on the plant network answered as a server in the captures")
    findings = []
    kept, rest = top(groups, lambda g: g["ev"].events)
    if rest:
        findings.append(rest_finding(INSECURE, rest, lambda k, g: [k[0]], lambda g: g["ev"].events,
                                     "insecure services"))
    for (server, name), g in kept:
        label, sev, instead = INSECURE_SERVICES[name]
        ports = ", ".join(sorted(g["ports"]))
        note = "" if g["confirmed"] else " (by port; protocol not confirmed)"
        title = f"{idx.label(server)} serves {label} on {ports}{note}"
        if g["clients"]:
            title += f", used by {plural(len(g['clients']), 'client')}"
        findings.append(Finding.from_meta(
            INSECURE, "fail", title, [server], g["ev"].items,
            severity=sev if g["confirmed"] else "low", service=name, ports=sorted(g["ports"]),
            clients=sorted(g["clients"])[:50], use_instead=instead, banner=g["banner"],
            events=g["ev"].events))
    clean = sorted(offered - {s for s, _ in groups})
    if clean:
        findings.append(Finding.from_meta(
            INSECURE, "pass", f"{plural(len(clean), 'device')} serve no Telnet, FTP, TFTP, plain HTTP, "
                              "SNMPv1/v2c or VNC", clean[:50], devices=len(clean)))
    return findings
