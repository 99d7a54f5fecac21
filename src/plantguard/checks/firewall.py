"""Segmentation proven from firewall configurations: what the parsed rulesets permit between the
site's zones (firewall/reach.py, exact), set against what the site declares (conduits, egress
allow lists, zone kinds) and what the captures show (each crossing flow evaluated).
Input: ctx.options[FIREWALL_OPTION], a list of firewall.model.Ruleset (`assess --firewall`,
`firewall check`); not run without one.

Evidence of a configuration finding points at the configuration, not at a capture: capture is
the configuration file, frame its 1-based line number, time None, and detail the rule as
written followed by the witness packet (the lowest packet of the class that shows it)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from functools import partial
from pathlib import Path

from netaddr import IPSet

from plantguard.checks._common import (
    EvidenceLog,
    address_class,
    flow_detail,
    index,
    plural,
    rest_finding,
    top,
)
from plantguard.checks.base import CheckMeta, Evidence, Finding
from plantguard.checks.registry import NotRun, check
from plantguard.firewall.evaluate import (
    PORT_PROTOCOLS,
    describe,
    evaluate,
    on_path,
    placed,
    rule_matches,
)
from plantguard.firewall.model import STATES, Packet, Rule, Ruleset, Verdict
from plantguard.firewall.reach import (
    OUTSIDE,
    WHOLE,
    Permitted,
    address_cuts,
    address_fits,
    class_packet,
    intervals,
    pick_addr,
    reach,
    service_text,
    services,
    zone_sets,
)

FIREWALL_OPTION = "firewall"          # AssessContext.options key: the parsed rulesets
NO_CONFIG = "no firewall configuration given (--firewall CONFIG)"
CONTROLS = {"iec62443-3-3": ("SR 5.1", "SR 5.2"),
            "nist-800-53r5": ("SC-7", "SC-7(5)"),
            "iso27001-2022": ("A.8.20", "A.8.22")}
MAX_SHADOW_CLASSES = 20_000           # classes tried per rule before its shadowing is left undecided


def _meta(**kw) -> CheckMeta:
    return CheckMeta(controls=CONTROLS, effort="low", owner="network team", themes=("perimeter", "segmentation"), **kw)


PERMITS_UNDECLARED = _meta(
    id="firewall.permits-undeclared", title="The firewall permits zone-to-zone traffic no conduit allows",
    practice="segmentation", severity="high", needs_site=True, attack=("T0886", "T0866"),
    risk="A rule that opens a path the site never declared lets an intruder in one zone reach the "
         "devices of another, whether or not anyone uses the path today.",
    remediation="Remove or narrow the rule to the conduit's allow list, or, if the path is needed, "
                "declare it as a conduit in the site file.",
    action="Close firewall rules that open paths no conduit declares",
    why="The firewall configuration permits traffic between zones that the site plan does not allow.")

EGRESS_OPEN = _meta(
    id="firewall.egress-open", title="The firewall lets a deny-all zone reach destinations beyond its allow list",
    practice="deny-all-outbound", severity="high", needs_site=True, attack=("T0869", "T0885", "T0883"),
    risk="A zone declared deny-all outbound that the firewall lets out can call home to malware "
         "infrastructure or leak data, whatever the traffic of the capture showed.",
    remediation="Deny outbound traffic from the zone by default and permit only the destinations "
                "its egress allow list names.",
    action="Make the firewall enforce the deny-all-outbound zones",
    why="The firewall configuration lets a deny-all zone reach destinations outside its allow list.")

IT_OT_OPEN = _meta(
    id="firewall.it-ot-open", title="The firewall lets office or guest zones reach OT zones directly",
    practice="segmentation", severity="high", needs_site=True, attack=("T0886", "T0866", "T0883"),
    risk="A direct path from office or guest networks to control or sensing devices lets malware "
         "from the IT side reach the process without passing a DMZ.",
    remediation="Remove the direct IT/guest-to-OT rules; route what is needed through a DMZ (jump "
                "host, historian replica, broker).",
    action="Remove direct office and guest access to the machines from the firewall",
    why="The firewall configuration lets office or guest computers reach control or sensing devices directly.")

CONDUIT_BLOCKED = _meta(
    id="firewall.conduit-blocked", title="A declared conduit is denied by the firewall",
    practice="segmentation", severity="info", needs_site=True,
    risk="A conduit the site declares but the firewall denies is either stale documentation or a "
         "rule missing on the firewall; either way the plan and the device disagree.",
    remediation="Add the rule the conduit needs, or remove the conduit from the site file.",
    action="Reconcile declared conduits with the firewall rules",
    why="The site file declares a conduit the firewall configuration denies.")

OBSERVED_NOT_PERMITTED = _meta(
    id="firewall.observed-not-permitted", title="Captured traffic the firewall configuration would drop",
    practice="segmentation", severity="medium", needs_site=True, conversation=True, attack=("T0886",),
    risk="Traffic seen on the wire that the configuration denies means the configuration is not what "
         "runs, or the traffic takes a path around the firewall.",
    remediation="Compare the running configuration with the one assessed, and find the path the "
                "traffic takes (a second interface, a bypass, a flat switch).",
    action="Find how traffic passes that the firewall should block",
    why="The capture shows traffic between zones that the firewall configuration would have dropped.")

SHADOWED = _meta(
    id="firewall.shadowed-rule", title="A firewall rule no packet can reach",
    practice="segmentation", severity="low",
    risk="A rule hidden behind earlier rules does nothing; whoever wrote it believes it filters, and "
         "reviews of the rule base are misled.",
    remediation="Remove the shadowed rule, or move it above the rules that cover it if it was meant to decide.",
    action="Clean up shadowed firewall rules",
    why="Some firewall rules can never match because earlier rules decide all their packets.")

ANY_ANY = _meta(
    id="firewall.any-any", title="A firewall rule permits any source to any destination on any service",
    practice="segmentation", severity="high", attack=("T0886",),
    risk="An any-to-any permit turns the firewall into a router: every zone reaches every other one.",
    remediation="Replace the rule with rules for the conduits the site needs.",
    action="Remove any-to-any permit rules from the firewall",
    why="A firewall rule permits everything, so the zones it separates are not separated.")


# -- shared --------------------------------------------------------------------------------------
def rulesets(ctx) -> list[Ruleset]:
    rs = ctx.options.get(FIREWALL_OPTION) or []
    if not rs:
        raise NotRun(NO_CONFIG)
    return list(rs)


def _reach(ctx, rs: Ruleset):
    cache = ctx.options.setdefault("_firewall_reach", {})
    if id(rs) not in cache:
        cache[id(rs)] = (rs, reach(rs, zone_sets(ctx.site)))
    return cache[id(rs)][1]


def rule_evidence(rs: Ruleset, rule: Rule | None, witness: Packet | None, why: str = "") -> Evidence:
    """A configuration line as evidence: capture = the file, frame = the line, detail = the rule
    as written and the witness packet."""
    w = f"; witness: {describe(witness)}" if witness is not None else ""
    if rule is None:
        return Evidence(rs.path, None, None, f"{why or 'the default policy'}{w}")
    o = rule.origin
    return Evidence(o.path, o.line, None, f"{o.text.strip()}{w}")


def verdict_evidence(rs: Ruleset, v: Verdict, witness: Packet) -> Evidence:
    if v.rule is None:
        chain = next((rs.chains[c] for c in reversed(v.chains) if c in rs.chains), None)
        line = chain.origin.line if chain is not None and chain.origin is not None else None
        return Evidence(rs.path, line, None, f"{v.reason}; witness: {describe(witness)} -> {v.action}")
    return rule_evidence(rs, v.rule, witness)


def _where(rule: Rule | None, rs: Ruleset) -> str:
    return _cite(rule.origin) if rule is not None else f"{_name(rs.path)} (policy)"


def _name(path: str) -> str:
    """A configuration as titles name it: its file name (the evidence keeps the whole path), so a
    finding's title, and so its id, do not depend on the folder the file was read from."""
    return Path(path).name or path


