"""`iptables-save` / `ip6tables-save` output (plus companion `ipset save` files) as a model.Ruleset.

- *filter: built-in chains INPUT/FORWARD/OUTPUT with their policy and hook (FORWARD is bound to
  the forward path), user chains, -j ACCEPT/DROP/REJECT/RETURN/<chain>, -g <chain>; LOG, NFLOG,
  MARK and the other targets that do not decide become action "continue";
- *nat: its rules are noted in Ruleset.nat (the translation in Rule.nat), not applied to filtering;
- *mangle / *raw / *security: chain declarations with an ACCEPT policy filter nothing and are
  read; any rule there (or a DROP policy) is Unsupported;
- matches -s/-d (`!`, comma lists), -p, -i/-o (`+` wildcard), tcp/udp --sport/--dport, multiport
  --sports/--dports, ranges a:b, state --state / conntrack --ctstate, set --match-set NAME src|dst,
  comment, icmp --icmp-type / icmp6 --icmpv6-type.

A rule with anything else (a match module, option or target not modelled) is recorded as
Unsupported with its line and why, and is LEFT OUT of its chain: keeping it would make the model
claim it matches more (or less) than the kernel does. The Unsupported entry says it was left out,
so every finding over that chain can warn that the chain is not fully modelled."""
from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from netaddr import AddrFormatError, IPNetwork, IPRange, IPSet

from plantguard.firewall.model import (
    STATES,
    Binding,
    Chain,
    Match,
    Origin,
    Ports,
    Rule,
    Ruleset,
    Unsupported,
)
from plantguard.firewall.parsers.ports import fold_addrs, fold_ports

HOOKS = {"INPUT": "input", "FORWARD": "forward", "OUTPUT": "output",
         "PREROUTING": "prerouting", "POSTROUTING": "postrouting"}
VERDICTS = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject", "RETURN": "return"}
# targets that let the packet go on to the next rule (or only act on the packet's marks / logs)
NON_DECIDING = frozenset({"LOG", "NFLOG", "ULOG", "MARK", "CONNMARK", "CLASSIFY", "TCPMSS", "TOS",
                          "DSCP", "AUDIT", "TRACE", "SET", "CT", "NOTRACK", "CHECKSUM", "TTL", "HL"})
NAT_TARGETS = frozenset({"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"})
PROTO_NAMES = {"1": "icmp", "6": "tcp", "17": "udp", "58": "icmpv6", "132": "sctp",
               "ipv6-icmp": "icmpv6", "icmp6": "icmpv6"}
ICMP_TYPES = {"echo-reply": 0, "pong": 0, "destination-unreachable": 3, "source-quench": 4,
              "redirect": 5, "echo-request": 8, "ping": 8, "router-advertisement": 9,
              "router-solicitation": 10, "time-exceeded": 11, "ttl-exceeded": 11,
              "parameter-problem": 12, "timestamp-request": 13, "timestamp-reply": 14}
ICMP6_TYPES = {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3,
               "ttl-exceeded": 3, "parameter-problem": 4, "echo-request": 128, "ping": 128,
               "echo-reply": 129, "pong": 129, "router-solicitation": 133, "router-advertisement": 134,
               "neighbour-solicitation": 135, "neighbor-solicitation": 135,
               "neighbour-advertisement": 136, "neighbor-advertisement": 136}
MODULES = frozenset({"tcp", "udp", "sctp", "multiport", "state", "conntrack", "set", "comment",
                     "icmp", "icmp6", "icmpv6"})
PORT_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})


class _Skip(Exception):
    """A rule the model cannot hold: why."""


