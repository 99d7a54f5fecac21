"""RBAC for PLC changes: writes, configuration changes, program and firmware downloads and
run/stop commands that reach a controller from a host that is not an authorised engineering
station, and program changes outside the declared maintenance windows. Without a site file, a
host that changed several controllers and does nothing a station would not is reported once, as
the probable engineering station, with how to confirm it (inferred_stations).
With change tickets in use, every change (a station's too) needs a ticket holding it, as
changes/tickets.verdict decides.
Input: `operation` observations (category per OP_CATEGORIES), asset roles, the site's stations,
the change tickets (AssessContext.options, changes/timeline.py)."""
from __future__ import annotations

from collections import Counter, defaultdict

from plantguard.changes.tickets import Verdict
from plantguard.changes.timeline import judged, key_of, tickets_of
from plantguard.checks._common import (EvidenceLog, INDUSTRIAL_PROTOCOLS, address_class, index, plural,
                                       rest_finding, text, top)
from plantguard.checks.base import CheckMeta, Finding
from plantguard.checks.registry import NotRun, check
from plantguard.inventory.asset import CONTROLLER_ROLES
from plantguard.model import PROGRAM_CATEGORIES, WRITE_CATEGORIES
from plantguard.net import ip_sort_key

UNAUTHORIZED_WRITE = CheckMeta(
    id="plc.unauthorized-write", conversation=True,
    title="Controller writes from unauthorised hosts",
    practice="rbac-plc-changes",
    severity="high",
    risk="A host that is not an engineering station writing set-points, outputs or configuration "
         "to a controller can change the physical process; industrial protocols accept such "
         "writes from anyone who can reach the port.",
    remediation="Allow writes to controllers only from the declared engineering stations "
                "(firewall or protocol-aware filter at the control zone), enable the controller's "
                "write protection / access levels, and investigate the writing host.",
    controls={"iec62443-3-3": ("SR 2.1", "SR 1.2", "SR 3.1"),
              "nist-800-53r5": ("AC-3", "AC-6", "CM-5"),
              "iso27001-2022": ("A.8.2", "A.8.3", "A.5.15")},
    attack=("T0855", "T0836", "T0831"),
    action="Allow controller writes only from authorised engineering stations",
    why="Hosts that are not engineering stations wrote values into controllers; a mistake or an "
        "attacker can change the process.",
    effort="medium", owner="OT engineer / automation lead", themes=("access-control", "integrity"),
)

UNAUTHORIZED_PROGRAM = CheckMeta(
    id="plc.unauthorized-program-change", conversation=True,
    title="Program, firmware or run-state changes from unauthorised hosts",
    practice="rbac-plc-changes",
    severity="critical",
    risk="Downloading logic or firmware, or stopping a controller, from an unauthorised host is "
         "how the most damaging ICS attacks changed processes; it may also be an unmanaged "
         "laptop making untracked changes.",
    remediation="Permit program, firmware and run/stop operations only from the declared "
                "engineering stations, protect the controller with a password / key switch in RUN, "
                "and route every change through change management.",
    controls={"iec62443-3-3": ("SR 2.1", "SR 3.4", "SR 1.2"),
              "nist-800-53r5": ("AC-3", "CM-5", "CM-3", "SI-7"),
              "iso27001-2022": ("A.8.2", "A.8.19", "A.8.32")},
    attack=("T0843", "T0845", "T0839", "T0858", "T0889"),
    action="Lock program and firmware changes to authorised stations and maintenance windows",
    why="Controller programs were changed, or controllers started and stopped, from hosts that are not authorised.",
    effort="medium", owner="automation lead", themes=("access-control", "integrity"),
)

