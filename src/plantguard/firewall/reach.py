"""Exact reachability from a ruleset, with no solver: the header space (source, destination,
protocol, source and destination port, ICMP type) is cut at every boundary any rule or interface
network mentions, so that inside one piece every rule matches all of it or none of it; one
packet per piece, evaluated (evaluate.py), is then the verdict for the whole piece. Pieces with
the same deciding rule are merged back into product sets (sources x destinations x protocol x
ports) for the report, each with its lowest packet as the witness.

Only new connections are judged (state "new"; replies ride on conntrack). The number of pieces
evaluated is bounded (MAX_CLASSES per zone pair); a pair cut short says so in `notes`."""
from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field, replace

from netaddr import IPAddress, IPRange, IPSet

from plantguard.firewall.evaluate import (
    PORT_PROTOCOLS,
    address_in,
    evaluate,
    placed,
    protocol_name,
)
from plantguard.firewall.model import Packet, Ports, Rule, Ruleset

OUTSIDE = "outside"              # the name of "anything outside the site's zones"
MAX_CLASSES = 200_000            # pieces evaluated per zone pair before it is cut short
OTHER_PROTOCOL = "253"           # stands for every protocol no rule names (RFC 3692 experimental)
WHOLE = {4: IPSet(["0.0.0.0/0"]), 6: IPSet(["::/0"])}
Interval = tuple[int, int, int]  # (IP version, first, last) as integers


@dataclass(frozen=True)
class Permitted:
    """One product set of new connections the ruleset accepts, and the rule that accepts them
    (None: a policy or no filter on the path). ports: destination port ranges for tcp/udp/sctp,
    ICMP type ranges for icmp/icmpv6, None for other protocols."""
    src: IPSet
    dst: IPSet
    protocol: str
    ports: Ports | None
    sport: Ports | None
    rule: Rule | None
    reason: str
    witness: Packet

    def service(self) -> str:
        return service_text(self.protocol, self.ports)


@dataclass
class Reach:
    pairs: dict[tuple[str, str], list[Permitted]] = field(default_factory=dict)
    classes: int = 0                     # pieces evaluated in all
    notes: list[str] = field(default_factory=list)


def service_text(protocol: str, ports: Ports | None) -> str:
    if protocol == OTHER_PROTOCOL:
        return "any other IP protocol"
    if not ports:
        return protocol
    word = "type " if protocol in ("icmp", "icmpv6") else ""
    return f"{protocol}/{word}" + ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in ports)


def _sets_of(ruleset: Ruleset):
    for chain in ruleset.chains.values():
        for r in chain.rules:
            yield from (s for s in (r.match.src, r.match.dst) if s is not None)
    yield from ruleset.interfaces.values()


def address_cuts(ruleset: Ruleset) -> dict[int, list[int]]:
    """Every address where some rule's (or interface's) address set starts or stops, per version."""
    cuts: dict[int, set[int]] = {4: set(), 6: set()}
    for s in _sets_of(ruleset):
        for r in s.iter_ipranges():
            cuts[r.version].update((r.first, r.last + 1))
    return {v: sorted(c) for v, c in cuts.items()}


def intervals(space: IPSet, cuts: dict[int, list[int]]) -> list[Interval]:
    """`space` cut at `cuts`: pieces inside which every rule's address test is constant."""
    out = []
    for r in space.iter_ipranges():
        lo = r.first
        for c in cuts[r.version]:
            if lo < c <= r.last:
                out.append((r.version, lo, c - 1))
                lo = c
        out.append((r.version, lo, r.last))
    return out


def _range_cuts(values, top: int) -> list[tuple[int, int]]:
    points = sorted({0, *(v for v in values if 0 < v <= top)})
    return [(a, b - 1) for a, b in zip(points, points[1:] + [top + 1])]