def _cite(origin) -> str:
    return f"{_name(origin.path)}:{origin.line}"


def _net(s: IPSet) -> str:
    cidrs = s.iter_cidrs()
    return ", ".join(str(c) for c in cidrs[:3]) + (" ..." if len(cidrs) > 3 else "")


def _allowed_ports(site, a: str, b: str, proto: str) -> list[tuple[int, int]] | None:
    """The ports of `proto` the conduits a -> b allow (None: every packet of that protocol)."""
    from plantguard.site.vocabulary import _ports_of
    out = []
    for c in site.conduits_between(a, b):
        for r in c.allow:
            if r.text == "any" or (r.name == "icmp" and proto in ("icmp", "icmpv6")):
                return None
            if r.ports is not None and r.l4 == proto:
                out.append(r.ports)
            elif r.name is not None:
                out += [(p, p) for l4, p in _ports_of(r.name) if l4 == proto]
    return out


def _minus(ranges, allowed) -> list[tuple[int, int]]:
    """Port ranges less the allowed ones."""
    out = []
    for lo, hi in ranges:
        cur = lo
        for alo, ahi in sorted(allowed):
            if ahi < cur or alo > hi:
                continue
            if alo > cur:
                out.append((cur, alo - 1))
            cur = max(cur, ahi + 1)
        if cur <= hi:
            out.append((cur, hi))
    return out


