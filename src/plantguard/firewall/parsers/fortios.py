"""FortiOS (FortiGate) configurations into the rule model.

Read: `config system interface` (set ip → Ruleset.interfaces), `config system zone` (a zone's
networks are its members'), `config firewall address|address6` (ipmask, iprange; fqdn, geography
and dynamic addresses are Unsupported: they need a resolver), `addrgrp|addrgrp6` (nested
members), `service custom` (tcp/udp/sctp-portrange "DST[-DST][:SRC[-SRC]] ...", protocol
ICMP/ICMP6/IP with protocol-number), `service group`, the built-in service names (BUILTIN, used
when the file does not define them) and `config firewall policy|policy6`.

The policy list is one ordered first-match list over all interface pairs, ending in FortiOS's
implicit deny; it is modelled as ONE chain "policy" (policy "drop", bound on the forward path)
whose rules carry in_iface / out_iface (srcintf / dstintf; "any" is no test; a zone expands to
its member interfaces), so the list's order across pairs is kept exactly. A policy with several
interfaces, addresses families or services becomes several rules with the same origin.

Line accounting (`parse_accounted`): every line is "modelled", "comment" (#, comments, names),
"ignored" (settings that do not change which packets pass: logging, uuid, security profiles,
schedule, GUI colours), "disabled" (a policy with `set status disable`: it filters nothing),
"not-firewall" (configuration sections other than the ones above) or "unsupported" (recorded in
Ruleset.unsupported with why)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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

FORMATS = ("fortios",)
CHAIN = "policy"

# (protocols, sport, dport, icmp types); None is any. FortiOS's predefined services (a small
# table, used when the file does not define the name itself).
Service = tuple[frozenset[str] | None, Ports | None, Ports | None, frozenset[int] | None]
_TCP, _UDP = frozenset({"tcp"}), frozenset({"udp"})
_TU = frozenset({"tcp", "udp"})


def _p(*ports: int) -> Ports:
    return P.normalize([(x, x) for x in ports])


BUILTIN: dict[str, list[Service]] = {
    "ALL": [(None, None, None, None)],
    "ALL_TCP": [(_TCP, None, ((1, 65535),), None)], "ALL_UDP": [(_UDP, None, ((1, 65535),), None)],
    "ALL_ICMP": [(frozenset({"icmp"}), None, None, None)],
    "ALL_ICMP6": [(frozenset({"icmpv6"}), None, None, None)],
    "PING": [(frozenset({"icmp"}), None, None, frozenset({8}))],
    "HTTP": [(_TCP, None, _p(80), None)], "HTTPS": [(_TCP, None, _p(443), None)],
    "SSH": [(_TCP, None, _p(22), None)], "TELNET": [(_TCP, None, _p(23), None)],
    "FTP": [(_TCP, None, _p(21), None)], "SMTP": [(_TCP, None, _p(25), None)],
    "DNS": [(_TU, None, _p(53), None)], "NTP": [(_TU, None, _p(123), None)],
    "SNMP": [(_TU, None, _p(161, 162), None)], "SYSLOG": [(_UDP, None, _p(514), None)],
    "RDP": [(_TCP, None, _p(3389), None)], "SMB": [(_TCP, None, _p(445), None)],
    "SAMBA": [(_TCP, None, _p(139), None)], "LDAP": [(_TCP, None, _p(389), None)],
    "IMAP": [(_TCP, None, _p(143), None)], "POP3": [(_TCP, None, _p(110), None)],
    "TFTP": [(_UDP, None, _p(69), None)], "MYSQL": [(_TCP, None, _p(3306), None)],
    "MS-SQL": [(_TCP, None, _p(1433, 1434), None)], "BGP": [(_TCP, None, _p(179), None)],
    "VNC": [(_TCP, None, _p(5900), None)], "KERBEROS": [(_TU, None, _p(88), None)],
}
_ADDR_BUILTIN = {"all": IPSet(["0.0.0.0/0"]), "none": IPSet(), "all6": IPSet(["::/0"])}
# Settings read and deliberately not modelled: they do not change which packets pass.
IGNORED = frozenset({
    "uuid", "name", "comment", "comments", "color", "visibility", "logtraffic", "logtraffic-start",
    "schedule", "global-label", "label", "utm-status", "inspection-mode", "ssl-ssh-profile",
    "av-profile", "webfilter-profile", "ips-sensor", "application-list", "dnsfilter-profile",
    "profile-protocol-options", "profile-type", "profile-group", "emailfilter-profile",
    "match-vip", "auto-asic-offload", "capture-packet", "tcp-session-without-syn",
    "associated-interface", "allow-routing", "category", "fabric-object", "ippool", "poolname",
    "fixedport", "session-ttl", "timeout-send-rst", "diffserv-forward", "diffserv-reverse",
    "traffic-shaper", "traffic-shaper-reverse", "per-ip-shaper", "proxy", "helper",
    "check-reset-range", "tcp-halfclose-timer", "tcp-halfopen-timer", "tcp-timewait-timer",
    "udp-idle-timer", "iprange", "app-service-type", "app-category",
})
_INTERFACE_FILTERING = frozenset({"ip"})


@dataclass
class _Set:
    key: str
    values: list[str]
    line: int
    text: str


@dataclass
class _Node:
    kind: str                       # "config" or "edit"
    name: str
    line: int
    sets: list[_Set] = field(default_factory=list)
    subs: list[_Node] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)   # every line inside, for accounting


def detect(text: str) -> str | None:
    head = text[:20000]
    if "config firewall " in head or ("config system " in head and "\n    edit " in head) \
            or head.startswith("#config-version="):
        return "fortios"
    return None


def parse(path: str | Path) -> Ruleset:
    return parse_text(read_config(path), str(path))


def parse_text(text: str, path: str) -> Ruleset:
    return parse_accounted(text, path)[0]


def parse_accounted(text: str, path: str) -> tuple[Ruleset, dict[int, str]]:
    p = _Parser(text, path)
    p.run()
    return p.rs, p.category


def _words(s: str, path: str, line: int) -> list[str]:
    """FortiOS words: blanks separate, "double" or 'single' quotes group, backslash escapes."""
    out, cur, quote, has, i = [], [], None, False, 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i + 1])
            has, i = True, i + 2
            continue
        if quote:
            if c == quote:
                quote = None
            else:
                cur.append(c)
        elif c in "\"'":
            quote, has = c, True
        elif c in " \t":
            if has:
                out.append("".join(cur))
                cur, has = [], False
        else:
            cur.append(c)
            has = True
        i += 1
    if quote:
        raise FirewallConfigError(path, line, "unterminated quoted string")
    if has:
        out.append("".join(cur))
    return out


class _Parser:
    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.rs = Ruleset(path=path, format="fortios", lines=len(self.lines))
        self.category: dict[int, str] = {}
        self.addresses: dict[str, IPSet] = dict(_ADDR_BUILTIN)
        self.services: dict[str, list[Service]] = {}
        self.zones: dict[str, list[str]] = {}
        self.cont: dict[int, int] = {}

    def origin(self, line: int) -> Origin:
        return Origin(self.path, line, self.lines[line - 1].strip())

    def unsupported(self, line: int, why: str) -> None:
        self.category[line] = "unsupported"
        self.rs.unsupported.append(Unsupported(self.origin(line), why))

    def tree(self) -> list[_Node]:
        top: list[_Node] = []
        stack: list[_Node] = []
        i = 0
        while i < len(self.lines):
            no, raw = i + 1, self.lines[i].strip()
            i += 1
            span = [no]
            while raw.count('"') % 2 and i < len(self.lines):    # a quoted value over lines
                self.cont[i + 1] = no
                span.append(i + 1)
                raw += "\n" + self.lines[i]
                i += 1
            for node in stack:
                node.lines.extend(span)
            if not raw or raw.startswith("#"):
                self.category[no] = "comment"
                continue
            w = _words(raw, self.path, no)
            if w[0] == "config":
                node = _Node("config", " ".join(w[1:]), no)
                (stack[-1].subs if stack else top).append(node)
                stack.append(node)
            elif w[0] == "edit" and stack:
                node = _Node("edit", w[1] if len(w) > 1 else "", no)
                stack[-1].subs.append(node)
                stack.append(node)
            elif w[0] == "next" and stack and stack[-1].kind == "edit":
                stack.pop()
            elif w[0] == "end" and stack:
                if stack[-1].kind == "edit":
                    stack.pop()
                if stack:
                    stack.pop()
            elif w[0] == "unset" and stack and len(w) > 1:
                self.category[no] = "ignored"       # back to the default, as if never set
            elif w[0] in ("set", "append", "select") and stack and len(w) > 1:
                stack[-1].sets.append(_Set(w[1], w[2:], no, raw))
            else:
                self.unsupported(no, f"not a FortiOS configuration statement: {w[0]}")
                continue
            self.category.setdefault(no, "modelled")
        return top

    def run(self) -> None:
        top = self.tree()
        sections: dict[str, list[_Node]] = {}
        for node in top:
            sections.setdefault(node.name, []).append(node)
        order = ["system interface", "system zone", "firewall address", "firewall address6",
                 "firewall addrgrp", "firewall addrgrp6", "firewall service custom",
                 "firewall service group", "firewall policy", "firewall policy6"]
        for name in order:
            for node in sections.pop(name, []):
                getattr(self, "_" + name.replace(" ", "_").replace("-", "_"))(node)
        for nodes in sections.values():
            for node in nodes:
                if node.name.startswith("firewall ") and node.name not in _NOT_FILTERING:
                    self.unsupported(node.line, f"config {node.name} is not modelled")
                    for n in node.lines:
                        self.category[n] = "unsupported"
                else:
                    for n in (node.line, *node.lines):
                        if self.category.get(n) != "comment":
                            self.category[n] = "not-firewall"
        self.rs.sets.update({k: v for k, v in self.addresses.items() if k not in _ADDR_BUILTIN})
        self.rs.chains.setdefault(CHAIN, Chain(CHAIN, policy="drop", family="inet"))
        self.rs.bindings.append(Binding(chain=CHAIN, direction="forward"))
        for n, first in self.cont.items():          # a value's continuation lines go with it
            self.category[n] = self.category.get(first, "unsupported")
        for n in range(1, len(self.lines) + 1):      # a safety net: never silent
            if n not in self.category:
                self.unsupported(n, "line not accounted by the parser")

    def _settings(self, edit: _Node, known: set[str]) -> dict[str, _Set]:
        """The edit's settings by key; unknown keys are Unsupported, ignored ones marked."""
        out = {}
        for s in edit.sets:
            if s.key in known and not s.values:
                self.unsupported(s.line, f"setting {s.key} without a value")
            elif s.key in known:
                out[s.key] = s
            elif s.key in IGNORED:
                self.category[s.line] = "comment" if s.key in ("comment", "comments", "name") \
                    else "ignored"
            else:
                self.unsupported(s.line, f"setting not modelled: {s.key}")
        for sub in edit.subs:
            self.unsupported(sub.line, f"config {sub.name} not modelled here")
            for n in sub.lines:
                self.category[n] = "unsupported"
        return out

    # --- sections -------------------------------------------------------------------
    def _system_interface(self, node: _Node) -> None:
        for edit in node.subs:
            nets = IPSet()
            for s in edit.sets:
                if s.key == "ip" and len(s.values) >= 1:
                    try:
                        nets |= _ipmask(s.values)
                    except (AddrFormatError, ValueError, IndexError):
                        self.unsupported(s.line, "interface address not understood")
                else:
                    self.category[s.line] = "not-firewall"
            for sub in edit.subs:
                for n in (sub.line, *sub.lines):
                    self.category[n] = "not-firewall"
            self.rs.interfaces[edit.name] = nets

    def _system_zone(self, node: _Node) -> None:
        for edit in node.subs:
            s = self._settings(edit, {"interface", "intrazone", "description"})
            members = s["interface"].values if "interface" in s else []
            self.zones[edit.name] = members
            self.rs.zones[edit.name] = tuple(members)
            if "description" in s:
                self.category[s["description"].line] = "comment"
            if s.get("intrazone") and s["intrazone"].values[:1] == ["allow"]:
                self.unsupported(s["intrazone"].line, "intrazone allow is not modelled")
            nets = IPSet()
            for m in members:
                nets |= self.rs.interfaces.get(m, IPSet())
            self.rs.interfaces[edit.name] = nets

    def _firewall_address(self, node: _Node) -> None:
        for edit in node.subs:
            s = self._settings(edit, {"type", "subnet", "start-ip", "end-ip", "fqdn", "ip6",
                                      "start-ip6", "end-ip6", "country", "wildcard"})
            kind = s["type"].values[0] if "type" in s else "ipmask"
            try:
                if kind in ("ipmask", "ipprefix") and "ip6" in s:
                    addrs = IPSet([IPNetwork(s["ip6"].values[0]).cidr])
                elif kind == "ipmask" and node.name.endswith("6"):
                    addrs = IPSet(["::/0"])          # an address6 without ip6 is the whole space
                elif kind == "ipmask":
                    addrs = _ipmask(s["subnet"].values) if "subnet" in s else IPSet(["0.0.0.0/0"])
                elif kind == "iprange":
                    lo = s.get("start-ip") or s.get("start-ip6")
                    hi = s.get("end-ip") or s.get("end-ip6")
                    addrs = IPSet(IPRange(lo.values[0], hi.values[0]))
                else:
                    why = {"fqdn": "an fqdn address needs a DNS resolution: not modelled"}.get(
                        kind, f"address type {kind} not modelled")
                    self.unsupported(s["type"].line, why)
                    continue
            except (AddrFormatError, ValueError, IndexError, AttributeError):
                self.unsupported(edit.line, "address not understood")
                continue
            self.addresses[edit.name] = addrs

    _firewall_address6 = _firewall_address

    def _firewall_addrgrp(self, node: _Node) -> None:
        groups = {e.name: e for e in node.subs}
        done: set[str] = set()

        def build(name: str, seen: tuple[str, ...]) -> None:
            if name in done or name not in groups:
                return
            if name in seen:
                raise ValueError(f"address group {name} contains itself")
            edit = groups[name]
            s = self._settings(edit, {"member", "exclude", "exclude-member"})
            addrs = IPSet()
            for m in s["member"].values if "member" in s else []:
                build(m, (*seen, name))
                if m not in self.addresses:
                    self.unsupported(s["member"].line, f"member {m} is not a modelled address")
                    continue
                addrs |= self.addresses[m]
            if "exclude" in s and s["exclude"].values[:1] == ["enable"]:
                for m in s["exclude-member"].values if "exclude-member" in s else []:
                    addrs -= self.addresses.get(m, IPSet())
            self.addresses[name] = addrs
            done.add(name)

        for name, edit in groups.items():
            try:
                build(name, ())
            except ValueError as exc:
                self.unsupported(edit.line, str(exc))

    _firewall_addrgrp6 = _firewall_addrgrp

    def _firewall_service_custom(self, node: _Node) -> None:
        for edit in node.subs:
            s = self._settings(edit, {"protocol", "tcp-portrange", "udp-portrange",
                                      "sctp-portrange", "icmptype", "icmpcode",
                                      "protocol-number"})
            proto = s["protocol"].values[0].upper() if "protocol" in s else "TCP/UDP/SCTP"
            out: list[Service] = []
            try:
                if proto in ("TCP/UDP/SCTP", "TCP/UDP/UDP-LITE/SCTP"):
                    for key, name in (("tcp-portrange", "tcp"), ("udp-portrange", "udp"),
                                      ("sctp-portrange", "sctp")):
                        if key in s:
                            out += _portranges(frozenset({name}), s[key].values)
                elif proto in ("ICMP", "ICMP6"):
                    types = frozenset({int(s["icmptype"].values[0])}) if "icmptype" in s else None
                    out.append((frozenset({proto.lower().replace("icmp6", "icmpv6")}), None, None,
                                types))
                    if "icmpcode" in s:
                        self.category[s["icmpcode"].line] = "ignored"   # codes are not modelled
                elif proto == "IP":
                    num = s["protocol-number"].values[0] if "protocol-number" in s else "0"
                    out.append((None if num == "0" else frozenset({_PROTO_NUM.get(num, num)}),
                                None, None, None))
                else:
                    self.unsupported(s["protocol"].line, f"service protocol {proto} not modelled")
                    continue
            except (ValueError, IndexError) as exc:
                self.unsupported(edit.line, f"service not understood: {exc}")
                continue
            self.services[edit.name] = out

    def _firewall_service_group(self, node: _Node) -> None:
        groups = {e.name: e for e in node.subs}

        def build(name: str, seen: tuple[str, ...]) -> list[Service]:
            if name in self.services:
                return self.services[name]
            if name in groups and name not in seen:
                s = self._settings(groups[name], {"member", "proxy"})
                out: list[Service] = []
                for m in s["member"].values if "member" in s else []:
                    got = build(m, (*seen, name))
                    if got is None:
                        self.unsupported(s["member"].line, f"member {m} is not a modelled service")
                        continue
                    out += got
                self.services[name] = out
                return out
            return BUILTIN.get(name)

        for name in groups:
            build(name, ())

    def _firewall_policy(self, node: _Node) -> None:
        chain = self.rs.chains.setdefault(CHAIN, Chain(CHAIN, policy="drop", family="inet",
                                                       origin=self.origin(node.line)))
        keys = {"srcintf", "dstintf", "srcaddr", "dstaddr", "srcaddr6", "dstaddr6", "service",
                "action", "status", "nat", "srcaddr-negate", "dstaddr-negate", "service-negate"}
        for edit in node.subs:
            s = self._settings(edit, keys)
            if "status" in s and s["status"].values[:1] == ["disable"]:
                for n in (edit.line, *edit.lines):
                    if self.category.get(n) != "unsupported":
                        self.category[n] = "disabled"
                continue
            self._policy(chain, edit, s, node.name == "firewall policy6")

    _firewall_policy6 = _firewall_policy

    def _policy(self, chain: Chain, edit: _Node, s: dict[str, _Set], v6: bool) -> None:
        origin = self.origin(edit.line)
        action = (s["action"].values[0] if "action" in s else "deny")
        verdict = {"accept": "accept", "deny": "drop"}.get(action)
        if verdict is None:
            self.unsupported(s["action"].line, f"policy action {action} not modelled")
            return
        if "service-negate" in s and s["service-negate"].values[:1] == ["enable"]:
            self.unsupported(s["service-negate"].line, "service-negate is not modelled")
            return
        negate = frozenset(f for k, f in (("srcaddr-negate", "src"), ("dstaddr-negate", "dst"))
                           if k in s and s[k].values[:1] == ["enable"])
        try:
            src = self._addrs(s, "srcaddr", v6)
            dst = self._addrs(s, "dstaddr", v6)
            services = self._services(s)
        except KeyError as exc:
            self.unsupported(exc.args[1], exc.args[0])
            return
        nat = "source NAT (nat enable)" if "nat" in s and s["nat"].values[:1] == ["enable"] else None
        name = next((x.values[0] for x in edit.sets if x.key == "name" and x.values), None)
        comment = f"policy {edit.name}" + (f" ({name})" if name else "")
        for i_in in self._ifaces(s, "srcintf"):
            for i_out in self._ifaces(s, "dstintf"):
                for protos, sport, dport, icmp in services:
                    m = Match(src=src, dst=dst, protocols=protos, sport=sport, dport=dport,
                              icmp_types=icmp, in_iface=i_in, out_iface=i_out, negate=negate)
                    chain.rules.append(Rule(m, verdict, origin, comment=comment, nat=nat))
        if nat:
            self.rs.nat.append(Rule(Match(src=src, dst=dst), "continue", origin, nat=nat,
                                    comment=comment))

    def _ifaces(self, s: dict[str, _Set], key: str) -> list[str | None]:
        names = s[key].values if key in s else ["any"]
        out: list[str | None] = []
        for n in names:
            if n == "any":
                return [None]
            out += self.zones.get(n, [n])
        return out

    def _addrs(self, s: dict[str, _Set], key: str, v6: bool) -> IPSet | None:
        """srcaddr/dstaddr and their IPv6 twins; "all" is the family's whole space."""
        names = [(n, v6) for n in (s[key].values if key in s else [])]
        names += [(n, True) for n in (s[key + "6"].values if key + "6" in s else [])]
        out = IPSet()                           # FortiOS requires addresses: none matches nothing
        for n, six in names:
            if n == "all":                  # the predefined address, whatever the file redefines
                out |= _ADDR_BUILTIN["all6" if six else "all"]
                continue
            if n not in self.addresses:
                line = (s.get(key) or s[key + "6"]).line
                raise KeyError(f"address {n} is not a modelled address", line)
            out |= self.addresses[n]
        return out

    def _services(self, s: dict[str, _Set]) -> list[Service]:
        if "service" not in s:
            return [(None, None, None, None)]
        out: list[Service] = []
        for n in s["service"].values:
            got = self.services.get(n) or BUILTIN.get(n)
            if got is None:
                raise KeyError(f"service {n} is not defined", s["service"].line)
            out += got
        return out