def services(ruleset: Ruleset) -> list[tuple[str, tuple[int, int] | None, tuple[int, int] | None]]:
    """(protocol, destination port or ICMP type piece, source port piece) classes."""
    protos = {"tcp", "udp", "icmp", OTHER_PROTOCOL}
    dports, sports, types = [], [], []
    for chain in ruleset.chains.values():
        for r in chain.rules:
            m = r.match
            protos.update(protocol_name(p) for p in (m.protocols or ()))
            for lo, hi in m.dport or ():
                dports += [lo, hi + 1]
            for lo, hi in m.sport or ():
                sports += [lo, hi + 1]
            for t in m.icmp_types or ():
                types += [t, t + 1]
    if any(v == 6 for s in _sets_of(ruleset) for v in {r.version for r in s.iter_ipranges()}):
        protos.add("icmpv6")
    out = []
    for p in sorted(protos):
        if p in PORT_PROTOCOLS:
            out += [(p, d, s) for d in _range_cuts(dports, 65535) for s in _range_cuts(sports, 65535)]
        elif p in ("icmp", "icmpv6"):
            out += [(p, t, None) for t in _range_cuts(types, 255)]
        else:
            out.append((p, None, None))
    return out


def _ip(version: int, value: int) -> str:
    return str(ipaddress.ip_address(value) if version == 4 else ipaddress.IPv6Address(value))


def pick_addr(version: int, lo: int, hi: int) -> int:
    """A piece's witness address: its lowest, but not a network's .0 or 0.0.0.0/8 when the piece
    holds better (every address of a piece gets the same verdict)."""
    if version == 4:
        if lo < 1 << 24 <= hi:
            return 1 << 24
        if lo % 256 == 0 and hi - lo >= 3:
            return lo + 1
    return lo


def _pick_port(lo: int, hi: int, prefer: int | None = None) -> int:
    if prefer is not None and lo <= prefer <= hi:
        return prefer
    return 1 if lo == 0 and hi >= 1 else lo


def class_packet(s: Interval, d: Interval, svc) -> Packet:
    """The witness packet of a piece (source interval, destination interval, service class)."""
    proto, piece, sport = svc
    src, dst = _ip(s[0], pick_addr(*s)), _ip(d[0], pick_addr(*d))
    if proto in PORT_PROTOCOLS:
        return Packet(src, dst, proto, sport=_pick_port(*sport, prefer=40000), dport=_pick_port(*piece))
    if proto in ("icmp", "icmpv6"):
        icmp = 8 if proto == "icmp" else 128
        return Packet(src, dst, proto, icmp_type=icmp if piece[0] <= icmp <= piece[1] else piece[0])
    return Packet(src, dst, proto)


def _merge(ranges) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def _ipset(ivs) -> IPSet:
    s = IPSet()
    for v, lo, hi in ivs:
        s.add(IPRange(IPAddress(lo, v), IPAddress(hi, v)))
    return s


def address_fits(rule: Rule, name: str, addr: tuple[int, int]) -> bool:
    """Whether the address passes the rule's src or dst test (`name`), negation included."""
    s = getattr(rule.match, name)
    return s is None or address_in(s, addr) != (name in rule.match.negate)


def _narrowed(ruleset: Ruleset, keep: set[int]) -> Ruleset:
    """The ruleset with only the rules in `keep` (by id): those whose address tests a piece passes."""
    chains = {n: replace(c, rules=[r for r in c.rules if id(r) in keep]) for n, c in ruleset.chains.items()}
    return replace(ruleset, chains=chains)


