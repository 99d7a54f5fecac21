"""A tiny first-match evaluator over the rule model, for the vendor parser tests only (the
product's evaluator is firewall/evaluate.py). It walks one chain, follows jump/goto/return, and
answers the action and the deciding rule (None: the chain's policy)."""
from __future__ import annotations

from netaddr import IPAddress

from plantguard.firewall.model import Chain, Match, Packet, Rule, Ruleset

PORTED = {"tcp", "udp", "sctp"}


def _in_ports(port: int | None, ranges) -> bool:
    return port is not None and any(lo <= port <= hi for lo, hi in ranges)


def _iface(name: str | None, pattern: str) -> bool:
    if name is None:
        return False
    if pattern.endswith(("+", "*")):
        return name.startswith(pattern[:-1])
    return name == pattern


def matches(m: Match, p: Packet) -> bool:
    tests = {
        "src": None if m.src is None else IPAddress(p.src) in m.src,
        "dst": None if m.dst is None else IPAddress(p.dst) in m.dst,
        "protocols": None if m.protocols is None else p.protocol in m.protocols,
        "sport": None if m.sport is None else (p.protocol in PORTED and _in_ports(p.sport, m.sport)),
        "dport": None if m.dport is None else (p.protocol in PORTED and _in_ports(p.dport, m.dport)),
        "icmp_types": None if m.icmp_types is None else p.icmp_type in m.icmp_types,
        "states": None if m.states is None else p.state in m.states,
        "in_iface": None if m.in_iface is None else _iface(p.in_iface, m.in_iface),
        "out_iface": None if m.out_iface is None else _iface(p.out_iface, m.out_iface),
    }
    for name, result in tests.items():
        if result is None:
            continue
        if result == (name in m.negate):
            return False
    return True


def first_match(rs: Ruleset, chain: str, p: Packet) -> tuple[str, Rule | None]:
    """(action, deciding rule) for packet p entering `chain`."""
    got = _walk(rs, rs.chains[chain], p, depth=0)
    if got is None:
        return rs.chains[chain].policy or "accept", None
    return got


def _walk(rs: Ruleset, chain: Chain, p: Packet, depth: int):
    assert depth < 32, "jump loop"
    for rule in chain.rules:
        if not matches(rule.match, p):
            continue
        if rule.action in ("accept", "drop", "reject"):
            return rule.action, rule
        if rule.action == "return":
            return None
        if rule.action in ("jump", "goto"):
            got = _walk(rs, rs.chains[rule.target], p, depth + 1)
            if got is not None:
                return got
            if rule.action == "goto":
                return None
    if chain.policy is not None and depth == 0:
        return chain.policy, None
    return None