OUTSIDE_WINDOW = CheckMeta(
    id="plc.change-outside-window", conversation=True,
    title="Controller program changes outside maintenance windows",
    practice="rbac-plc-changes",
    severity="medium",
    risk="Program, firmware and run-state changes outside the agreed maintenance windows escape "
         "change management, even when they come from an authorised station.",
    remediation="Schedule controller changes inside the site's maintenance windows, or record the "
                "emergency change; check that this change was approved.",
    controls={"iec62443-3-3": ("SR 2.1", "SR 2.8"),
              "nist-800-53r5": ("CM-3", "CM-5"),
              "iso27001-2022": ("A.8.32",)},
    attack=("T0843", "T0858"),
    needs_site=True,
    action="Make controller changes only in agreed maintenance windows",
    why="Controllers were written to or reprogrammed outside the site's maintenance windows.",
    effort="low", owner="automation lead", themes=("access-control", "integrity"),
)

UNJUDGED = Verdict(False, None, "not judged: more distinct changes than the timeline tracks")
STATIONS_NOTE = "no authorised engineering stations are declared (site file: engineering_workstations)"

# Without a site file, a host that changed this many controllers (one change at least a program,
# firmware, run/stop or configuration change) is taken for the engineering station.
STATION_MIN_CONTROLLERS = 2
STATION_CATEGORIES = PROGRAM_CATEGORIES | {"config"}


def _ops(idx, categories: frozenset) -> list:
    return [o for o in idx.obs("operation")
            if text(o.data.get("category")) in categories and o.dst and idx.is_controller(o.dst, o.proto)]


def _op_name(o) -> str:
    return text(o.data.get("name")) or text(o.data.get("category")) or "operation"


def _op_text(o) -> str:
    d = o.data
    name = text(d.get("name")) or (f"code {d.get('code')}" if d.get("code") is not None else text(d.get("category")))
    detail = d.get("detail")
    return f"{o.proto} {name} ({d.get('category')})" + (f": {str(detail)[:80]}" if detail else "")


def _industrial_flows(idx) -> int:
    return sum(1 for f in idx.flows if (f.app or "") in INDUSTRIAL_PROTOCOLS)


def inferred_stations(idx) -> dict[str, list[str]]:
    """Without a site file: {host: the controllers it changed} for each host that is probably
    an engineering station. Such a host sent changes (writes, configuration, program, firmware,
    run/stop) to at least STATION_MIN_CONTROLLERS controllers, one of them more than a data
    write (an HMI writes set-points; a station also programs or configures), and does nothing
    else that a station would not: it is a private address that exchanged nothing with public
    addresses, and it is no controller itself. With a site file the site says who the stations
    are, so nothing is inferred."""
    cached = getattr(idx, "_plantguard_stations", None)
    if cached is not None:
        return cached
    out: dict[str, list[str]] = {}
    if idx.site is None:
        changed: dict[str, set] = defaultdict(set)
        programs: set[str] = set()
        for o in _ops(idx, WRITE_CATEGORIES | PROGRAM_CATEGORIES):
            changed[o.src].add(o.dst)
            if text(o.data.get("category")) in STATION_CATEGORIES:
                programs.add(o.src)
        talks_public = {ip for f in idx.flows for ip, peer in ((f.client, f.server), (f.server, f.client))
                        if address_class(peer) == "public"}
        served = idx.server_apps()
        for host, controllers in changed.items():
            if len(controllers) < STATION_MIN_CONTROLLERS or host not in programs:
                continue
            if address_class(host) != "private" or host in talks_public:
                continue
            if served.get(host, set()) & INDUSTRIAL_PROTOCOLS or idx.role(host) in CONTROLLER_ROLES:
                continue
            out[host] = sorted(controllers, key=ip_sort_key)
    try:
        idx._plantguard_stations = out
    except AttributeError:
        pass
    return out


