"""`nft -j list ruleset` JSON (the libnftables JSON schema) as a model.Ruleset.

Elements of the top-level "nftables" array: metainfo, table, chain, rule, set, map. JSON has no
line numbers, so Origin.line is the element's index in that array and Origin.text a short
rendering of the rule. Chains and named sets are keyed "FAMILY TABLE NAME" (as nft names them):
two tables may hold chains of the same name.

- base chains keep hook and policy; filter-type base chains on prerouting/forward/postrouting
  are bound to the forward path (ordered by hook, then priority: the kernel walks each in turn,
  an accept in one still meets the next); nat-type chains' rules are noted in Ruleset.nat;
- matches: ip/ip6 saddr/daddr, ip protocol, ip6 nexthdr, meta l4proto, tcp/udp/sctp/th
  sport/dport, icmp/icmpv6 type, meta iifname/oifname, ct state; values as literals, prefixes,
  ranges, anonymous sets or named sets "@name"; == / != / in;
- verdicts accept, drop, reject, jump, goto, return, continue; counter and log do not decide;
- verdict maps (vmap, anonymous or a named map) are expanded into one rule per element.

Any other expression leaves its rule out of the chain, recorded as Unsupported with why (as in
the iptables parser: a half-understood rule would match more or less than the kernel's)."""
from __future__ import annotations

import json
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
from plantguard.firewall.parsers.ports import fold_addrs, fold_ports, normalize

HOOK_ORDER = {"prerouting": 0, "input": 1, "forward": 1, "output": 1, "postrouting": 2}
FORWARD_PATH = ("prerouting", "forward", "postrouting")
VERDICTS = ("accept", "drop", "reject", "jump", "goto", "return", "continue")
NON_DECIDING = frozenset({"counter", "log", "notrack", "mangle", "quota_never"})
PORT_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})
ICMP_TYPES = {"echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5,
              "echo-request": 8, "router-advertisement": 9, "router-solicitation": 10,
              "time-exceeded": 11, "parameter-problem": 12, "timestamp-request": 13,
              "timestamp-reply": 14}
ICMP6_TYPES = {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3,
               "parameter-problem": 4, "echo-request": 128, "echo-reply": 129,
               "nd-router-solicit": 133, "nd-router-advert": 134, "nd-neighbor-solicit": 135,
               "nd-neighbor-advert": 136}
FAMILY_OF = {"ip": IPSet(["0.0.0.0/0"]), "icmp": IPSet(["0.0.0.0/0"]), "ip6": IPSet(["::/0"]),
             "icmpv6": IPSet(["::/0"])}
ADDR_FIELDS = {("ip", "saddr"): "src", ("ip", "daddr"): "dst", ("ip6", "saddr"): "src", ("ip6", "daddr"): "dst"}


class _Skip(Exception):
    """An expression the model cannot hold: why."""


