"""One rule model for every firewall format (issue 15). Each parser (firewall/parsers/*.py) turns
its vendor's configuration into a `Ruleset`; reachability, the firewall.* checks, `firewall
explain` and the kernel proof read only this model, never a vendor's text.

The model is ordered first-match rules in chains, as packet filters evaluate them:

- a `Match` is a conjunction over header fields; a field left as None matches anything. Address
  fields are netaddr.IPSet (IPv4 and IPv6 in one set); ports are inclusive (low, high) ranges;
  a `negate` entry names the fields whose test is inverted (iptables `! -s`, nft `!=`);
- a `Rule` is a Match and a verdict: accept, drop, reject, jump/goto a chain, return, or
  `continue` for rules that do not decide (log, counters, marks: kept so line numbers stay
  honest);
- a `Chain` has its rules and, for a base chain, a hook and a default policy;
- `Binding`s say where a chain filters traffic: a Linux base chain on the forward hook filters
  everything routed through the host; a Cisco/FortiOS/pfSense list filters one interface (or a
  zone pair) in one direction;
- `Unsupported` is every line or element a parser read and could not model, with its line
  number and why: never dropped silently (the checks report them).

Everything carries its `Origin` (file, line, the text as written) so a finding can cite the rule
that decides."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from netaddr import IPSet

Action = Literal["accept", "drop", "reject", "jump", "goto", "return", "continue"]
TERMINAL = frozenset({"accept", "drop", "reject"})
STATES = frozenset({"new", "established", "related", "invalid", "untracked"})
Ports = tuple[tuple[int, int], ...]         # inclusive (low, high) ranges, 0..65535
ANY_PORT: Ports = ((0, 65535),)


@dataclass(frozen=True)
class Origin:
    """Where a rule or object was written: the file, its 1-based line, the text as written."""
    path: str
    line: int
    text: str = ""

    def cite(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Match:
    """What a rule matches; None is any. protocols are lower-case names (tcp, udp, icmp, icmpv6,
    sctp, ...) or IP protocol numbers as strings; ports only narrow tcp/udp/sctp packets."""
    src: IPSet | None = None
    dst: IPSet | None = None
    protocols: frozenset[str] | None = None
    sport: Ports | None = None
    dport: Ports | None = None
    icmp_types: frozenset[int] | None = None
    states: frozenset[str] | None = None    # conntrack states (STATES); None: any state
    in_iface: str | None = None             # interface names; a trailing '+' or '*' is a prefix
    out_iface: str | None = None
    negate: frozenset[str] = frozenset()    # names of the fields above whose test is inverted


@dataclass(frozen=True)
class Rule:
    match: Match
    action: Action
    origin: Origin
    target: str | None = None               # the chain of a jump / goto
    comment: str | None = None
    nat: str | None = None                  # a NAT rule's translation, noted (not applied to filtering)


@dataclass
class Chain:
    name: str
    rules: list[Rule] = field(default_factory=list)
    hook: str | None = None                 # base chains: prerouting, input, forward, output, postrouting
    policy: Literal["accept", "drop"] | None = None   # base chains' default verdict; None: a user chain
    family: str = "inet"                    # ip, ip6, inet (both), or the vendor's own word
    origin: Origin | None = None


@dataclass(frozen=True)
class Binding:
    """Where a chain filters: on the forward path of a host (interface None), or on one interface
    / zone in one direction ("in": packets arriving on it, "out": leaving through it). from_zone /
    to_zone carry a vendor's own zone names (FortiOS srcintf/dstintf, Cisco zone-pairs)."""
    chain: str
    direction: Literal["in", "out", "forward"] = "forward"
    interface: str | None = None
    from_zone: str | None = None
    to_zone: str | None = None


@dataclass(frozen=True)
class Unsupported:
    origin: Origin
    why: str


@dataclass
class Ruleset:
    """One configuration file (plus its companion files, e.g. `ipset save` output), parsed."""
    path: str
    format: str                             # iptables, nftables, cisco-ios, cisco-asa, fortios, pfsense
    chains: dict[str, Chain] = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)
    interfaces: dict[str, IPSet] = field(default_factory=dict)   # interface -> the networks on it
    sets: dict[str, IPSet] = field(default_factory=dict)         # named address sets (ipset, nft, object-groups)
    nat: list[Rule] = field(default_factory=list)                # NAT rules, noted only
    unsupported: list[Unsupported] = field(default_factory=list)
    lines: int = 0                          # lines (or elements) read, for "0 unreported" accounting
    hostname: str | None = None
    zones: dict[str, tuple[str, ...]] = field(default_factory=dict)   # zone -> member interfaces


@dataclass(frozen=True)
class Packet:
    """One concrete packet a question is about (and a witness is): new connection by default."""
    src: str
    dst: str
    protocol: str = "tcp"
    sport: int = 40000
    dport: int | None = None
    icmp_type: int | None = None
    state: str = "new"
    in_iface: str | None = None
    out_iface: str | None = None


@dataclass(frozen=True)
class Verdict:
    """What a ruleset does with a packet and why: the deciding rule (None: the chain policy or an
    implicit deny) and the path of chains walked."""
    action: Literal["accept", "drop", "reject"]
    rule: Rule | None
    chains: tuple[str, ...] = ()
    reason: str = ""