def _rbac(ctx, meta: CheckMeta, categories: frozenset, noun: str) -> list[Finding]:
    idx = index(ctx)
    site = idx.site
    stations_declared = bool(site is not None and site.engineering_workstations)
    stations = inferred_stations(idx)
    # with change tickets in use, a station's change needs a ticket too (changes/timeline.py)
    verdicts = judged(idx, tickets_of(ctx)) if tickets_of(ctx) is not None else None
    bad: dict[tuple, dict] = {}
    good: dict[str, dict] = {}
    ticketed: dict[tuple, dict] = {}
    probable: dict[str, dict] = {}
    for o in _ops(idx, categories):
        authorised = stations_declared and site.is_engineering_workstation(o.src)
        v = None if verdicts is None else verdicts.get(key_of(o), UNJUDGED)
        if v is not None and v.authorised:
            g = ticketed.setdefault((o.dst, v.ticket), {"ev": EvidenceLog(), "stations": set(), "names": Counter(),
                                                        "reason": v.reason})
            g["stations"].add(o.src)
        elif authorised and v is None:
            g = good.setdefault(o.dst, {"ev": EvidenceLog(), "stations": set(), "names": Counter()})
            g["stations"].add(o.src)
        elif o.src in stations and v is None:
            g = probable.setdefault(o.src, {"ev": EvidenceLog(), "names": Counter(), "controllers": set(),
                                            "protocols": set()})
            g["controllers"].add(o.dst)
            g["protocols"].add(o.proto)
        else:
            g = bad.setdefault((o.src, o.dst, o.proto), {"ev": EvidenceLog(), "names": Counter(),
                                                        "station": authorised, "reasons": {}})
            if v is not None and len(g["reasons"]) < 5:
                g["reasons"].setdefault(v.reason)
        g["names"][_op_name(o)] += o.count
        g["ev"].add_obs(o, f"{_op_text(o)} from {o.src} to {o.dst}")
    if not bad and not good and not probable and not ticketed:
        n = _industrial_flows(idx)
        if not n:
            raise NotRun("no industrial protocol traffic was seen in the captures")
        return [Finding.from_meta(meta, "pass", f"No {noun} to a controller was seen in "
                                                f"{plural(n, 'industrial flow')}", [], industrial_flows=n)]
    findings = []
    kept, rest = top(bad, lambda g: g["ev"].events)
    for (client, server, proto), g in kept:
        n = g["ev"].events
        ops = ", ".join(f"{name} x{c}" for name, c in g["names"].most_common(4))
        reasons = list(g["reasons"])
        if g["station"]:
            title = (f"{plural(n, noun)} to {idx.label(server)} over {proto} from {idx.label(client)} "
                     f"without a matching change ticket: {reasons[0]} ({ops})")
            sev = None
        elif stations_declared:
            title = (f"{plural(n, noun)} to {idx.label(server)} over {proto} from {idx.label(client)}, "
                     f"which is not an authorised engineering station ({ops})")
            sev = None
        else:
            title = (f"{plural(n, noun)} to {idx.label(server)} over {proto} from {idx.label(client)} "
                     f"cannot be verified: {STATIONS_NOTE} ({ops})")
            sev = "medium"
        extra = {"inferred_stations": sorted(stations, key=ip_sort_key)} if stations else {}
        if verdicts is not None:
            extra["ticket_reasons"] = reasons
        findings.append(Finding.from_meta(
            meta, "fail", title, [server, client], g["ev"].items, severity=sev, protocol=proto,
            operations=dict(g["names"].most_common(20)), authorised_stations_declared=stations_declared,
            events=n, first=g["ev"].first, last=g["ev"].last, **extra))
    for host, g in sorted(probable.items(), key=lambda kv: ip_sort_key(kv[0])):
        findings.append(_probable_station(idx, meta, noun, host, g, stations[host]))
    if rest:
        findings.append(rest_finding(meta, rest, lambda k, g: (k[1], k[0]), lambda g: g["ev"].events,
                                     "unauthorised host/controller pairs"))
    for (server, ticket), g in top(ticketed, lambda g: g["ev"].events)[0]:
        n = g["ev"].events
        ops = ", ".join(f"{name} x{c}" for name, c in g["names"].most_common(4))
        findings.append(Finding.from_meta(
            meta, "pass", f"{plural(n, noun)} to {idx.label(server)} from {', '.join(sorted(g['stations']))} "
                          f"{g['reason']} ({ops})", [server], g["ev"].items,
            operations=dict(g["names"].most_common(20)), stations=sorted(g["stations"]), events=n,
            ticket=ticket, ticket_reason=g["reason"]))
    for server, g in top(good, lambda g: g["ev"].events)[0]:
        n = g["ev"].events
        findings.append(Finding.from_meta(
            meta, "pass", f"All {plural(n, noun)} to {idx.label(server)} came from authorised stations "
                          f"({', '.join(sorted(g['stations']))})", [server], g["ev"].items,
            operations=dict(g["names"].most_common(20)), stations=sorted(g["stations"]), events=n))
    return findings