def _undeclared(site, a: str, b: str, p: Permitted) -> list[tuple[int, int]] | bool:
    """What of a permitted class no conduit a -> b allows: port ranges, True (all of a portless
    class), or [] / False (all declared)."""
    allowed = _allowed_ports(site, a, b, p.protocol)
    if allowed is None:
        return False
    if p.protocol in PORT_PROTOCOLS:
        return _minus(p.ports or ((0, 65535),), allowed)
    return True


# -- the checks ----------------------------------------------------------------------------------
@check(PERMITS_UNDECLARED)
def permits_undeclared(ctx) -> list[Finding]:
    site = ctx.site
    findings = []
    for rs in rulesets(ctx):
        r = _reach(ctx, rs)
        groups: dict = {}
        for (a, b), classes in r.pairs.items():
            if b == OUTSIDE:
                continue
            for p in classes:
                left = _undeclared(site, a, b, p)
                if not left:
                    continue
                w = replace(p.witness, dport=max(left[0][0], 1) if left[0][1] >= 1 else left[0][0]) \
                    if isinstance(left, list) else p.witness
                svc = service_text(p.protocol, tuple(left) if isinstance(left, list) else p.ports)
                g = groups.setdefault((rs.path, a, b, id(p.rule)), {"ev": [], "services": [], "rule": p.rule,
                                                                    "extra": {}})
                g["services"].append(f"{svc} ({_net(p.src)} -> {_net(p.dst)})")
                g["ev"].append(rule_evidence(rs, p.rule, w))
        for (path, a, b, _), g in groups.items():
            zs = (site.zone(a), site.zone(b))
            findings.append(Finding.from_meta(
                PERMITS_UNDECLARED, "fail",
                f"{_where(g['rule'], rs)} permits {a} -> {b} {', '.join(g['services'][:3])}, which no conduit allows",
                [], g["ev"], severity="high" if any(z is not None and z.is_ot for z in zs) else "medium",
                config=path, from_zone=a, to_zone=b, services=g["services"][:50],
                witness=g["ev"][0].detail.rpartition("witness: ")[2]))
        if not groups:
            pairs = sum(1 for (a, b), c in r.pairs.items() if b != OUTSIDE and c)
            findings.append(Finding.from_meta(
                PERMITS_UNDECLARED, "pass", f"Everything {_name(rs.path)} permits between zones is declared by a conduit "
                f"({plural(pairs, 'zone pair')} with permitted traffic, {r.classes:,} header-space classes evaluated)",
                [], config=rs.path, classes=r.classes, notes=r.notes))
    return findings


@check(EGRESS_OPEN)
def egress_open(ctx) -> list[Finding]:
    site = ctx.site
    if not site.egress:
        raise NotRun("the site file declares no egress rules")
    findings = []
    for rs in rulesets(ctx):
        r = _reach(ctx, rs)
        for e in site.egress:
            allow = IPSet(str(n) for n in e.allow)
            ev, dests = [], []
            for (a, b), classes in r.pairs.items():
                if a != e.zone:
                    continue
                for p in classes:
                    rest = p.dst - allow
                    if not rest:
                        continue
                    dst = _host(rest)
                    ev.append(rule_evidence(rs, p.rule, replace(p.witness, dst=dst)))
                    dests.append(f"{b}: {_net(rest)} {p.service()}")
            if ev:
                findings.append(Finding.from_meta(
                    EGRESS_OPEN, "fail", f"{_name(rs.path)} lets deny-all zone {e.zone} reach {', '.join(dests[:3])}"
                    f"{' ...' if len(dests) > 3 else ''} beyond its egress allow list", [], ev,
                    config=rs.path, zone=e.zone, destinations=dests[:50]))
            else:
                findings.append(Finding.from_meta(
                    EGRESS_OPEN, "pass", f"{_name(rs.path)} lets zone {e.zone} reach only its allow list "
                    f"({', '.join(str(n) for n in e.allow) or 'nothing'})", [], config=rs.path, zone=e.zone))
    return findings


