"""First-match evaluation of one model.Packet through a model.Ruleset, as the packet filter would:
the chains bound where the packet passes (the forward path of a Linux host; the interface an
address lives on, in and out; a vendor's zone pair), jumps, gotos and returns (a loop ends the
walk with a drop, said in the reason), rules that do not decide, then the chain's policy or the
implicit deny of an access list. `explain()` says the same in words, citing file:line and the
rule as written. Reachability (reach.py) calls `evaluate` once per header-space class."""
from __future__ import annotations

import ipaddress
from bisect import bisect_right

from netaddr import IPSet

from plantguard.firewall.model import TERMINAL, Chain, Packet, Rule, Ruleset, Verdict

MAX_DEPTH = 64                                 # nested jumps before the walk is called a loop
PORT_PROTOCOLS = frozenset({"tcp", "udp", "sctp", "udplite", "dccp"})
PROTOCOL_NUMBERS = {"icmp": "1", "igmp": "2", "tcp": "6", "udp": "17", "gre": "47", "esp": "50",
                    "ah": "51", "icmpv6": "58", "ipv6-icmp": "58", "sctp": "132", "udplite": "136",
                    "dccp": "33", "ospf": "89", "vrrp": "112", "pim": "103"}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOL_NUMBERS.items() if k != "ipv6-icmp"}


def protocol_name(p: str | int | None) -> str | None:
    """One spelling per protocol: the lower-case name when it has one, else the number."""
    if p is None:
        return None
    s = str(p).strip().lower()
    return PROTOCOL_NAMES.get(s, "icmpv6" if s == "ipv6-icmp" else s)


class _Ranges:
    """An IPSet as sorted integer ranges per IP version: membership is a bisect, not a lookup in
    netaddr's CIDR list (reach.py evaluates tens of thousands of packets)."""
    __slots__ = ("highs", "lows")

    def __init__(self, s: IPSet):
        self.lows: dict[int, list[int]] = {4: [], 6: []}
        self.highs: dict[int, list[int]] = {4: [], 6: []}
        for r in s.iter_ipranges():
            self.lows[r.version].append(r.first)
            self.highs[r.version].append(r.last)

    def __contains__(self, addr) -> bool:
        version, value = addr
        i = bisect_right(self.lows[version], value) - 1
        return i >= 0 and value <= self.highs[version][i]


_compiled: dict[int, tuple] = {}     # id(Match's IPSet) -> (_Ranges, the IPSet kept alive)


def _ranges(s: IPSet) -> _Ranges:
    hit = _compiled.get(id(s))
    if hit is None or hit[1] is not s:
        hit = (_Ranges(s), s)
        if len(_compiled) > 20_000:
            _compiled.clear()
        _compiled[id(s)] = hit
    return hit[0]


def address_in(s: IPSet, addr: tuple[int, int]) -> bool:
    """Whether (IP version, integer address) is in the set."""
    return addr in _ranges(s)


def _addr(ip: str) -> tuple[int, int]:
    a = ipaddress.ip_address(ip)
    return a.version, int(a)


def iface_matches(pattern: str, name: str | None) -> bool:
    if name is None:
        return False
    if pattern.endswith(("+", "*")):
        return name.startswith(pattern[:-1])
    return name == pattern


def _in_ports(port: int | None, ranges) -> bool:
    return port is not None and any(lo <= port <= hi for lo, hi in ranges)


def rule_matches(rule: Rule, p: Packet, src=None, dst=None) -> bool:
    """Whether the packet fits the rule's match (src/dst: the packet's addresses as (version, int),
    passed in when the caller has them already)."""
    m = rule.match
    neg = m.negate
    proto = protocol_name(p.protocol)
    tests = []
    if m.src is not None:
        tests.append(("src", (src or _addr(p.src)) in _ranges(m.src)))
    if m.dst is not None:
        tests.append(("dst", (dst or _addr(p.dst)) in _ranges(m.dst)))
    if m.protocols is not None:
        tests.append(("protocols", proto in {protocol_name(x) for x in m.protocols}))
    for name, want, have in (("sport", m.sport, p.sport), ("dport", m.dport, p.dport)):
        if want is not None:
            if proto not in PORT_PROTOCOLS:
                return False                    # a port test never fits a packet without ports
            tests.append((name, _in_ports(have, want)))
    if m.icmp_types is not None:
        if proto not in ("icmp", "icmpv6"):
            return False
        tests.append(("icmp_types", (8 if p.icmp_type is None else p.icmp_type) in m.icmp_types))
    if m.states is not None:
        tests.append(("states", p.state in m.states))
    if m.in_iface is not None:
        tests.append(("in_iface", iface_matches(m.in_iface, p.in_iface)))
    if m.out_iface is not None:
        tests.append(("out_iface", iface_matches(m.out_iface, p.out_iface)))
    return all(ok != (name in neg) for name, ok in tests)


def iface_of(ruleset: Ruleset, ip: str) -> str | None:
    """The interface whose networks hold `ip` (the most specific one), or None."""
    a = _addr(ip)
    best, best_size = None, None
    for name, nets in ruleset.interfaces.items():
        if a in _ranges(nets):
            size = nets.size
            if best_size is None or size < best_size:
                best, best_size = name, size
    return best