def _probable_station(idx, meta: CheckMeta, noun: str, host: str, g: dict, changed: list[str]) -> Finding:
    """One finding for all the changes of a probable engineering station, saying how to confirm it."""
    n = g["ev"].events
    here = sorted(g["controllers"], key=ip_sort_key)
    ops = ", ".join(f"{name} x{c}" for name, c in g["names"].most_common(4))
    title = (f"{idx.label(host)} is probably the engineering station (inferred): it sent "
             f"{plural(n, noun)} to {', '.join(idx.label(c) for c in here[:3])}{' ...' if len(here) > 3 else ''} "
             f"over {', '.join(sorted(g['protocols']))} ({ops}) and changed {plural(len(changed), 'controller')} "
             f"in all; confirm it by declaring it in a site file (engineering_workstations: [{host}])")
    return Finding.from_meta(
        meta, "fail", title, here[:50] + [host], g["ev"].items, severity="low",
        inferred_station=host, controllers=here[:50], controllers_changed=changed[:50],
        protocols=sorted(g["protocols"]), operations=dict(g["names"].most_common(20)),
        authorised_stations_declared=False, events=n, first=g["ev"].first, last=g["ev"].last,
        confirm=f"declare it in a site file: engineering_workstations: [{host}]")


@check(UNAUTHORIZED_WRITE)
def unauthorized_write(ctx) -> list[Finding]:
    return _rbac(ctx, UNAUTHORIZED_WRITE, WRITE_CATEGORIES, "write")


@check(UNAUTHORIZED_PROGRAM)
def unauthorized_program_change(ctx) -> list[Finding]:
    return _rbac(ctx, UNAUTHORIZED_PROGRAM, PROGRAM_CATEGORIES, "program change")


@check(OUTSIDE_WINDOW)
def change_outside_window(ctx) -> list[Finding]:
    idx = index(ctx)
    site = idx.site
    if not site.maintenance_windows:
        raise NotRun("the site file declares no maintenance windows")
    ops = _ops(idx, PROGRAM_CATEGORIES)
    if not ops:
        raise NotRun("no program, firmware or run/stop operation to a controller was seen")
    outside: dict[tuple, dict] = {}
    inside = 0
    for o in ops:
        z = site.zone_of(o.dst, o.vlan)
        zname = z.name if z is not None else None
        # a folded observation spans first..last: judge both ends
        times = [o.ts] + ([o.last_ts] if o.last_ts and o.last_ts != o.ts else [])
        if all(site.maintenance_window_at(t, zname) is not None for t in times):
            inside += o.count
            continue
        g = outside.setdefault((o.src, o.dst), {"ev": EvidenceLog(), "names": Counter(), "zone": zname})
        g["names"][_op_name(o)] += o.count
        g["ev"].add_obs(o, f"{_op_text(o)} from {o.src} to {o.dst} outside maintenance windows")
    findings = []
    kept, rest = top(outside, lambda g: g["ev"].events)
    if rest:
        findings.append(rest_finding(OUTSIDE_WINDOW, rest, lambda k, g: (k[1], k[0]), lambda g: g["ev"].events,
                                     "host/controller pairs changed outside windows"))
    for (client, server), g in kept:
        ops_text = ", ".join(f"{n} x{c}" for n, c in g["names"].most_common(4))
        findings.append(Finding.from_meta(
            OUTSIDE_WINDOW, "fail",
            f"{plural(g['ev'].events, 'program change')} to {idx.label(server)} from {client} outside "
            f"every maintenance window ({ops_text})", [server, client], g["ev"].items,
            zone=g["zone"], operations=dict(g["names"]), events=g["ev"].events))
    if not outside:
        findings.append(Finding.from_meta(
            OUTSIDE_WINDOW, "pass", f"All {plural(inside, 'program change')} to controllers happened "
                                    "inside maintenance windows", [], events=inside))
    return findings