def parse(path: str | Path) -> Ruleset:
    """Parse `nft -j list ruleset` output; ValueError (one line naming the file) otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_text(text, str(path))


def parse_text(text: str, path: str) -> Ruleset:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        if "table " in text:
            raise ValueError(f"{path}: nft text form is not read; give `nft -j list ruleset` output") from None
        raise ValueError(f"{path}: not nftables JSON (`nft -j list ruleset` output)") from None
    items = doc.get("nftables") if isinstance(doc, dict) else None
    if not isinstance(items, list):       # bad input (one line for the user), not a caller's type error
        raise ValueError(f"{path}: no top-level \"nftables\" array: give `nft -j list ruleset` output")  # noqa: TRY004
    rs = Ruleset(path=path, format="nftables")
    ctx = _Context(rs)
    for index, item in enumerate(items):       # sets and maps first: rules refer to them by name
        if isinstance(item, dict) and ("set" in item or "map" in item):
            ctx.define(index, item)
    for index, item in enumerate(items):
        rs.lines += 1
        if not isinstance(item, dict) or len(item) != 1:
            rs.unsupported.append(Unsupported(Origin(path, index, str(item)[:80]), "not an nftables element"))
            continue
        kind, body = next(iter(item.items()))
        if kind in ("metainfo", "table", "set", "map"):
            if kind == "table" and body.get("family") in ("netdev", "bridge", "arp"):
                rs.unsupported.append(Unsupported(Origin(path, index, f"table {body.get('family')} "
                                                  f"{body.get('name')}"), "only ip/ip6/inet tables are modelled"))
            continue
        if kind == "chain":
            ctx.chain(index, body)
        elif kind == "rule":
            ctx.rule(index, body)
        else:
            rs.unsupported.append(Unsupported(Origin(path, index, kind), f"element {kind!r} is not modelled"))
    ctx.bind()
    return rs


def _key(body: dict, name: str | None = None) -> str:
    return f"{body.get('family')} {body.get('table')} {name or body.get('name')}"


class _Context:
    def __init__(self, rs: Ruleset):
        self.rs = rs
        self.port_sets: dict[str, Ports] = {}
        self.word_sets: dict[str, frozenset[str]] = {}
        self.vmaps: dict[str, list] = {}
        self.nat_chains: set[str] = set()
        self.base: list[tuple[int, int, str]] = []

    # sets and maps --------------------------------------------------------------
    def define(self, index: int, item: dict) -> None:
        kind, body = next(iter(item.items()))
        key = _key(body)
        origin = Origin(self.rs.path, index, f"{kind} {key}")
        elems = body.get("elem", [])
        try:
            if kind == "map":
                if body.get("map") != "verdict":
                    raise _Skip(f"map of {body.get('map')} is not modelled")
                self.vmaps[key] = elems
                return
            typ = body.get("type")
            if typ in ("ipv4_addr", "ipv6_addr"):
                self.rs.sets[key] = self._addrs({"set": elems})
            elif typ == "inet_service":
                self.port_sets[key] = self._ports({"set": elems})
            elif typ in ("inet_proto", "ifname", "ct_state"):
                self.word_sets[key] = frozenset(str(_elem(e)) for e in elems)
            else:
                raise _Skip(f"set type {typ} is not modelled")
        except _Skip as why:
            self.rs.unsupported.append(Unsupported(origin, str(why)))

    def _resolve(self, right, family_table: str):
        if isinstance(right, str) and right.startswith("@"):
            return f"{family_table} {right[1:]}"
        return None

    def _addrs(self, right, ft: str = "") -> IPSet:
        ref = self._resolve(right, ft)
        if ref is not None:
            if ref not in self.rs.sets:
                raise _Skip(f"set {right} is not an address set defined in this ruleset")
            return self.rs.sets[ref]
        out = IPSet()
        for v in _values(right):
            try:
                if isinstance(v, dict) and "prefix" in v:
                    out.add(IPNetwork(f"{v['prefix']['addr']}/{v['prefix']['len']}"))
                elif isinstance(v, dict) and "range" in v:
                    out.add(IPRange(*v["range"]))
                elif isinstance(v, str):
                    out.add(IPNetwork(v))
                else:
                    raise _Skip(f"address value {v!r} is not modelled")
            except (AddrFormatError, ValueError, TypeError):
                raise _Skip(f"address value {v!r} is not modelled") from None
        return out

    def _ports(self, right, ft: str = "") -> Ports:
        ref = self._resolve(right, ft)
        if ref is not None:
            if ref not in self.port_sets:
                raise _Skip(f"set {right} is not a port set defined in this ruleset")
            return self.port_sets[ref]
        out = []
        for v in _values(right):
            if isinstance(v, int):
                out.append((v, v))
            elif isinstance(v, dict) and "range" in v and all(isinstance(x, int) for x in v["range"]):
                out.append(tuple(v["range"]))
            else:
                raise _Skip(f"port value {v!r} is not modelled")
        return normalize(out)

    def _words(self, right, ft: str = "") -> frozenset[str]:
        ref = self._resolve(right, ft)
        if ref is not None:
            if ref not in self.word_sets:
                raise _Skip(f"set {right} is not defined in this ruleset")
            return self.word_sets[ref]
        out = []
        for v in _values(right):
            if not isinstance(v, (str, int)):
                raise _Skip(f"value {v!r} is not modelled")
            out.append(str(v))
        return frozenset(out)

    # chains and rules -----------------------------------------------------------
    def chain(self, index: int, body: dict) -> None:
        key = _key(body)
        origin = Origin(self.rs.path, index, f"chain {key}")
        if body.get("family") not in ("ip", "ip6", "inet"):
            self.rs.unsupported.append(Unsupported(origin, "only ip/ip6/inet chains are modelled"))
            return
        chain = Chain(name=key, family=body.get("family", "inet"), origin=origin)
        if "hook" in body:
            if body.get("type") == "nat":
                self.nat_chains.add(key)
                return
            chain.hook = body["hook"]
            chain.policy = "drop" if body.get("policy") == "drop" else "accept"
            if body["hook"] in FORWARD_PATH:
                prio = body.get("prio", 0)
                self.base.append((HOOK_ORDER[body["hook"]], prio if isinstance(prio, int) else 0, key))
        self.rs.chains[key] = chain

    def bind(self) -> None:
        for _, _, key in sorted(self.base):
            self.rs.bindings.append(Binding(chain=key, direction="forward"))
        for chain in self.rs.chains.values():
            for rule in chain.rules:
                if rule.target is not None and rule.target not in self.rs.chains:
                    self.rs.unsupported.append(Unsupported(rule.origin, f"target chain {rule.target} is not defined"))

    def rule(self, index: int, body: dict) -> None:
        chain = _key(body, body.get("chain"))
        ft = f"{body.get('family')} {body.get('table')}"
        exprs = body.get("expr", [])
        origin = Origin(self.rs.path, index, f"{chain} handle {body.get('handle')}: " + _render(exprs))
        if chain in self.nat_chains:
            self.rs.nat.append(Rule(match=Match(), action="continue", origin=origin, nat=_render(exprs)))
            return
        if chain not in self.rs.chains:
            self.rs.unsupported.append(Unsupported(origin, f"rule in unknown or unmodelled chain {chain}"))
            return
        try:
            for rule in self._rules(exprs, origin, ft, body.get("comment")):
                self.rs.chains[chain].rules.append(rule)
        except _Skip as why:
            self.rs.unsupported.append(Unsupported(origin, f"{why} (rule left out of chain {chain})"))

    def _rules(self, exprs: list, origin: Origin, ft: str, comment: str | None) -> list[Rule]:
        tests: dict[str, list] = {"src": [], "dst": [], "sport": [], "dport": []}
        fields: dict = {}
        negate: set[str] = set()
        verdict: tuple[str, str | None] | None = None
        vmap = None
        for expr in exprs:
            if not isinstance(expr, dict) or len(expr) != 1:
                raise _Skip(f"expression {expr!r} is not modelled")
            kind, arg = next(iter(expr.items()))
            if kind == "match":
                self._match(arg, tests, fields, negate, ft)
            elif kind in VERDICTS:
                if verdict is not None:
                    raise _Skip("two verdicts in one rule")
                verdict = (kind, arg.get("target") if isinstance(arg, dict) and kind in ("jump", "goto") else None)
                if verdict[1] is not None:
                    verdict = (kind, f"{ft} {verdict[1]}")
            elif kind in NON_DECIDING:
                continue
            elif kind == "vmap":
                vmap = arg
            else:
                raise _Skip(f"statement {kind!r} is not modelled")
        protos = fields.get("protocols")
        if (tests["sport"] or tests["dport"]) and protos is None:
            fields["protocols"] = protos = PORT_PROTOCOLS      # th dport alone: any transport with ports
        if protos is not None and (tests["sport"] or tests["dport"]) and not protos & PORT_PROTOCOLS:
            raise _Skip("ports on a protocol without ports")
        if vmap is None:
            action, target = verdict or ("continue", None)
            return [self._make(tests, fields, negate, action, target, origin, comment)]
        if verdict is not None:
            raise _Skip("a verdict beside a vmap")
        data = vmap.get("data")
        ref = self._resolve(data, ft) if isinstance(data, str) else None
        elems = self.vmaps.get(ref) if ref else (data.get("set") if isinstance(data, dict) else None)
        if elems is None:
            raise _Skip(f"verdict map {data!r} is not defined")
        out = []
        for elem in elems:
            if not (isinstance(elem, list) and len(elem) == 2 and isinstance(elem[1], dict)):
                raise _Skip(f"verdict map element {elem!r} is not modelled")
            kind, arg = next(iter(elem[1].items()))
            if kind not in VERDICTS:
                raise _Skip(f"verdict map element {elem!r} is not modelled")
            target = f"{ft} {arg['target']}" if isinstance(arg, dict) and "target" in arg else None
            t2 = {k: list(v) for k, v in tests.items()}
            f2, n2 = dict(fields), set(negate)
            self._match({"op": "==", "left": vmap["key"], "right": elem[0]}, t2, f2, n2, ft)
            if (t2["sport"] or t2["dport"]) and f2.get("protocols") is None:
                f2["protocols"] = PORT_PROTOCOLS
            out.append(self._make(t2, f2, n2, kind, target, origin, comment))
        return out

    def _make(self, tests, fields, negate, action, target, origin, comment) -> Rule:
        negate = set(negate)
        src, sn = fold_addrs(tests["src"])
        dst, dn = fold_addrs(tests["dst"])
        sport, spn = fold_ports(tests["sport"])
        dport, dpn = fold_ports(tests["dport"])
        for name, on in (("src", sn), ("dst", dn), ("sport", spn), ("dport", dpn)):
            if on:
                negate.add(name)
        return Rule(match=Match(src=src, dst=dst, sport=sport, dport=dport, negate=frozenset(negate), **fields),
                    action=action, origin=origin, target=target, comment=comment)

    def _match(self, arg: dict, tests, fields, negate, ft: str) -> None:
        op, left, right = arg.get("op"), arg.get("left"), arg.get("right")
        if op not in ("==", "!=", "in"):
            raise _Skip(f"match operator {op!r} is not modelled")
        neg = op == "!="
        if not isinstance(left, dict) or len(left) != 1:
            raise _Skip(f"match on {left!r} is not modelled")
        kind, what = next(iter(left.items()))
        if kind == "payload" and "protocol" in what:
            proto, fld = what["protocol"], what["field"]
            if proto in FAMILY_OF:      # the test implies the family: `ip daddr != X` never matches IPv6
                tests["src"].append((FAMILY_OF[proto], False))
            if (proto, fld) in ADDR_FIELDS:
                tests[ADDR_FIELDS[(proto, fld)]].append((self._addrs(right, ft), neg))
                return
            if (proto in PORT_PROTOCOLS or proto == "th") and fld in ("sport", "dport"):
                tests[fld].append((self._ports(right, ft), neg))
                if proto != "th":
                    self._field(fields, negate, "protocols", frozenset({proto}), False)
                return
            if (proto, fld) in (("ip", "protocol"), ("ip6", "nexthdr")):
                self._field(fields, negate, "protocols", self._protos(right, ft), neg)
                return
            if (proto, fld) in (("icmp", "type"), ("icmpv6", "type")):
                names = ICMP_TYPES if proto == "icmp" else ICMP6_TYPES
                types = frozenset(names[w] if w in names else int(w) if w.isdigit() else -1
                                  for w in self._words(right, ft))
                if -1 in types:
                    raise _Skip(f"icmp type {right!r} is not modelled")
                self._field(fields, negate, "icmp_types", types, neg)
                self._field(fields, negate, "protocols", frozenset({proto}), False)
                return
        if kind == "meta" and what.get("key") == "l4proto":
            self._field(fields, negate, "protocols", self._protos(right, ft), neg)
            return
        if kind == "meta" and what.get("key") in ("iifname", "oifname"):
            words = self._words(right, ft)
            if len(words) != 1:
                raise _Skip("a set of interface names is not modelled")
            self._field(fields, negate, "in_iface" if what["key"] == "iifname" else "out_iface",
                        next(iter(words)), neg)
            return
        if kind == "ct" and what.get("key") == "state":
            states = self._words(right, ft)
            if not states <= STATES:
                raise _Skip(f"ct state {sorted(states - STATES)} is not modelled")
            self._field(fields, negate, "states", frozenset(states), neg)
            return
        raise _Skip(f"match on {_render([{'match': arg}])!r} is not modelled")

    def _protos(self, right, ft: str) -> frozenset[str]:
        names = {"1": "icmp", "6": "tcp", "17": "udp", "58": "icmpv6", "132": "sctp", "ipv6-icmp": "icmpv6"}
        return frozenset(names.get(w, w) for w in self._words(right, ft))

    @staticmethod
    def _field(fields, negate, name, value, neg) -> None:
        if name in fields:
            old = fields[name]
            if name in negate or neg or not isinstance(value, frozenset):
                if old != value or (name in negate) != neg:
                    raise _Skip(f"two tests of {name} in one rule are not modelled")
                return
            value = old & value
        fields[name] = value
        if neg:
            negate.add(name)


def _values(right) -> list:
    if isinstance(right, dict) and "set" in right:
        return [_elem(e) for e in right["set"]]
    if isinstance(right, list):
        return [_elem(e) for e in right]
    return [right]


def _elem(e):
    """A set element may be wrapped with its timeout/comment: {"elem": {"val": ...}}."""
    return e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e


def _render(exprs: list) -> str:
    """A short nft-like rendering for Origin.text (never parsed back)."""
    parts = []
    for expr in exprs:
        if not isinstance(expr, dict) or len(expr) != 1:
            parts.append("?")
            continue
        kind, arg = next(iter(expr.items()))
        if kind == "match" and isinstance(arg, dict):
            parts.append(f"{_term(arg.get('left'))} {'' if arg.get('op') in ('==', 'in') else arg.get('op') + ' '}"
                         f"{_term(arg.get('right'))}")
        elif kind in ("jump", "goto") and isinstance(arg, dict):
            parts.append(f"{kind} {arg.get('target')}")
        elif kind == "vmap" and isinstance(arg, dict):
            parts.append(f"{_term(arg.get('key'))} vmap {_term(arg.get('data'))}")
        else:
            parts.append(kind)
    return " ".join(parts)[:200]


def _term(t) -> str:
    if isinstance(t, dict) and len(t) == 1:
        kind, arg = next(iter(t.items()))
        if kind == "payload" and isinstance(arg, dict):
            return f"{arg.get('protocol')} {arg.get('field')}"
        if kind in ("meta", "ct") and isinstance(arg, dict):
            return f"{kind} {arg.get('key')}"
        if kind == "prefix" and isinstance(arg, dict):
            return f"{arg.get('addr')}/{arg.get('len')}"
        if kind == "range" and isinstance(arg, list):
            return "-".join(str(x) for x in arg)
        if kind == "set" and isinstance(arg, list):
            return "{ " + ", ".join(_term(e) for e in arg) + " }"
        return kind
    if isinstance(t, list):
        return ", ".join(_term(e) for e in t)
    return str(t)