def placed(ruleset: Ruleset, p: Packet) -> Packet:
    """The packet with its in / out interfaces filled from the ruleset's interface networks."""
    if ruleset.interfaces and (p.in_iface is None or p.out_iface is None):
        from dataclasses import replace
        return replace(p, in_iface=p.in_iface or iface_of(ruleset, p.src),
                       out_iface=p.out_iface or iface_of(ruleset, p.dst))
    return p


def _zone_matches(ruleset: Ruleset, zone: str | None, iface: str | None) -> bool:
    """A binding's vendor zone against the packet's interface: the interface's own name, 'any',
    or a zone whose member interfaces (the parser's Ruleset.zones, when it has one) hold it."""
    if zone is None or zone.lower() == "any":
        return True
    if iface is None:
        return False
    members = (getattr(ruleset, "zones", None) or {}).get(zone)
    return zone == iface or (members is not None and iface in members)


def bound_chains(ruleset: Ruleset, p: Packet) -> list[str]:
    """The chains that filter this packet, in the order it meets them."""
    if not ruleset.bindings:     # a Linux ruleset without explicit bindings: its forward base chains
        return [c.name for c in ruleset.chains.values() if c.hook == "forward"]
    out = []
    for direction in ("forward", "in", "out"):
        for b in ruleset.bindings:
            if b.direction != direction or b.chain not in ruleset.chains:
                continue
            if direction == "in" and b.interface is not None and b.interface != p.in_iface:
                continue
            if direction == "out" and b.interface is not None and b.interface != p.out_iface:
                continue
            if not (_zone_matches(ruleset, b.from_zone, p.in_iface) and _zone_matches(ruleset, b.to_zone, p.out_iface)):
                continue
            if direction == "forward" and b.interface is not None and b.interface not in (p.in_iface, p.out_iface):
                continue
            out.append(b.chain)
    return out


def on_path(ruleset: Ruleset, p: Packet) -> bool:
    """Whether this ruleset's device sits between the two ends: a host firewall without interface
    networks is taken to see everything; one with them sees packets from or to its networks."""
    if not ruleset.interfaces:
        return True
    q = placed(ruleset, p)
    return q.in_iface is not None or q.out_iface is not None


def _end_of_base(ruleset: Ruleset, chain: Chain) -> tuple[str, str]:
    if chain.policy is not None:
        return chain.policy, f"the policy of chain {chain.name} ({chain.policy})"
    if chain.hook is not None:      # a Linux base chain without a stated policy accepts
        return "accept", f"chain {chain.name} has no policy: the kernel's default (accept)"
    return "drop", f"no rule of {chain.name} matched: the implicit deny at the end of the list"


def _walk(ruleset: Ruleset, name: str, p: Packet, src, dst, stack: list[str], trace):
    """(verdict action | None for 'fell off / returned', deciding rule, reason)."""
    chain = ruleset.chains.get(name)
    if chain is None:
        return "drop", None, f"jump to an undefined chain {name}"
    stack.append(name)
    for rule in chain.rules:
        if not rule_matches(rule, p, src, dst):
            continue
        if trace is not None:
            trace(rule)
        if rule.action in TERMINAL:
            return rule.action, rule, "the first rule that matches"
        if rule.action == "continue":
            continue
        if rule.action == "return":
            return None, rule, "returned"
        target = rule.target or ""
        if target in stack or len(stack) >= MAX_DEPTH:
            return "drop", rule, f"jump loop through chain {target}: the walk stops (drop)"
        action, decided, why = _walk(ruleset, target, p, src, dst, stack, trace)
        if action is not None or rule.action == "goto":
            return action, decided, why      # the chains walked stay on the stack: the path
        stack.pop()
    return None, None, "end of chain"


def evaluate(ruleset: Ruleset, packet: Packet, trace=None) -> Verdict:
    """What the ruleset does with the packet. `trace(rule)` is called for every rule that matched
    on the way (shadowed-rule analysis uses it)."""
    p = placed(ruleset, packet)
    src, dst = _addr(p.src), _addr(p.dst)
    chains = bound_chains(ruleset, p)
    walked: list[str] = []
    last = None
    for name in chains:
        stack: list[str] = []
        action, rule, why = _walk(ruleset, name, p, src, dst, stack, trace)
        walked.extend(stack)
        if action is None:
            base = ruleset.chains[name]
            action, why = _end_of_base(ruleset, base)
            rule = None
        last = Verdict(action, rule, tuple(walked), why)
        if action != "accept":
            return last
    if last is None:
        return Verdict("accept", None, (), "no chain filters this path")
    return last


def describe(p: Packet) -> str:
    """A packet in one line: tcp 10.20.0.77:40000 -> 10.10.1.10:502 (new)."""
    if protocol_name(p.protocol) in PORT_PROTOCOLS:
        return f"{p.protocol} {p.src}:{p.sport} -> {p.dst}:{p.dport} ({p.state})"
    extra = f" type {p.icmp_type}" if p.icmp_type is not None else ""
    return f"{p.protocol}{extra} {p.src} -> {p.dst} ({p.state})"


def explain(ruleset: Ruleset, packet: Packet) -> str:
    """Which rule decides the packet and why, in words, citing file:line and the rule as written."""
    v = evaluate(ruleset, packet)
    head = f"{describe(packet)}: {v.action.upper()}"
    path = f" (chains: {' -> '.join(v.chains)})" if v.chains else ""
    if v.rule is not None:
        o = v.rule.origin
        return f"{head} by {o.cite()}{path}: {o.text.strip() or v.rule.action} - {v.reason}"
    return f"{head}{path}: {v.reason}"