def parse(path: str | Path, companions: Sequence[str | Path] = (), family: str | None = None) -> Ruleset:
    """Parse an iptables-save file and its `ipset save` companions; ValueError names a bad file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    sets_text = []
    for comp in companions:
        try:
            sets_text.append((str(comp), Path(comp).read_text(encoding="utf-8", errors="replace")))
        except OSError as exc:
            raise ValueError(f"{comp}: cannot read: {exc.strerror}") from None
    return parse_text(text, str(path), sets_text, family)


def parse_text(text: str, path: str, ipsets: Sequence[tuple[str, str]] = (), family: str | None = None) -> Ruleset:
    rs = Ruleset(path=path, format="iptables")
    for set_path, set_text in ipsets:
        _parse_ipset(set_text, set_path, rs)
    lines = text.splitlines()
    if not any(ln.startswith("*") for ln in lines):
        raise ValueError(f"{path}: not iptables-save output (no '*table' line)")
    if family is None:
        family = "ip6" if ("ip6tables-save" in text or _looks_v6(lines)) else "ip"
    table = None
    for no, raw in enumerate(lines, 1):
        rs.lines += 1
        line = raw.strip()
        origin = Origin(path, no, raw)
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        if line == "COMMIT":
            table = None
            continue
        if table is None:
            rs.unsupported.append(Unsupported(origin, "outside a *table ... COMMIT block"))
            continue
        if line.startswith(":"):
            _declare(rs, table, line, origin, family)
            continue
        if line.startswith("["):        # iptables-save -c: "[packets:bytes] -A ..."
            line = line.split("]", 1)[1].strip()
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            rs.unsupported.append(Unsupported(origin, f"unreadable line: {exc}"))
            continue
        if len(tokens) < 2 or tokens[0] not in ("-A", "--append"):
            rs.unsupported.append(Unsupported(origin, f"not a rule (-A CHAIN ...): {tokens[0] if tokens else ''}"))
            continue
        chain = tokens[1]
        if table not in ("filter", "nat"):
            rs.unsupported.append(Unsupported(origin, f"rules in the {table} table are not modelled (left out)"))
            continue
        try:
            rule = _rule(tokens[2:], origin, rs, table, family)
        except _Skip as why:
            rs.unsupported.append(Unsupported(origin, f"{why} (rule left out of chain {chain})"))
            continue
        if table == "nat":
            rs.nat.append(rule)
        elif chain not in rs.chains:
            rs.unsupported.append(Unsupported(origin, f"chain {chain} was not declared (rule left out)"))
        else:
            rs.chains[chain].rules.append(rule)
    for chain in rs.chains.values():
        for rule in chain.rules:
            if rule.action in ("jump", "goto") and rule.target not in rs.chains:
                rs.unsupported.append(Unsupported(rule.origin, f"target chain {rule.target} is not declared"))
    return rs


_V6_HINT = re.compile(r"(^|\s)(-[sd]\s+(!\s+)?[0-9A-Fa-f]*:|-m\s+icmp6|-p\s+(icmpv6|ipv6-icmp))")


def _looks_v6(lines: list[str]) -> bool:
    return any(ln.startswith("-A") and _V6_HINT.search(ln) for ln in lines)


def _declare(rs: Ruleset, table: str, line: str, origin: Origin, family: str) -> None:
    parts = line[1:].split()
    name, policy = parts[0], (parts[1] if len(parts) > 1 else "-")
    if table == "filter":
        chain = Chain(name=name, family=family, origin=origin)
        if policy != "-":
            if name not in HOOKS or policy not in ("ACCEPT", "DROP"):
                rs.unsupported.append(Unsupported(origin, f"policy {policy} on chain {name} not modelled"))
            chain.hook = HOOKS.get(name)
            chain.policy = "accept" if policy == "ACCEPT" else "drop"
            if name == "FORWARD":
                rs.bindings.append(Binding(chain="FORWARD", direction="forward"))
        rs.chains[name] = chain
    elif policy not in ("ACCEPT", "-"):
        rs.unsupported.append(Unsupported(origin, f"{table} table chain {name} with policy {policy} is not modelled"))


def _parse_ipset(text: str, path: str, rs: Ruleset) -> None:
    """`ipset save`: create NAME TYPE ..., add NAME MEMBER. Address-only types are modelled."""
    types: dict[str, str] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        rs.lines += 1
        words = raw.split()
        origin = Origin(path, no, raw)
        if not words or words[0].startswith("#"):
            continue
        if words[0] in ("create", "-N", "-exist") and len(words) >= 3:
            name, kind = words[1], words[2]
            types[name] = kind
            if kind in ("hash:net", "hash:ip", "bitmap:ip") or kind == "list:set":
                rs.sets[name] = IPSet()
            else:
                rs.unsupported.append(Unsupported(origin, f"ipset type {kind} (set {name}) is not modelled"))
        elif words[0] in ("add", "-A") and len(words) >= 3:
            name, member = words[1], words[2]
            if name not in rs.sets:
                if name not in types:
                    rs.unsupported.append(Unsupported(origin, f"member of undeclared set {name}"))
                continue
            if "nomatch" in words[3:]:
                rs.unsupported.append(Unsupported(origin, f"nomatch member of set {name} is not modelled"))
                continue
            try:
                if types[name] == "list:set":
                    rs.sets[name] |= rs.sets[member]
                elif "-" in member:
                    lo, hi = member.split("-", 1)
                    rs.sets[name].add(IPRange(lo, hi))
                else:
                    rs.sets[name].add(IPNetwork(member))
            except (AddrFormatError, ValueError, KeyError):
                rs.unsupported.append(Unsupported(origin, f"unreadable member {member!r} of set {name}"))
        else:
            rs.unsupported.append(Unsupported(origin, "not an ipset save line (create/add)"))


def _addrs(value: str) -> IPSet:
    try:
        return IPSet(IPNetwork(v) for v in value.split(","))
    except (AddrFormatError, ValueError):
        raise _Skip(f"unreadable address {value!r}") from None


def _ports(value: str) -> Ports:
    out = []
    for part in value.split(","):
        lo, _, hi = part.partition(":")
        try:
            low = int(lo) if lo else 0
            high = int(hi) if hi else (65535 if ":" in part else low)
        except ValueError:
            raise _Skip(f"port names are not modelled ({part!r})") from None
        out.append((low, high))
    return tuple(out)


def _rule(args: list[str], origin: Origin, rs: Ruleset, table: str, family: str) -> Rule:
    src: list = []
    dst: list = []
    sport: list = []
    dport: list = []
    fields: dict = {}
    negate: set[str] = set()
    comment = None
    action, target, nat = "continue", None, None
    modules: set[str] = set()
    i, neg = 0, False

    def value() -> str:
        nonlocal i, neg
        i += 1
        if i < len(args) and args[i] == "!":       # old style: -s ! 10.0.0.1
            neg = True
            i += 1
        if i >= len(args):
            raise _Skip(f"option {args[i - 1]} without a value")
        return args[i]

    while i < len(args):
        opt = args[i]
        if opt == "!":
            neg = True
            i += 1
            continue
        if opt in ("-s", "--source"):
            v = value()
            src.append((_addrs(v), neg))
        elif opt in ("-d", "--destination"):
            v = value()
            dst.append((_addrs(v), neg))
        elif opt in ("-p", "--protocol"):
            v = value().lower()
            if v != "all":
                fields["protocols"] = frozenset({PROTO_NAMES.get(v, v)})
                if neg:
                    negate.add("protocols")
        elif opt in ("-i", "--in-interface", "-o", "--out-interface"):
            v = value()
            key = "in_iface" if opt.startswith(("-i", "--in")) else "out_iface"
            fields[key] = v
            if neg:
                negate.add(key)
        elif opt in ("-m", "--match"):
            v = value()
            if v not in MODULES:
                raise _Skip(f"match module {v!r} is not modelled")
            modules.add(v)
        elif opt in ("--sport", "--source-port", "--dport", "--destination-port", "--sports",
                     "--source-ports", "--dports", "--destination-ports"):
            v = value()
            multi = opt.endswith("s")
            if multi and "multiport" not in modules:
                raise _Skip(f"{opt} without -m multiport")
            (sport if opt.startswith(("--sport", "--source")) else dport).append((_ports(v), neg))
        elif opt in ("--state", "--ctstate"):
            v = value()
            states = frozenset(s.lower() for s in v.split(","))
            if not states <= STATES:
                raise _Skip(f"conntrack states {sorted(states - STATES)} are not modelled")
            fields["states"] = states
            if neg:
                negate.add("states")
        elif opt == "--match-set":
            v = value()
            i += 1
            flags = args[i] if i < len(args) else ""
            if v not in rs.sets:
                raise _Skip(f"ipset {v!r} is not defined in the ipset save files given")
            if flags not in ("src", "dst"):
                raise _Skip(f"--match-set {v} {flags!r}: only src or dst is modelled")
            (src if flags == "src" else dst).append((rs.sets[v], neg))
        elif opt == "--comment":
            comment = value()
        elif opt in ("--icmp-type", "--icmpv6-type"):
            v = value()
            names = ICMP6_TYPES if opt == "--icmpv6-type" else ICMP_TYPES
            if v == "any":
                pass
            elif v.isdigit():
                fields["icmp_types"] = frozenset({int(v)})
            elif v in names:
                fields["icmp_types"] = frozenset({names[v]})
            else:
                raise _Skip(f"icmp type {v!r} (with a code, or unknown) is not modelled")
            if neg and "icmp_types" in fields:
                negate.add("icmp_types")
        elif opt in ("-j", "--jump", "-g", "--goto"):
            v = value()
            rest = args[i + 1:]
            i = len(args)
            if opt in ("-g", "--goto"):
                action, target = "goto", v
            elif v in VERDICTS:
                action = VERDICTS[v]
            elif v in NON_DECIDING:
                action = "continue"
            elif table == "nat" and v in NAT_TARGETS | {"ACCEPT", "RETURN"}:
                action, nat = "continue", " ".join([v, *rest])
            elif v.isupper() and v not in rs.chains:
                raise _Skip(f"target {v} is not modelled")
            else:
                action, target = "jump", v
            if action in ("jump", "goto", "accept", "drop", "return") and rest:
                raise _Skip(f"target options {' '.join(rest)!r} are not modelled")
            continue
        else:
            raise _Skip(f"option {opt!r} is not modelled")
        neg = False
        i += 1
    if (sport or dport) and not (fields.get("protocols", frozenset()) & PORT_PROTOCOLS) or (
            (sport or dport) and "protocols" in negate):
        raise _Skip("ports without -p tcp/udp/sctp")
    s, sneg = fold_addrs(src)
    d, dneg = fold_addrs(dst)
    sp, spneg = fold_ports(sport)
    dp, dpneg = fold_ports(dport)
    for name, on in (("src", sneg), ("dst", dneg), ("sport", spneg), ("dport", dpneg)):
        if on:
            negate.add(name)
    match = Match(src=s, dst=d, sport=sp, dport=dp, negate=frozenset(negate), **fields)
    return Rule(match=match, action=action, origin=origin, target=target, comment=comment, nat=nat)
