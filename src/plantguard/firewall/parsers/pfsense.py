"""pfSense and OPNsense config.xml into the rule model.

Read: `<interfaces>` (ipaddr/subnet, ipaddrv6/subnetv6 → Ruleset.interfaces, keyed by the logical
name the rules use: wan, lan, opt1, ...), `<aliases>` (host, network and port aliases, nested by
name; url tables are Unsupported) and `<filter><rule>` (type pass/block/reject, interface,
ipprotocol inet/inet6/inet46, protocol tcp, udp, tcp/udp, icmp, any; source/destination with
any, address (an address, a network, a range, an alias), network (an interface's subnet `lan`,
its own address `lanip`, `(self)`), not, port "80", "80-90" or "80:90" or a port alias).

pfSense filters inbound on each interface, first match wins (its interface rules are "quick"),
and blocks what no rule passes: each interface is a Chain named after it (policy "drop") bound
with Binding(direction "in", interface). Disabled rules filter nothing and are skipped (category
"disabled"). Floating rules (several interfaces, last-match unless quick) are Unsupported.

XML is hostile input: the file is read with expat, a DOCTYPE (and so any entity declaration) is
refused outright, and each element keeps its source line for Origin. Accounting is per element
(`parse_accounted`: element line → category): "modelled", "comment" (descr), "ignored"
(bookkeeping: tracker, created, updated, ...), "disabled", "not-firewall" (other sections of the
file) or "unsupported" (in Ruleset.unsupported with why)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from netaddr import AddrFormatError, IPAddress, IPNetwork, IPRange, IPSet

from plantguard.firewall.errors import FirewallConfigError
from plantguard.firewall.model import (
    Binding,
    Chain,
    Match,
    Origin,
    Ports,
    Rule,
    Ruleset,
    Unsupported,
)
from plantguard.firewall.parsers import ports as P
from plantguard.firewall.parsers.text import read_config

FORMATS = ("pfsense", "opnsense")
V4, V6 = IPSet(["0.0.0.0/0"]), IPSet(["::/0"])
PROTOCOLS = {"tcp": frozenset({"tcp"}), "udp": frozenset({"udp"}),
             "tcp/udp": frozenset({"tcp", "udp"}), "icmp": frozenset({"icmp"}),
             "ipv6-icmp": frozenset({"icmpv6"}), "icmp6": frozenset({"icmpv6"}),
             "esp": frozenset({"esp"}), "ah": frozenset({"ah"}), "gre": frozenset({"gre"}),
             "igmp": frozenset({"igmp"}), "sctp": frozenset({"sctp"}), "ospf": frozenset({"89"}),
             "carp": frozenset({"112"}), "pfsync": frozenset({"240"})}
ICMP_TYPES = {"echorep": 0, "unreach": 3, "squench": 4, "redir": 5, "althost": 6, "echoreq": 8,
              "routeradv": 9, "routersol": 10, "timex": 11, "paramprob": 12, "timereq": 13,
              "timerep": 14, "inforeq": 15, "inforep": 16, "maskreq": 17, "maskrep": 18}
ICMP6_TYPES = {"echoreq": 128, "echorep": 129, "unreach": 1, "toobig": 2, "timex": 3,
               "paramprob": 4, "routersol": 133, "routeradv": 134, "neighbrsol": 135,
               "neighbradv": 136, "redir": 137}
# Rule children that are bookkeeping: they do not change which packets pass.
IGNORED = frozenset({"id", "tracker", "tag", "tagged", "max", "max-src-nodes", "max-src-conn",
                     "max-src-states", "statetimeout", "statetype", "os", "log", "created",
                     "updated", "associated-rule-id", "max-src-conn-rate",
                     "max-src-conn-rates", "sched", "uuid", "category", "label", "gateway",
                     "direction", "quick", "icmptype", "nopfsync", "nosync", "allowopts",
                     "disablereplyto", "dnpipe", "pdnpipe", "defaultqueue", "ackqueue",
                     "sequence", "tcpflags_any", "tcpflags1", "tcpflags2", "vlanprio",
                     "vlanprioset", "set-prio", "set-prio-low", "prio", "replyto"})


@dataclass
class _El:
    tag: str
    line: int
    text: str = ""
    children: list[_El] = field(default_factory=list)

    def find(self, tag: str) -> _El | None:
        return next((c for c in self.children if c.tag == tag), None)

    def value(self, tag: str, default: str = "") -> str:
        el = self.find(tag)
        return el.text.strip() if el is not None else default

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


def detect(text: str) -> str | None:
    head = text[:4096]
    if "<pfsense>" in head or "<pfsense " in head:
        return "pfsense"
    if "<opnsense>" in head or "<opnsense " in head:
        return "opnsense"
    return None


def parse(path: str | Path) -> Ruleset:
    return parse_text(read_config(path), str(path))


def parse_text(text: str, path: str) -> Ruleset:
    return parse_accounted(text, path)[0]


def read_xml(text: str, path: str) -> _El:
    """The element tree with source lines; no DOCTYPE, so no entity can expand."""
    stack: list[_El] = []
    root: list[_El] = []
    p = expat.ParserCreate()

    def refuse(*_args) -> None:
        raise FirewallConfigError(path, p.CurrentLineNumber,
                                  "XML with a DOCTYPE or entity declaration is refused "
                                  "(a config.xml has none; entities can expand without bound)")

    def start(tag, _attrs) -> None:
        el = _El(tag, p.CurrentLineNumber)
        (stack[-1].children if stack else root).append(el)
        stack.append(el)

    def end(_tag) -> None:
        stack.pop()

    def data(s: str) -> None:
        if stack:
            stack[-1].text += s

    p.StartDoctypeDeclHandler = refuse
    p.EntityDeclHandler = refuse
    p.ExternalEntityRefHandler = refuse
    p.StartElementHandler, p.EndElementHandler, p.CharacterDataHandler = start, end, data
    try:
        p.Parse(text.encode("utf-8"), True)
    except expat.ExpatError as exc:
        raise FirewallConfigError(path, exc.lineno, f"not well-formed XML: "
                                  f"{expat.ErrorString(exc.code)}") from None
    if not root:
        raise FirewallConfigError(path, None, "no XML element")
    return root[0]


def parse_accounted(text: str, path: str) -> tuple[Ruleset, dict[int, str]]:
    root = read_xml(text, path)
    if root.tag not in FORMATS:
        raise FirewallConfigError(path, root.line, f"<{root.tag}> is not a pfSense or OPNsense "
                                  "config.xml")
    p = _Parser(root, path, text.splitlines())
    p.run()
    return p.rs, p.category


class _Parser:
    def __init__(self, root: _El, path: str, lines: list[str]) -> None:
        self.root, self.path, self.lines = root, path, lines
        self.rs = Ruleset(path=path, format=root.tag)
        self.rs.lines = sum(1 for _ in root.walk())
        self.category: dict[int, str] = {}
        self.ifaddr: dict[str, IPSet] = {}                  # the interface's own addresses
        self.aliases: dict[str, _El] = {}
        self.resolved: dict[str, IPSet | Ports] = {}

    def mark(self, el: _El, category: str) -> None:
        for e in el.walk():
            self.category.setdefault(e.line, category)

    def origin(self, el: _El, text: str = "") -> Origin:
        return Origin(self.path, el.line, text or self.lines[el.line - 1].strip())

    def unsupported(self, el: _El, why: str, text: str = "") -> None:
        self.category[el.line] = "unsupported"
        for e in el.walk():
            self.category.setdefault(e.line, "unsupported")
        self.rs.unsupported.append(Unsupported(self.origin(el, text), why))

    def run(self) -> None:
        self.category[self.root.line] = "modelled"
        for section in self.root.children:
            handler = {"interfaces": self._interfaces, "aliases": self._aliases,
                       "filter": self._filter}.get(section.tag)
            if handler is None:
                self.mark(section, "not-firewall")
        for tag in ("interfaces", "aliases", "filter"):     # rules use both others
            for section in self.root.children:
                if section.tag == tag:
                    self.category[section.line] = "modelled"
                    getattr(self, "_" + tag)(section)

    def _interfaces(self, section: _El) -> None:
        for el in section.children:
            nets, own = IPSet(), IPSet()
            for a, m in (("ipaddr", "subnet"), ("ipaddrv6", "subnetv6")):
                addr, bits = el.value(a), el.value(m)
                try:
                    if addr and bits:
                        nets |= IPSet([IPNetwork(f"{addr}/{bits}").cidr])
                        own |= IPSet([IPAddress(addr)])
                except (AddrFormatError, ValueError):
                    pass                                    # dhcp, track6, pppoe: not known here
            self.rs.interfaces[el.tag] = nets
            self.ifaddr[el.tag] = own
            self.category[el.line] = "modelled"
            self.mark(el, "not-firewall")                   # if, descr, mtu, media, ...
            for c in el.children:
                if c.tag in ("ipaddr", "subnet", "ipaddrv6", "subnetv6"):
                    self.category[c.line] = "modelled"

    def _aliases(self, section: _El) -> None:
        for el in section.children:
            name = el.value("name")
            if el.tag != "alias" or not name:
                self.unsupported(el, "not an alias")
                continue
            self.aliases[name] = el
        for name, el in self.aliases.items():
            try:
                self.resolved[name] = self._alias(name, ())
                self.mark(el, "modelled")
                for c in el.children:
                    if c.tag in ("descr", "detail"):
                        self.category[c.line] = "comment"
            except ValueError as exc:
                self.unsupported(el, str(exc), f"alias {name}")

    def _alias(self, name: str, seen: tuple[str, ...]) -> IPSet | Ports:
        if name in self.resolved:
            return self.resolved[name]
        if name in seen:
            raise ValueError(f"alias {name} contains itself")
        el = self.aliases[name]
        kind = el.value("type")
        words = el.value("address").split()
        if kind == "port":
            ranges: list[tuple[int, int]] = []
            for w in words:
                if w in self.aliases:
                    ranges += self._alias(w, (*seen, name))
                else:
                    ranges += _ports(w)
            return P.normalize(ranges)
        if kind in ("host", "network"):
            out = IPSet()
            for w in words:
                if w in self.aliases:
                    sub = self._alias(w, (*seen, name))
                    if not isinstance(sub, IPSet):
                        raise ValueError(f"alias {name} nests a port alias")
                    out |= sub
                else:
                    out |= _address(w)
            return out
        raise ValueError(f"alias type {kind or '?'} is not modelled (needs a download or a "
                         "resolver)")

    def _filter(self, section: _El) -> None:
        for el in section.children:
            if el.tag != "rule":
                self.mark(el, "not-firewall")             # separators, bypass lists
                continue
            self._rule(el)

    def _rule(self, el: _El) -> None:
        iface = el.value("interface")
        kind = el.value("type", "pass")
        descr = el.value("descr")
        summary = f"{kind} on {iface}: {descr}" if descr else f"{kind} on {iface}"
        if el.find("disabled") is not None:
            self.mark(el, "disabled")
            return
        if el.value("floating") in ("yes", "true", "on") or "," in iface:
            self.unsupported(el, "floating rules (several interfaces, last match unless quick) "
                                 "are not modelled", summary)
            return
        action = {"pass": "accept", "block": "drop", "reject": "reject"}.get(kind)
        known = {"type", "interface", "ipprotocol", "protocol", "source", "destination",
                 "descr", "disabled", "floating", "statetype", "icmptype"}
        for c in el.children:
            if c.tag not in known and c.tag not in IGNORED:
                self.unsupported(c, f"rule option not modelled: <{c.tag}>", summary)
                return
        if action is None:
            self.unsupported(el, f"rule type {kind} not modelled", summary)
            return
        state = el.value("statetype")
        if state and state not in ("keep state", "keep", "sloppy state", "sloppy",
                                   "modulate state", "synproxy state"):
            self.unsupported(el, f"state type {state} not modelled", summary)
            return
        family = {"inet": V4, "inet6": V6, "inet46": V4 | V6}.get(el.value("ipprotocol", "inet"))
        proto = el.value("protocol", "any") or "any"
        protos = None if proto == "any" else PROTOCOLS.get(proto)
        try:
            if family is None:
                raise ValueError(f"ipprotocol {el.value('ipprotocol')} not understood")
            if proto != "any" and protos is None:
                raise ValueError(f"protocol {proto} not modelled")
            if protos and "icmp" in protos and family == V6:
                protos = frozenset({"icmpv6"})
            src, sneg, sport = self._end(el.find("source"), family)
            dst, dneg, dport = self._end(el.find("destination"), family)
            icmp = None
            if el.value("icmptype") and protos and protos & {"icmp", "icmpv6"}:
                table = ICMP6_TYPES if protos == {"icmpv6"} else ICMP_TYPES
                icmp = frozenset(table[t] for t in el.value("icmptype").split(",")
                                 if t != "any") or None
            if (sport or dport) and not (protos and protos <= {"tcp", "udp", "sctp"}):
                raise ValueError("ports on a rule whose protocol has no ports")
        except (ValueError, KeyError) as exc:
            self.unsupported(el, str(exc).strip("'"), summary)
            return
        negate = frozenset(f for f, n in (("src", sneg), ("dst", dneg)) if n)
        if negate == {"src", "dst"} and family != V4 | V6:
            # the rule's family is kept on the side that is not negated; with both negated
            # one Match cannot say "IPv4 and not these"
            self.unsupported(el, "source and destination both negated in a one-family rule",
                             summary)
            return
        chain = self.rs.chains.get(iface)
        if chain is None:
            chain = self.rs.chains[iface] = Chain(iface, policy="drop", family="inet")
            self.rs.bindings.append(Binding(chain=iface, direction="in", interface=iface))
        m = Match(src=src, dst=dst, protocols=protos, sport=sport, dport=dport,
                  icmp_types=icmp, negate=negate)
        chain.rules.append(Rule(m, action, self.origin(el, summary), comment=descr or None))
        self.mark(el, "modelled")
        for c in el.children:
            if c.tag == "descr":
                self.category[c.line] = "comment"
            elif c.tag in IGNORED:
                self.category[c.line] = "ignored"

    def _end(self, el: _El | None, family: IPSet) -> tuple[IPSet, bool, Ports | None]:
        """A rule's source or destination: the addresses, whether negated, the ports."""
        if el is None:
            raise ValueError("rule without source or destination")
        neg = el.find("not") is not None
        port = el.value("port")
        ports = None
        if port:
            if port in self.resolved and not isinstance(self.resolved[port], IPSet):
                ports = self.resolved[port]
            elif port in self.aliases:
                raise ValueError(f"port alias {port} is not modelled")
            else:
                ports = P.normalize(_ports(port))
        if el.find("any") is not None:
            addrs = family
        elif el.value("network"):
            net = el.value("network")
            if net == "(self)":
                addrs = IPSet()
                for own in self.ifaddr.values():
                    addrs |= own
            elif net.endswith("ip") and net[:-2] in self.ifaddr:
                addrs = self.ifaddr[net[:-2]]
            elif net in self.rs.interfaces:
                addrs = self.rs.interfaces[net]
            else:
                raise ValueError(f"network {net} is not a known interface")
            if not addrs:
                raise ValueError(f"network {net}: the interface's address is not in the file")
        elif el.value("address"):
            a = el.value("address")
            if a in self.resolved:
                got = self.resolved[a]
                if not isinstance(got, IPSet):
                    raise ValueError(f"{a} is a port alias used as an address")
                addrs = got
            elif a in self.aliases:
                raise ValueError(f"alias {a} is not modelled")
            else:
                addrs = _address(a)
        else:
            raise ValueError("source/destination without any, network or address")
        return (addrs & family if not neg else addrs), neg, ports


def _address(word: str) -> IPSet:
    try:
        if "-" in word and "/" not in word:
            lo, hi = word.split("-", 1)
            return IPSet(IPRange(lo, hi))
        if "/" in word:
            return IPSet([IPNetwork(word).cidr])
        return IPSet([IPAddress(word)])
    except (AddrFormatError, ValueError):
        raise ValueError(f"{word} is not an address, network or known alias") from None


def _ports(word: str) -> list[tuple[int, int]]:
    lo, _, hi = word.replace(":", "-").partition("-")
    if not lo.isdigit() or (hi and not hi.isdigit()):
        raise ValueError(f"port {word} is not a number or range")
    a, b = int(lo), int(hi or lo)
    if not (0 <= a <= b <= 65535):
        raise ValueError(f"port range {word}")
    return [(a, b)]