def permitted(ruleset: Ruleset, src_space: IPSet, dst_space: IPSet, limit: int = MAX_CLASSES):
    """(the permitted product sets, pieces evaluated, whether the limit cut it short).

    Two address pieces whose packets pass the same rules' address tests (and enter and leave by
    the same interfaces) get the same verdict for every service: the services are evaluated once
    per such set of rules, on the ruleset narrowed to them, and the verdicts reused."""
    cuts = address_cuts(ruleset)
    srcs, dsts, svcs = intervals(src_space, cuts), intervals(dst_space, cuts), services(ruleset)
    every = [r for c in ruleset.chains.values() for r in c.rules]
    atoms = []                          # (src iv, dst iv, protocol, sport piece, dport piece, rule)
    rules: dict[int, tuple] = {}
    done: dict[tuple, list] = {}        # (rules kept, interfaces) -> the accepted services
    n, short = 0, False
    for s in srcs:
        s_addr = (s[0], pick_addr(*s))
        keep_s = [r for r in every if address_fits(r, "src", s_addr)]
        for d in dsts:
            if s[0] != d[0] or short:
                continue
            keep = tuple(id(r) for r in keep_s if address_fits(r, "dst", (d[0], pick_addr(*d))))
            first = placed(ruleset, class_packet(s, d, svcs[0]))
            key = (keep, first.in_iface, first.out_iface)
            accepted = done.get(key)
            if accepted is None:
                if n + len(svcs) > limit:
                    short = True
                    continue
                narrowed, accepted = _narrowed(ruleset, set(keep)), []
                for svc in svcs:
                    v = evaluate(narrowed, class_packet(s, d, svc))
                    if v.action == "accept":
                        rules.setdefault(id(v.rule), (v.rule, v.reason))
                        accepted.append((svc, id(v.rule)))
                n += len(svcs)
                done[key] = accepted
            atoms += [(s, d, svc[0], svc[2], svc[1], rid) for svc, rid in accepted]
    return _merged(atoms, rules), n, short


def _merged(atoms, rules) -> list[Permitted]:
    by_ports = defaultdict(list)
    for s, d, proto, sport, piece, rid in atoms:
        by_ports[(s, d, proto, sport, rid)].append(piece)
    by_src = defaultdict(list)
    for (s, d, proto, sport, rid), pieces in by_ports.items():
        ports = _merge(p for p in pieces if p is not None) or None
        by_src[(d, proto, sport, ports, rid)].append(s)
    by_dst = defaultdict(list)
    for (d, proto, sport, ports, rid), ss in by_src.items():
        by_dst[(tuple(sorted(ss)), proto, sport, ports, rid)].append(d)
    out = []
    for (ss, proto, sport, ports, rid), ds in by_dst.items():
        ds = sorted(ds)
        rule, reason = rules[rid]
        witness = class_packet(ss[0], ds[0], (proto, ports[0] if ports else None, sport or (0, 65535)))
        out.append(Permitted(_ipset(ss), _ipset(ds), proto, ports,
                             None if sport in (None, (0, 65535)) else (sport,), rule, reason, witness))
    out.sort(key=lambda p: (p.rule.origin.line if p.rule else 0, p.protocol, p.ports or ()))
    return out


def zone_sets(site) -> dict[str, IPSet]:
    """The site's zones as address sets (name -> IPSet)."""
    return {z.name: IPSet(str(n) for n in z.networks) for z in site.zones if z.networks}


def outside_of(zones: dict[str, IPSet]) -> IPSet:
    """Every address no zone holds (IPv6 too when a zone has IPv6 networks)."""
    inside = IPSet()
    for s in zones.values():
        inside |= s
    versions = {r.version for r in inside.iter_ipranges()} | {4}
    space = IPSet()
    for v in versions:
        space |= WHOLE[v]
    return space - inside


def reach(ruleset: Ruleset, zones: dict[str, IPSet], limit: int = MAX_CLASSES) -> Reach:
    """What the ruleset permits between every two zones, and from every zone to OUTSIDE."""
    out = Reach()
    outside = outside_of(zones)
    for a, a_set in zones.items():
        targets = [(b, b_set) for b, b_set in zones.items() if b != a] + [(OUTSIDE, outside)]
        for b, b_set in targets:
            classes, n, short = permitted(ruleset, a_set, b_set, limit)
            out.pairs[(a, b)] = classes
            out.classes += n
            if short:
                out.notes.append(f"{ruleset.path}: {a} -> {b} cut short after {limit:,} header-space "
                                 "classes; what is listed is exact, what is not may be missing")
    return out