@check(IT_OT_OPEN)
def it_ot_open(ctx) -> list[Finding]:
    site = ctx.site
    it = {z.name for z in site.zones if z.is_it}
    ot = {z.name for z in site.zones if z.is_ot}
    if not it or not ot:
        raise NotRun("the site file declares no office/guest zone or no OT zone")
    findings = []
    for rs in rulesets(ctx):
        r = _reach(ctx, rs)
        bad = False
        for (a, b), classes in sorted(r.pairs.items()):
            if a not in it or b not in ot or not classes:
                continue
            bad = True
            for p in classes:
                declared = not _undeclared(site, a, b, p)
                findings.append(Finding.from_meta(
                    IT_OT_OPEN, "fail", f"{_where(p.rule, rs)} lets {a} reach OT zone {b} directly: {p.service()} "
                    f"({_net(p.src)} -> {_net(p.dst)}){' (declared as a conduit)' if declared else ''}",
                    [], [rule_evidence(rs, p.rule, p.witness)], config=rs.path, from_zone=a, to_zone=b,
                    service=p.service(), declared=declared, witness=describe(p.witness)))
        if not bad:
            findings.append(Finding.from_meta(
                IT_OT_OPEN, "pass", f"{_name(rs.path)} permits no connection from {', '.join(sorted(it))} to "
                f"{', '.join(sorted(ot))}", [], config=rs.path))
    return findings


def _entry_services(entry) -> list[tuple[str, int | None]]:
    from plantguard.site.vocabulary import _ports_of
    if entry.text == "any":
        return [("any", None)]
    if entry.ports is not None:
        return [(entry.l4, entry.ports[0])]
    if entry.name == "icmp":
        return [("icmp", None)]
    return sorted(_ports_of(entry.name)) if entry.name else []


def _class_has(p: Permitted, proto: str, port: int | None) -> bool:
    if proto == "any":
        return True
    if p.protocol != proto:
        return False
    return port is None or p.ports is None or any(lo <= port <= hi for lo, hi in p.ports)


@check(CONDUIT_BLOCKED)
def conduit_blocked(ctx) -> list[Finding]:
    site = ctx.site
    if not site.conduits:
        raise NotRun("the site file declares no conduits")
    zones = zone_sets(site)
    findings = []
    for rs in rulesets(ctx):
        r = _reach(ctx, rs)
        for c in site.conduits:
            if c.src not in zones or c.dst not in zones:
                continue
            directions = [(c.src, c.dst)] + ([(c.dst, c.src)] if c.bidirectional else [])
            blocked, open_ = [], []
            for a, b in directions:
                for entry in c.allow:       # a named service is open when any of its ports is
                    svcs = _entry_services(entry)
                    if not svcs or any(_class_has(p, proto, port) for proto, port in svcs
                                       for p in r.pairs.get((a, b), ())):
                        open_.append(entry.text)
                        continue
                    proto, port = svcs[0]
                    w = _witness(zones[a], zones[b], "tcp" if proto == "any" else proto, port)
                    blocked.append((a, b, entry.text, w, evaluate(rs, w)))
            for a, b, svc, w, v in blocked:
                findings.append(Finding.from_meta(
                    CONDUIT_BLOCKED, "fail", f"Conduit {a} -> {b} allows {svc}, but {_where(v.rule, rs)} "
                    f"{v.action}s it", [], [verdict_evidence(rs, v, w)], config=rs.path, from_zone=a,
                    to_zone=b, service=svc, witness=describe(w)))
            if not blocked:
                findings.append(Finding.from_meta(
                    CONDUIT_BLOCKED, "pass", f"{_name(rs.path)} permits conduit {c.src} -> {c.dst} "
                    f"({', '.join(sorted(set(open_)))})", [], config=rs.path, from_zone=c.src, to_zone=c.dst))
    return findings


def _host(s: IPSet) -> str:
    first = next(iter(s.iter_ipranges()))
    return str(first[1] if first.size > 2 and first.version == 4 and first.first % 256 == 0 else first[0])


def _witness(src: IPSet, dst: IPSet, proto: str, port: int | None) -> Packet:
    if proto in PORT_PROTOCOLS:
        return Packet(_host(src), _host(dst), proto, dport=port if port is not None else 1)
    if proto == "icmp":
        return Packet(_host(src), _host(dst), "icmp", icmp_type=8)
    return Packet(_host(src), _host(dst), proto)


