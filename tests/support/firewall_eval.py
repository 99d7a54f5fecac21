"""A minimal first-match evaluator over firewall.model for the Linux parser tests (the product's
own evaluator is firewall/evaluate.py, owned by the reachability work): what the forward path
does with a packet. Every forward binding is walked in order; a drop or reject in any is final,
an accept passes the packet to the next one (nftables base chains on one path)."""
from __future__ import annotations

from netaddr import IPAddress

from plantguard.firewall.model import Match, Packet, Ruleset

PORTS = ("tcp", "udp", "sctp")


def _iface(pattern: str, name: str | None) -> bool:
    if name is None:
        return False
    if pattern.endswith(("+", "*")):
        return name.startswith(pattern[:-1])
    return name == pattern


def _ports(ranges, port) -> bool:
    return port is not None and any(lo <= port <= hi for lo, hi in ranges)


def matches(m: Match, p: Packet) -> bool:
    proto = "icmpv6" if p.protocol == "icmp" and ":" in p.dst else p.protocol
    icmp_type = p.icmp_type if p.icmp_type is not None else (128 if proto == "icmpv6" else 8)
    tests = {
        "src": (m.src, lambda v: IPAddress(p.src) in v),
        "dst": (m.dst, lambda v: IPAddress(p.dst) in v),
        "protocols": (m.protocols, lambda v: proto in v),
        "sport": (m.sport, lambda v: proto in PORTS and _ports(v, p.sport)),
        "dport": (m.dport, lambda v: proto in PORTS and _ports(v, p.dport)),
        "icmp_types": (m.icmp_types, lambda v: proto.startswith("icmp") and icmp_type in v),
        "states": (m.states, lambda v: p.state in v),
        "in_iface": (m.in_iface, lambda v: _iface(v, p.in_iface)),
        "out_iface": (m.out_iface, lambda v: _iface(v, p.out_iface)),
    }
    for name, (value, test) in tests.items():
        if value is not None and test(value) == (name in m.negate):
            return False
    return True


def _chain(rs: Ruleset, name: str, p: Packet, depth: int = 0) -> str | None:
    """The chain's decision, or None when it falls off its end / returns."""
    assert depth < 32, "jump loop"
    for rule in rs.chains[name].rules:
        if not matches(rule.match, p):
            continue
        if rule.action in ("accept", "drop", "reject"):
            return rule.action
        if rule.action == "return":
            return None
        if rule.action == "jump":
            got = _chain(rs, rule.target, p, depth + 1)
            if got is not None:
                return got
        if rule.action == "goto":
            return _chain(rs, rule.target, p, depth + 1)
    return None


def forward(rs: Ruleset, p: Packet) -> str:
    """accept, drop or reject for a routed packet."""
    for binding in rs.bindings:
        if binding.direction != "forward":
            continue
        chain = rs.chains[binding.chain]
        got = _chain(rs, chain.name, p) or chain.policy or "accept"
        if got != "accept":
            return got
    return "accept"
