"""The roadmap: what to do now, in the next three months, and later — built from the failing
findings, the checks that could not run and the site's attestations, weighted by the size of the
organisation (a small plant needs different first steps than a group with its own SOC)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable

from plantguard.checks.base import severity_rank
from plantguard.compliance.attestations import ATTESTATIONS, attestation_of, site_attestations

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

# check ID -> (action title, why in plain words, effort, owner hint, themes)
ACTIONS: dict[str, tuple[str, str, str, str, set[str]]] = {
    "credentials.default": (
        "Change factory-default passwords on plant devices",
        "Devices accepted a login with a password printed in the vendor's manual; anyone on the "
        "network can take them over.", "low", "OT engineer with the device vendor", {"credentials", "hygiene"}),
    "credentials.cleartext": (
        "Stop sending passwords in clear text",
        "Passwords crossed the network unencrypted; anyone who can see the traffic can reuse them.",
        "medium", "OT engineer / network team", {"credentials", "hygiene"}),
    "services.insecure": (
        "Switch off unused and insecure services (Telnet, FTP, plain HTTP, old SNMP)",
        "Old management services offer easy ways in and are rarely needed in production.",
        "low", "OT engineer", {"hygiene", "perimeter"}),
    "segmentation.zone-violation": (
        "Block traffic between zones that no conduit allows",
        "Traffic crossed zone boundaries the site did not allow, so one infected zone can reach the next.",
        "medium", "network team", {"segmentation", "perimeter"}),
    "segmentation.it-ot-bridge": (
        "Separate office and guest networks from the machines",
        "Office or guest computers talk straight to control or sensing devices; malware on a laptop "
        "can reach the production line.", "medium", "network team", {"perimeter", "segmentation"}),
    "segmentation.vlan-mixing": (
        "Put sensing and control devices on their own VLANs",
        "Devices of different zones share a VLAN, so the zone plan is not enforced on the wire.",
        "medium", "network team", {"segmentation"}),
    "egress.not-allowlisted": (
        "Restrict outbound traffic from plant zones to the destinations they need",
        "Devices in a deny-by-default zone reached destinations that were never allowed.",
        "low", "network team", {"perimeter", "segmentation"}),
    "egress.internet": (
        "Cut direct internet access from plant devices",
        "Plant devices talk to public internet addresses: the plant is not isolated as assumed.",
        "low", "network team", {"perimeter"}),
    "crypto.cleartext-telemetry": (
        "Encrypt sensor and gateway telemetry (TLS, secure OPC UA modes)",
        "Measurements travel unencrypted and unauthenticated; they can be read or forged.",
        "medium", "OT engineer / integrator", {"crypto", "integrity"}),
    "crypto.weak-tls": (
        "Replace weak TLS settings and bad certificates",
        "Old TLS versions, weak ciphers or invalid certificates make encryption easy to defeat.",
        "medium", "IT security / OT engineer", {"crypto"}),
    "plc.unauthorized-write": (
        "Allow controller writes only from authorised engineering stations",
        "Hosts that are not engineering stations wrote values into controllers; a mistake or an "
        "attacker can change the process.", "medium", "OT engineer / automation lead",
        {"access-control", "integrity"}),
    "plc.unauthorized-program-change": (
        "Lock program and firmware changes to authorised stations and maintenance windows",
        "Controller programs were changed, or controllers started and stopped, from hosts that are "
        "not authorised.", "medium", "automation lead", {"access-control", "integrity"}),
    "zerotrust.unauthenticated-control": (
        "Authenticate control traffic that crosses zone boundaries",
        "Control commands without any authentication cross between zones; any host on the path "
        "can send them.", "high", "OT architect / integrator", {"access-control", "segmentation"}),
    "inventory.unknown-asset": (
        "Add unknown devices to the inventory, or remove them",
        "Devices were seen that nobody declared; you cannot protect what you do not know.",
        "low", "OT engineer / plant IT", {"visibility"}),
    "inventory.unidentified": (
        "Identify the make, model and firmware of unidentified controllers",
        "Industrial devices could not be identified, so advisories cannot be matched to them.",
        "low", "OT engineer", {"visibility", "vulnerability"}),
    "vuln.known-exploited": (
        "Patch or shield devices with vulnerabilities that are being exploited",
        "These devices run firmware with vulnerabilities attackers are known to use (see the patch plan).",
        "medium", "OT engineer with the vendor", {"vulnerability"}),
    "vuln.advisory": (
        "Plan fixes for devices named in vendor security advisories",
        "Vendors published security advisories for this hardware and firmware (see the patch plan).",
        "medium", "OT engineer with the vendor", {"vulnerability"}),
    "access.remote-mfa": (
        "Require multi-factor authentication on every remote-access path",
        "A declared remote-access path into the plant accepts a password alone.",
        "medium", "IT security", {"perimeter", "access-control"}),
    "plc.change-outside-window": (
        "Make controller changes only in agreed maintenance windows",
        "Controllers were written to or reprogrammed outside the site's maintenance windows.",
        "low", "automation lead", {"access-control", "integrity"}),
    "segmentation.unzoned-host": (
        "Place every network in a declared zone",
        "Some addresses belong to no zone in the site file: undocumented networks or misplaced devices.",
        "low", "network team / OT engineer", {"visibility", "segmentation"}),
    "sbom.missing": (
        "Obtain software bills of materials (SBOMs) for plant devices",
        "Without an SBOM you cannot tell which devices carry a vulnerable component.",
        "low", "procurement / vendor management", {"supply-chain"}),
    "sbom.incomplete": (
        "Ask vendors to complete their SBOMs",
        "The SBOMs received lack versions or components, so matching them to advisories is unreliable.",
        "low", "procurement / vendor management", {"supply-chain"}),
    "sbom.vulnerable-component": (
        "Fix devices whose SBOM lists a vulnerable component",
        "A component inside the device has a published vulnerability.",
        "medium", "OT engineer with the vendor", {"vulnerability", "supply-chain"}),
}

# attestation id -> (base horizon, effort, owner hint, themes, why, title per size (or one for all))
ATTESTATION_ACTIONS: dict[str, tuple[str, str, str, set[str], str, dict[str, str] | str]] = {
    "remote_access_mfa": ("1-3 months", "medium", "IT security", {"perimeter", "access-control"},
                          "Remote access with only a password is the most common way into plants.",
                          "Require multi-factor authentication for all remote access"),
    "usb_ports_disabled": ("1-3 months", "low", "OT engineer", {"hygiene"},
                           "USB sticks carry malware past every firewall.",
                           "Disable or lock USB ports on plant computers and controllers"),
    "unused_ethernet_ports_disabled": ("3+ months", "low", "network team", {"hygiene", "perimeter"},
                                       "An open switch port lets anyone plug a laptop into the plant network.",
                                       "Disable unused switch ports in plant networks"),
    "backups_tested": ("1-3 months", "low", "OT engineer", {"hygiene", "incident-response"},
                       "Without a tested backup of programs and configurations, recovery after an "
                       "incident or a failed device takes days.",
                       "Back up controller programs and configurations and test a restore"),
    "patch_schedule": ("1-3 months", "medium", "OT engineer / plant manager", {"vulnerability"},
                       "Without a schedule, patches wait until something breaks.",
                       "Agree a patch schedule tied to maintenance windows"),
    "incident_response_plan": ("1-3 months", "medium", "plant manager with IT security",
                               {"incident-response"},
                               "When an incident stops production, a written plan decides how fast "
                               "and how safely you restart.",
                               "Write an incident-response plan for production downtime and rehearse it"),
    "mssp_or_soc": ("1-3 months", "medium", "management", {"monitoring", "monitoring-service"},
                    "Nobody watches the plant network for attacks today.",
                    {"small": "Engage a managed security service provider (MSSP) that monitors OT",
                     "medium": "Arrange security monitoring of the plant network (MSSP or in-house)",
                     "large": "Stand up an OT security operations centre (SOC)"}),
    "security_training": ("3+ months", "low", "plant manager / HR", {"hygiene"},
                          "Most incidents start with a person: a phishing mail, a USB stick, a shared password.",
                          "Train plant staff in security basics"),
    "sbom_procurement_clause": ("3+ months", "low", "procurement", {"supply-chain"},
                                "Only a contract clause makes vendors deliver SBOMs and security fixes.",
                                "Add an SBOM and security-update clause to purchase contracts"),
    "secure_boot": ("3+ months", "medium", "OT engineer / vendor", {"integrity"},
                    "Secure boot stops modified firmware from running.",
                    "Turn on secure boot where devices support it"),
    "hardware_root_of_trust": ("3+ months", "high", "procurement / OT architect", {"integrity", "supply-chain"},
                               "A hardware root of trust lets a device prove its firmware is genuine.",
                               "Prefer devices with a hardware root of trust when buying"),
}

URGENT_ATTESTATIONS = {"remote_access_mfa"}

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


def _get(obj: Any, key: str, default=None):
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def _seq(v: Any) -> list:
    """Any iterable of records as a list; anything else (None, a number, a string) as empty."""
    if isinstance(v, (str, bytes, dict)) or not hasattr(v, "__iter__"):
        return []
    return list(v)


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _str_list(v: Any) -> list[str]:
    return [str(x) for x in v if isinstance(x, (str, int))] if isinstance(v, (list, tuple, set)) else []


def _size(site: Any) -> tuple[str, bool]:
    size = str(_get(site, "organization_size", "") or "").lower() if site is not None else ""
    return (size, False) if size in SIZES else ("medium", True)


def _earlier(horizon: str) -> str:
    return HORIZONS[max(0, HORIZONS.index(horizon) - 1)]


def _horizon_for(severity: str) -> str:
    r = severity_rank(severity)
    return "immediate" if r >= 3 else "1-3 months" if r == 2 else "3+ months"


def _controller_keys(assets: Iterable[Any]) -> set[str]:
    out = set()
    for a in _seq(assets):
        if _text(_get(a, "role")) in CONTROLLER_ROLES:
            for k in (_get(a, "ip"), _get(a, "mac")):
                if k:
                    out.add(str(k))
    return out


def _order(item: dict) -> tuple:
    return tuple(-int(x) for x in item["_rank"]), item["title"]


def build_roadmap(findings: Iterable[Any], not_run: Iterable[Any], site: Any, assets: Iterable[Any]) -> dict:
    size, assumed = _size(site)
    themes = GUIDANCE[size]["themes"]
    controllers = _controller_keys(assets)
    items: list[dict[str, Any]] = []

    # 1. failing findings, one item per check
    by_check: "OrderedDict[str, list[Any]]" = OrderedDict()
    declared_severity: dict[str, str] = {}     # attestation id -> severity its check gave a gap
    for f in _seq(findings):
        if _get(f, "status") != "fail" or not _text(_get(f, "check")):
            continue
        declared = attestation_of(f)
        if declared is None:
            by_check.setdefault(_get(f, "check"), []).append(f)
        else:
            # findings restating an attestation become the attestation items below, not duplicates
            sev = _text(_get(f, "severity")) or "info"
            prev = declared_severity.get(declared[0], "info")
            declared_severity[declared[0]] = max(prev, sev, key=severity_rank)
    for check_id, group in by_check.items():
        sev = max((_text(_get(f, "severity")) or "info" for f in group), key=severity_rank)
        assets_hit = list(OrderedDict.fromkeys(a for f in group for a in _str_list(_get(f, "assets"))))
        action = ACTIONS.get(check_id)
        if action:
            title, why, effort, owner, item_themes = action
        else:
            first = group[0]
            title = _text(_get(first, "remediation")) or _text(_get(first, "title")) or check_id
            why, effort, owner, item_themes = _text(_get(first, "title")), "medium", "OT engineer", set()
        n_ctrl = sum(1 for a in assets_hit if a in controllers)
        if len(group) > 1:
            why += f" Seen {len(group)} times."
        if n_ctrl:
            why += f" {n_ctrl} of the devices concerned {'are controllers' if n_ctrl > 1 else 'is a controller'}."
        emphasis = bool(item_themes & themes)
        horizon = _horizon_for(sev)
        if emphasis and severity_rank(sev) >= 2:
            horizon = _earlier(horizon)
        items.append({"title": title, "why": why, "checks": [check_id], "assets": assets_hit[:MAX_ITEM_ASSETS],
                      "effort": effort, "owner_hint": owner, "severity": sev, "source": "finding",
                      "emphasis": emphasis, "_horizon": horizon,
                      "_rank": (severity_rank(sev), emphasis, 2, n_ctrl, len(assets_hit))})

    # 2. checks that could not run
    nr_site, nr_intel, nr_sbom, nr_other = [], [], [], OrderedDict()
    for n in _seq(not_run):
        cid, reason = _text(_get(n, "check")), _text(_get(n, "reason"))
        if not cid:
            continue
        low = reason.lower()
        if "needs a site file" in low or (site is None and "site" in low):
            nr_site.append(cid)
        elif any(w in low for w in ("intel", "advisor", "kev")):
            nr_intel.append(cid)
        elif "sbom" in low:
            nr_sbom.append(cid)
        else:
            nr_other.setdefault(reason or "no reason given", []).append(cid)
    if nr_site or site is None:
        t, w, e, o = SITE_FILE_ITEM
        items.append({"title": t, "why": w, "checks": sorted(set(nr_site)), "assets": [], "effort": e,
                      "owner_hint": o, "severity": "high", "source": "not-run", "emphasis": False,
                      "_horizon": "immediate", "_rank": (3, True, 1, 0, len(nr_site))})
    if nr_intel:
        t, w, e, o = INTEL_ITEM
        items.append({"title": t, "why": w, "checks": sorted(set(nr_intel)), "assets": [], "effort": e,
                      "owner_hint": o, "severity": "medium", "source": "not-run", "emphasis": "vulnerability" in themes,
                      "_horizon": "immediate", "_rank": (2, True, 1, 0, len(nr_intel))})
    if nr_sbom:
        t, w, e, o = SBOM_ITEM
        items.append({"title": t, "why": w, "checks": sorted(set(nr_sbom)), "assets": [], "effort": e,
                      "owner_hint": o, "severity": "low", "source": "not-run", "emphasis": "supply-chain" in themes,
                      "_horizon": "1-3 months", "_rank": (1, True, 1, 0, len(nr_sbom))})
    for reason, cids in nr_other.items():
        items.append({"title": f"Make {len(cids)} more check{'s' if len(cids) > 1 else ''} runnable",
                      "why": f"They could not run: {reason}", "checks": sorted(set(cids)), "assets": [],
                      "effort": "low", "owner_hint": "OT engineer", "severity": "low", "source": "not-run",
                      "emphasis": False, "_horizon": "1-3 months", "_rank": (1, False, 1, 0, len(cids))})

    # 3. attestations the site has not confirmed (without a site file the site-file item covers them)
    if site is not None:
        attested = site_attestations(site)
        for aid, (base, effort, owner, a_themes, why, titles) in ATTESTATION_ACTIONS.items():
            a = attested.get(aid)
            if a and a["status"] == "yes":
                continue
            title = titles[size] if isinstance(titles, dict) else titles
            state = ("The site file does not say whether this is in place." if a is None else
                     "The site file says this is only partly in place." if a["status"] == "partial" else
                     "The site file says this is not in place.")
            emphasis = bool(a_themes & themes)
            # declared gaps move up a step when they are this size's focus; only weak remote access
            # is urgent enough to join the measured problems in "immediate"
            horizon = _earlier(base) if emphasis and (base == "3+ months" or aid in URGENT_ATTESTATIONS) else base
            # the attestation check's own judgement of the gap, when it ran, can only make it more urgent
            sev = declared_severity.get(aid) or ("medium" if emphasis else "low")
            if HORIZONS.index(_horizon_for(sev)) < HORIZONS.index(horizon) and severity_rank(sev) >= 3:
                horizon = _horizon_for(sev)
            check_id = ATTESTATIONS[aid].get("check")
            items.append({"title": title, "why": f"{why} {state}", "checks": [check_id] if check_id else [],
                          "assets": [],
                          "effort": effort, "owner_hint": owner, "severity": sev,
                          "source": "attestation", "attestation": aid, "emphasis": emphasis,
                          "controls": ATTESTATIONS[aid]["controls"], "_horizon": horizon,
                          "_rank": (max(severity_rank(sev), 1), emphasis, 0, 0, 0)})

    # 4. the programme items of this size
    for horizon, title, why, effort, owner in PROGRAMME[size]:
        items.append({"title": title, "why": why, "checks": [], "assets": [], "effort": effort,
                      "owner_hint": owner, "severity": "info", "source": "guidance", "emphasis": True,
                      "_horizon": horizon, "_rank": (2, True, 0, 0, 0)})

    out: dict[str, Any] = {"organization_size": size, "size_assumed": assumed,
                           "guidance": GUIDANCE[size]["text"], "focus": list(GUIDANCE[size]["focus"])}
    buckets: dict[str, list[dict[str, Any]]] = {h: [] for h in HORIZONS}
    for i in items:
        buckets[i.pop("_horizon")].append(i)
    # "immediate" stays a short list: beyond MAX_IMMEDIATE, what is not critical or high waits a step
    buckets["immediate"].sort(key=_order)
    keep = [i for n, i in enumerate(buckets["immediate"]) if n < MAX_IMMEDIATE or i["_rank"][0] >= 3]
    kept = {id(i) for i in keep}
    buckets["1-3 months"] += [i for i in buckets["immediate"] if id(i) not in kept]
    buckets["immediate"] = keep
    for h in HORIZONS:
        # most severe first; then the size's emphasis, measured before declared, controllers
        # touched and breadth
        buckets[h].sort(key=_order)
        for i in buckets[h]:
            del i["_rank"]
        out[h] = buckets[h]
    return out