def _flow_packet(f) -> Packet | None:
    l4 = (f.l4 or "").lower()
    try:
        if l4 in PORT_PROTOCOLS:
            return Packet(f.client, f.server, l4, dport=int(f.port))
        if l4 in ("icmp", "icmpv6"):
            return Packet(f.client, f.server, l4, icmp_type=8 if l4 == "icmp" else 128)
    except (TypeError, ValueError):
        return None
    return None


@check(OBSERVED_NOT_PERMITTED)
def observed_not_permitted(ctx) -> list[Finding]:
    sets = rulesets(ctx)
    idx = index(ctx)
    site = idx.site
    bad: dict[tuple, dict] = {}
    seen = defaultdict(int)
    for f in idx.flows:
        if address_class(f.server) == "other":
            continue
        zc, zs = site.zone_of(f.client, f.vlan), site.zone_of(f.server, f.vlan)
        if zc is None or (zs is not None and zs.name == zc.name):
            continue
        pkt = _flow_packet(f)
        if pkt is None:
            continue
        for rs in sets:
            if not on_path(rs, pkt):
                continue
            seen[rs.path] += 1
            v = evaluate(rs, pkt)
            if v.action == "accept":
                continue
            g = bad.setdefault((f.client, f.server, rs.path), {"ev": EvidenceLog(), "services": set(), "cfg": None,
                                                               "zones": (zc.name, zs.name if zs else OUTSIDE)})
            g["services"].add(f"{f.l4}/{f.port}" + (f" ({f.app})" if f.app else ""))
            g["ev"].add_flow(f, flow_detail(f) + f" - {v.action} by {_where(v.rule, rs)}", f.packets)
            g["cfg"] = g["cfg"] or verdict_evidence(rs, v, pkt)
    if not seen:
        raise NotRun("no captured flow crosses zones through the configured firewall")
    findings = []
    kept, rest = top(bad, lambda g: g["ev"].events)
    for (client, server, path), g in kept:
        a, b = g["zones"]
        findings.append(Finding.from_meta(
            OBSERVED_NOT_PERMITTED, "fail",
            f"{idx.label(client)} ({a}) reached {idx.label(server)} ({b}) on {', '.join(sorted(g['services'])[:5])}, "
            f"which {_name(path)} would drop", [client, server], g["ev"].items + [g["cfg"]], config=path,
            services=sorted(g["services"])[:50], events=g["ev"].events))
    if rest:
        findings.append(rest_finding(OBSERVED_NOT_PERMITTED, rest, lambda k, g: list(k[:2]),
                                     lambda g: g["ev"].events, "host pairs the firewall would drop"))
    for path, n in sorted(seen.items()):
        if not any(k[2] == path for k in bad):
            findings.append(Finding.from_meta(
                OBSERVED_NOT_PERMITTED, "pass", f"All {plural(n, 'captured flow')} crossing zones are permitted by {_name(path)}",
                [], config=path, flows=n))
    return findings


def reachable_chains(rs: Ruleset) -> set[str]:
    """The chains a packet on the filtered paths can enter: the bound ones and their jump targets."""
    todo = [b.chain for b in rs.bindings] or [c.name for c in rs.chains.values() if c.hook == "forward"]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in rs.chains:
            continue
        seen.add(name)
        todo += [r.target for r in rs.chains[name].rules if r.target]
    return seen


def _space(s: IPSet | None, negated: bool, versions) -> IPSet:
    whole = IPSet()
    for v in versions:
        whole |= WHOLE[v]
    if s is None:
        return whole
    return whole - s if negated else s


def _iface_for(pattern: str | None, negated: bool) -> str | None:
    if pattern is None:
        return None
    if negated:
        return "plantguard-none0"
    return pattern[:-1] + "0" if pattern.endswith(("+", "*")) else pattern


def _note_if(rule: Rule, hit: list, r: Rule) -> None:
    if r is rule:
        hit.append(r)