_NOT_FILTERING = frozenset({"firewall schedule onetime", "firewall schedule recurring",
                            "firewall schedule group", "firewall service category",
                            "firewall ssl-ssh-profile", "firewall profile-protocol-options",
                            "firewall auth-portal", "firewall ssl setting", "firewall ldb-monitor",
                            "firewall internet-service-name", "firewall shaper traffic-shaper",
                            "firewall shaper per-ip-shaper", "firewall ippool"})
_PROTO_NUM = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "132": "sctp", "47": "gre",
              "50": "esp", "51": "ah", "2": "igmp"}


def _ipmask(values: list[str]) -> IPSet:
    if "/" in values[0]:
        return IPSet([IPNetwork(values[0]).cidr])
    return IPSet([IPNetwork(f"{IPAddress(values[0])}/{values[1]}").cidr])


def _range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    a, b = int(lo), int(hi or lo)
    if not (0 <= a <= b <= 65535):
        raise ValueError(f"port range {text}")
    return a, b


def _portranges(protos: frozenset[str], values: list[str]) -> list[Service]:
    """"80 443 1000-2000:1024-65535": destination ranges, each with an optional source range."""
    plain: list[tuple[int, int]] = []
    out: list[Service] = []
    for v in values:
        dst, _, src = v.partition(":")
        if src:
            out.append((protos, P.normalize([_range(src)]), P.normalize([_range(dst)]), None))
        else:
            plain.append(_range(dst))
    if plain:
        out.insert(0, (protos, None, P.normalize(plain), None))
    return out