def shadowing(rs: Ruleset, rule: Rule, cuts, svcs, versions, limit: int = MAX_SHADOW_CLASSES):
    """(reached, the rules that decide its packets instead, classes tried, cut short)."""
    m, neg = rule.match, rule.match.negate
    states = (sorted(STATES - m.states) if "states" in neg else sorted(m.states)) if m.states else ["new"]
    srcs = intervals(_space(m.src, "src" in neg, versions), cuts)
    dsts = intervals(_space(m.dst, "dst" in neg, versions), cuts)
    ins, outs = _iface_for(m.in_iface, "in_iface" in neg), _iface_for(m.out_iface, "out_iface" in neg)
    deciders, n, seen = {}, 0, set()
    every = [r for c in rs.chains.values() for r in c.rules]
    for s in srcs:
        s_addr = (s[0], pick_addr(*s))
        keep_s = [r for r in every if address_fits(r, "src", s_addr)]
        for d in dsts:
            if s[0] != d[0]:
                continue
            # pieces passing the same rules' address tests get the same verdicts: try one of them
            keep = tuple(id(r) for r in keep_s if address_fits(r, "dst", (d[0], pick_addr(*d))))
            first = placed(rs, class_packet(s, d, svcs[0]))
            keep = (keep, first.in_iface, first.out_iface)
            if keep in seen:
                continue
            seen.add(keep)
            for svc in svcs:
                for state in states[:2]:
                    pkt = placed(rs, class_packet(s, d, svc))
                    pkt = replace(pkt, state=state, in_iface=ins or pkt.in_iface, out_iface=outs or pkt.out_iface)
                    if not rule_matches(rule, pkt):
                        continue
                    n += 1
                    if n > limit:
                        return False, deciders, n, True
                    hit: list[Rule] = []
                    v = evaluate(rs, pkt, trace=partial(_note_if, rule, hit))
                    if hit:
                        return True, deciders, n, False
                    if v.rule is not None:
                        deciders.setdefault(id(v.rule), v.rule)
    return False, deciders, n, False


@check(SHADOWED)
def shadowed_rule(ctx) -> list[Finding]:
    findings = []
    for rs in rulesets(ctx):
        cuts, svcs = address_cuts(rs), services(rs)
        versions = [4] + ([6] if cuts[6] else [])
        judged, undecided = 0, 0
        for name in sorted(reachable_chains(rs)):
            for rule in rs.chains[name].rules:
                if rule.action == "continue":
                    continue
                reached, deciders, n, short = shadowing(rs, rule, cuts, svcs, versions)
                if short:
                    undecided += 1
                    continue
                if reached or n == 0:
                    judged += reached
                    continue
                judged += 1
                by = sorted(deciders.values(), key=lambda r: r.origin.line)
                findings.append(Finding.from_meta(
                    SHADOWED, "fail", f"{_cite(rule.origin)} ({rule.action}) is never reached: "
                    f"{', '.join(_cite(r.origin) for r in by[:3]) or 'earlier rules'} decide{'s' if len(by) == 1 else ''} "
                    "all its packets",
                    [], [rule_evidence(rs, rule, None)] + [rule_evidence(rs, r, None) for r in by[:5]],
                    config=rs.path, chain=name, line=rule.origin.line, classes=n))
        if not any(f.extra.get("config") == rs.path for f in findings):
            note = f"; {plural(undecided, 'rule')} too broad to decide" if undecided else ""
            findings.append(Finding.from_meta(
                SHADOWED, "pass", f"Every rule of {_name(rs.path)} on the filtered paths can be reached "
                f"({plural(judged, 'rule')} judged{note})", [], config=rs.path, undecided=undecided))
    return findings


def is_any_any(rule: Rule) -> bool:
    m = rule.match
    if rule.action != "accept" or m.negate or m.in_iface or m.out_iface:
        return False
    if m.protocols is not None or m.dport is not None or m.sport is not None or m.icmp_types is not None:
        return False
    if m.states is not None and "new" not in m.states:
        return False
    return all(s is None or s.issuperset(WHOLE[4]) for s in (m.src, m.dst))


@check(ANY_ANY)
def any_any(ctx) -> list[Finding]:
    findings = []
    for rs in rulesets(ctx):
        hits = [(name, r) for name in sorted(reachable_chains(rs)) for r in rs.chains[name].rules if is_any_any(r)]
        for name, r in hits:
            findings.append(Finding.from_meta(
                ANY_ANY, "fail", f"{_cite(r.origin)} in chain {name} permits any source to any destination on any service",
                [], [rule_evidence(rs, r, None)], config=rs.path, chain=name, line=r.origin.line))
        if not hits:
            findings.append(Finding.from_meta(ANY_ANY, "pass", f"No rule of {_name(rs.path)} permits any to any", [],
                                              config=rs.path))
    return findings
