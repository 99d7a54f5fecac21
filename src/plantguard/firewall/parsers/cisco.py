"""Cisco IOS / IOS-XE / NX-OS-style and ASA configurations into the rule model.

What is modelled: named and numbered access-lists (standard, extended, NX-OS `ip access-list`
with sequence numbers and prefixes, ASA `access-list NAME extended`), objects and object-groups
(network, service, protocol, nested by `group-object`), interface addresses and bindings (`ip
access-group`, ASA `access-group ... interface` and `nameif`), and the IOS zone-based firewall
(zones, zone-pairs, inspect class-maps and policy-maps).

Each ACL is a Chain whose policy is "drop": Cisco's implicit deny at the end of every list. A
zone-pair is a Chain (policy "drop", the zone firewall's default between zones) bound with
Binding(from_zone, to_zone); each of its classes is a user chain "POLICY/CLASS" it jumps to, in
which the class-map's ACL permits lead to the class action and its denies return (the class does
not match). Ruleset.interfaces holds each interface (ASA: its nameif) and each security zone
(the union of its members' networks).

Line accounting, so that "0 unreported lines" means something: every line of the file gets one
category (`parse_accounted` returns them): "modelled" (it made a rule, object, binding or
address, or was read: hostname, `log`), "comment" (blank, `!`, remark, description),
"not-firewall" (commands listed in NOT_FIREWALL and their blocks, interface attributes such as
speed or mtu, banners, QoS class/policy-maps), "unused" (inspect class- and policy-maps
that no zone-pair uses: they filter nothing), or "unsupported" (recorded as model.Unsupported
with why). Lines inside firewall blocks that are not understood, and unknown top-level commands,
are always unsupported."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from netaddr import AddrFormatError, IPAddress, IPNetwork, IPRange, IPSet

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

FORMATS = ("cisco-ios", "cisco-asa")

# IANA service names as Cisco spells them (a small table: the names configurations use).
SERVICES: dict[str, int] = {
    "echo": 7, "discard": 9, "daytime": 13, "chargen": 19, "ftp-data": 20, "ftp": 21,
    "ssh": 22, "telnet": 23, "smtp": 25, "time": 37, "nameserver": 42, "whois": 43,
    "tacacs": 49, "domain": 53, "bootps": 67, "bootpc": 68, "tftp": 69, "gopher": 70,
    "finger": 79, "www": 80, "http": 80, "kerberos": 88, "hostname": 101, "pop2": 109,
    "pop3": 110, "sunrpc": 111, "ident": 113, "nntp": 119, "ntp": 123, "netbios-ns": 137,
    "netbios-dgm": 138, "netbios-ss": 139, "imap4": 143, "snmp": 161, "snmptrap": 162,
    "xdmcp": 177, "bgp": 179, "irc": 194, "ldap": 389, "mobile-ip": 434, "https": 443,
    "pim-auto-rp": 496, "isakmp": 500, "biff": 512, "exec": 512, "login": 513, "who": 513,
    "cmd": 514, "rsh": 514, "syslog": 514, "lpd": 515, "talk": 517, "rip": 520, "uucp": 540,
    "klogin": 543, "kshell": 544, "rtsp": 554, "ldaps": 636, "lotusnotes": 1352,
    "citrix-ica": 1494, "sqlnet": 1521, "radius": 1645, "radius-acct": 1646, "h323": 1720,
    "pptp": 1723, "nfs": 2049, "ctiqbe": 2748, "sip": 5060, "aol": 5190,
}
PROTOCOLS: dict[str, str] = {
    "tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmp6": "icmpv6", "ipv6-icmp": "icmpv6",
    "sctp": "sctp", "gre": "gre", "esp": "esp", "ahp": "ah", "ah": "ah", "igmp": "igmp",
    "ospf": "89", "eigrp": "88", "pim": "103", "ipinip": "4", "nos": "94", "pcp": "108",
    "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "132": "sctp", "47": "gre",
    "50": "esp", "51": "ah", "2": "igmp",
}
ANY_IP = ("ip", "ipv6", "0")
# ICMP message names; a name that also fixes a code is kept as its type (codes are not modelled).
ICMP_TYPES: dict[str, int] = {
    "echo-reply": 0, "unreachable": 3, "net-unreachable": 3, "host-unreachable": 3,
    "protocol-unreachable": 3, "port-unreachable": 3, "administratively-prohibited": 3,
    "source-quench": 4, "redirect": 5, "net-redirect": 5, "host-redirect": 5,
    "alternate-address": 6, "echo": 8, "router-advertisement": 9, "router-solicitation": 10,
    "time-exceeded": 11, "ttl-exceeded": 11, "reassembly-timeout": 11,
    "parameter-problem": 12, "timestamp-request": 13, "timestamp-reply": 14,
    "information-request": 15, "information-reply": 16, "mask-request": 17, "mask-reply": 18,
    "traceroute": 30, "conversion-error": 31, "mobile-redirect": 32,
}
# `match protocol NAME` in an inspect class-map: Cisco's default port-to-application map.
APP_PROTOCOLS: dict[str, tuple[frozenset[str], Ports | None]] = {
    "tcp": (frozenset({"tcp"}), None), "udp": (frozenset({"udp"}), None),
    "icmp": (frozenset({"icmp"}), None),
    "http": (frozenset({"tcp"}), ((80, 80),)), "https": (frozenset({"tcp"}), ((443, 443),)),
    "ssh": (frozenset({"tcp"}), ((22, 22),)), "telnet": (frozenset({"tcp"}), ((23, 23),)),
    "ftp": (frozenset({"tcp"}), ((21, 21),)), "smtp": (frozenset({"tcp"}), ((25, 25),)),
    "tftp": (frozenset({"udp"}), ((69, 69),)), "ntp": (frozenset({"udp"}), ((123, 123),)),
    "dns": (frozenset({"tcp", "udp"}), ((53, 53),)),
    "snmp": (frozenset({"udp"}), ((161, 161),)),
}
# Top-level commands that do not filter transit traffic (their indented blocks go with them).
NOT_FIREWALL = (
    "hostname", "version", "ASA Version", "PIX Version", "boot", "service", "enable", "username", "aaa", "clock", "logging",
    "ntp", "snmp-server", "snmp", "line", "router", "ip route", "ipv6 route", "route",
    "ip domain", "ip domain-name", "ip domain-lookup", "ip name-server", "ip ssh", "ip http",
    "ip scp", "ip cef", "ipv6 unicast-routing", "ip routing", "ip forward-protocol",
    "ip classless", "ip subnet-zero", "crypto", "spanning-tree", "vlan", "vtp", "license",
    "end", "exit", "control-plane", "call-home", "archive", "redundancy", "feature", "key",
    "domain-name", "dns", "ftp", "pager", "mtu", "ssh", "telnet", "http", "console",
    "asdm", "dhcpd", "tftp-server", "prefix-list", "ip prefix-list", "route-map",
    "ip sla", "track", "diagnostic", "memory", "multilink", "platform", "cdp", "lldp",
    "no", "terminal", "names", "arp", "failover", "monitor-interface", "threat-detection",
    "webvpn", "tunnel-group", "group-policy", "dynamic-access-policy-record", "user-identity",
    "parameter-map", "service-policy", "password", "passwd", "system", "mac-address",
    "wccp", "ip dhcp", "ipv6 dhcp", "ip nat", "card", "hw-module", "transceiver",
    "file", "scheduler", "alias", "privilege", "login", "mgcp", "voice", "dial-peer",
)
IGNORED_OPTIONS = ("log", "log-input")


@dataclass
class _Line:
    no: int
    text: str
    indent: int

    @property
    def words(self) -> list[str]:
        return self.text.split()


@dataclass
class _Block:
    head: _Line
    children: list[_Line] = field(default_factory=list)


@dataclass(frozen=True)
class _Service:
    """One protocol with its port narrowing: what a service object or group entry stands for."""
    protocols: frozenset[str] | None
    sport: Ports | None = None
    dport: Ports | None = None
    icmp_types: frozenset[int] | None = None


class _Skip(Exception):
    """This line cannot be modelled; its message is the why."""


def detect(text: str) -> str | None:
    """cisco-asa or cisco-ios when the text reads as a Cisco configuration, else None."""
    if re.search(r"^(ASA|PIX|FWSM) Version|^\s*nameif\s|^access-list \S+ (extended|webtype)\s"
                 r"|^access-group \S+ (in|out) interface\s", text, re.MULTILINE):
        return "cisco-asa"
    if re.search(r"^(ip(v6)? access-list|access-list \d+ |interface \S|object-group |"
                 r"zone security|hostname )", text, re.MULTILINE):
        return "cisco-ios"
    return None


def parse(path: str | Path) -> Ruleset:
    return parse_text(read_config(path), str(path))


def parse_text(text: str, path: str) -> Ruleset:
    return parse_accounted(text, path)[0]


def parse_accounted(text: str, path: str) -> tuple[Ruleset, dict[int, str]]:
    """The ruleset and each line's category (see the module docstring)."""
    fmt = detect(text) or "cisco-ios"
    parser = _Parser(text, path, fmt)
    parser.run()
    return parser.rs, parser.category


class _Parser:
    def __init__(self, text: str, path: str, fmt: str) -> None:
        self.path, self.fmt, self.asa = path, fmt, fmt == "cisco-asa"
        self.lines = text.splitlines()
        self.rs = Ruleset(path=path, format=fmt, lines=len(self.lines))
        self.category: dict[int, str] = {}
        self.networks: dict[str, IPSet] = {}
        self.services: dict[str, list[_Service]] = {}      # service objects / groups
        self.portgroups: dict[str, Ports] = {}             # ASA port-object groups
        self.protogroups: dict[str, frozenset[str] | None] = {}
        self.icmpgroups: dict[str, frozenset[int]] = {}
        self.class_maps: dict[str, _Block] = {}
        self.policy_maps: dict[str, _Block] = {}
        self.zones: dict[str, list[str]] = {}
        self.levels: dict[str, _Line] = {}                 # ASA nameif -> its security-level line
        self._pending: dict[str, list[_Line]] = {}         # object-group bodies, resolved lazily
        self._kinds: dict[str, tuple[str, _Line]] = {}
        self.broken: set[str] = set()                      # objects with entries not modelled
        self._remarks: dict[str, str] = {}                 # ASA: a remark for the next entry
        self._resolving: set[str] = set()

    # --- accounting ---------------------------------------------------------------------
    def mark(self, line: _Line, category: str) -> None:
        self.category[line.no] = category

    def unsupported(self, line: _Line, why: str) -> None:
        self.mark(line, "unsupported")
        self.rs.unsupported.append(Unsupported(self.origin(line), why))

    def origin(self, line: _Line) -> Origin:
        return Origin(self.path, line.no, line.text.strip())

    # --- structure ----------------------------------------------------------------------
    def blocks(self) -> list[_Block]:
        out: list[_Block] = []
        i = 0
        while i < len(self.lines):
            raw = self.lines[i]
            line = _Line(i + 1, raw.rstrip(), len(raw) - len(raw.lstrip()))
            i += 1
            stripped = line.text.strip()
            if not stripped or stripped.startswith(("!", ":", "#")):
                self.mark(line, "comment")
                continue
            if line.indent == 0 and stripped.startswith("banner "):
                i = self._banner(line, i)
                continue
            if line.indent > 0 and out:
                out[-1].children.append(line)
            else:
                out.append(_Block(line))
        return out

    def _banner(self, line: _Line, i: int) -> int:
        """A banner runs from its delimiter to the next occurrence of it."""
        self.mark(line, "not-firewall")
        words = line.text.split(None, 2)
        rest = words[2] if len(words) > 2 else ""
        delim = rest[:2] if rest.startswith("^C") else rest[:1]
        if not delim or delim in rest[len(delim):]:
            return i
        while i < len(self.lines):
            self.category[i + 1] = "not-firewall"
            i += 1
            if delim in self.lines[i - 1]:
                break
        return i

    def run(self) -> None:
        blocks = self.blocks()
        handlers = []
        for block in blocks:                    # objects first: lists may use them before
            w = block.head.words                # their definition
            if w[0] in ("object-group", "object") and len(w) >= 3:
                self._object(block)
            else:
                handlers.append(block)
        for name in list(self._pending):
            self._resolve_group(name)
        for block in handlers:
            if block.head.words[0] in ("class-map", "policy-map"):
                self._collect_map(block)
        handlers.sort(key=lambda b: b.head.words[0] == "zone-pair")   # after the ACLs they use
        for block in handlers:
            try:
                self._top(block)
            except _Skip as why:
                self.unsupported(block.head, str(why))
                for child in block.children:
                    self.unsupported(child, "inside a block that could not be read")
        for name, line in self.levels.items():
            if not any(b.interface == name and b.direction == "in" for b in self.rs.bindings):
                self.unsupported(line, "security-level's implicit permit to lower levels is not "
                                       "modelled (no inbound access-group on this interface)")
        for block in [*self.class_maps.values(), *self.policy_maps.values()]:
            for line in (block.head, *block.children):      # defined, used by no zone-pair
                self.category.setdefault(line.no, "unused")
        self.rs.sets.update(self.networks)
        self.rs.zones.update({z: tuple(members) for z, members in self.zones.items()})
        for n in range(1, len(self.lines) + 1):             # a safety net: never silent
            if n not in self.category:
                self.unsupported(_Line(n, self.lines[n - 1], 0), "line not accounted by the parser")

    def _top(self, block: _Block) -> None:
        head = block.head
        w = head.words
        text = " ".join(w)
        if w[0] == "hostname" and len(w) > 1:
            self.rs.hostname = w[1]
            self.mark(head, "modelled")
        elif w[0] == "interface" and len(w) > 1:
            self._interface(block)
        elif w[:2] in (["ip", "access-list"], ["ipv6", "access-list"]):
            self._named_acl(block)
        elif w[0] == "access-list":
            self._flat_acl(head)
            self._children_unsupported(block, "unexpected indented line after access-list")
        elif w[0] == "access-group":
            self._access_group(head)
        elif w[0] == "zone" and w[1:2] == ["security"]:
            self.zones.setdefault(w[2] if len(w) > 2 else "", [])
            self.mark(head, "modelled")
            for child in block.children:
                self.mark(child, "comment" if child.words[0] == "description" else "not-firewall")
        elif w[0] == "zone-pair":
            self._zone_pair(block)
        elif w[0] in ("class-map", "policy-map"):
            pass                                # collected, accounted by their use
        elif w[0] == "nat" or (w[0] == "object" and len(w) < 3):
            self.rs.nat.append(Rule(Match(), "continue", self.origin(head), nat=text))
            self.mark(head, "modelled")
            self._children_unsupported(block, "unexpected indented line after nat")
        elif any(text == c or text.startswith(c + " ") for c in NOT_FIREWALL):
            self.mark(head, "not-firewall")
            for child in block.children:
                self.mark(child, "not-firewall")
        else:
            raise _Skip(f"command not modelled: {w[0]}")

    def _children_unsupported(self, block: _Block, why: str) -> None:
        for child in block.children:
            self.unsupported(child, why)

    # --- objects ------------------------------------------------------------------------
    def _object(self, block: _Block) -> None:
        w = block.head.words
        kind, name = w[1], w[2]
        self.mark(block.head, "modelled")
        if w[0] == "object-group":
            if kind == "service" and len(w) > 3 and w[3] in ("tcp", "udp", "tcp-udp"):
                kind = "portgroup:" + w[3]          # ASA: a group of ports for one protocol
            self._pending[name] = block.children
            self._kinds[name] = (kind, block.head)
            return
        # ASA `object network|service NAME`
        if kind == "network":
            addrs = IPSet()
            for child in block.children:
                cw = child.words
                try:
                    if cw[0] == "host":
                        addrs |= IPSet([IPAddress(cw[1])])
                    elif cw[0] == "subnet":
                        addrs |= _net(cw[1], cw[2] if len(cw) > 2 else None, mask=True)
                    elif cw[0] == "range":
                        addrs |= IPSet(IPRange(cw[1], cw[2]))
                    elif cw[0] == "description":
                        self.mark(child, "comment")
                        continue
                    elif cw[0] == "nat":
                        self.rs.nat.append(Rule(Match(dst=addrs), "continue", self.origin(child),
                                                nat=f"object {name}: {child.text.strip()}"))
                    elif cw[0] == "fqdn":
                        raise _Skip("fqdn objects need name resolution: not modelled")
                    else:
                        raise _Skip(f"object network entry not modelled: {cw[0]}")
                    self.mark(child, "modelled")
                except _Skip as why:
                    self.unsupported(child, str(why))
                    self.broken.add(name)
                except (AddrFormatError, IndexError, ValueError):
                    self.unsupported(child, "not an address")
                    self.broken.add(name)
            self.networks[name] = addrs
        elif kind == "service":
            entries = []
            for child in block.children:
                if child.words[0] == "description":
                    self.mark(child, "comment")
                    continue
                try:
                    if child.words[0] != "service":
                        raise _Skip("object service entry not modelled")
                    entries.append(self._service_entry(child.words[1:]))
                    self.mark(child, "modelled")
                except _Skip as why:
                    self.unsupported(child, str(why))
                    self.broken.add(name)
            self.services[name] = entries
        else:
            self.unsupported(block.head, f"object {kind} not modelled")
            self._children_unsupported(block, f"inside object {kind}")

    def _resolve_group(self, name: str) -> None:
        """Build an object-group (after all are known, so nesting order does not matter)."""
        if name not in self._pending:
            return
        if name in self._resolving:
            raise _Skip(f"object-group {name} contains itself")
        self._resolving.add(name)
        kind, head = self._kinds[name]
        children = self._pending[name]
        addrs, entries, portset, protos, icmps = IPSet(), [], [], set(), set()
        any_proto = False
        for child in children:
            cw = child.words
            try:
                if cw[0] == "description":
                    self.mark(child, "comment")
                    continue
                if cw[0] == "group-object":
                    self._resolve_group(cw[1])
                    if kind == "network":
                        addrs |= self._netobj(cw[1])
                    elif kind == "service":
                        entries += self.services.get(cw[1]) or _missing(cw[1])
                    elif kind.startswith("portgroup:"):
                        portset += self.portgroups.get(cw[1]) or _missing(cw[1])
                    elif kind == "protocol":
                        sub = self.protogroups.get(cw[1], _missing(cw[1]))
                        any_proto |= sub is None
                        protos |= sub or set()
                    elif kind == "icmp-type":
                        icmps |= self.icmpgroups.get(cw[1]) or _missing(cw[1])
                elif kind == "network":
                    if cw[0] == "network-object":
                        cw = cw[1:]
                        if cw[0] == "object":
                            addrs |= self._netobj(cw[1])
                            self.mark(child, "modelled")
                            continue
                    addrs |= self._group_address(cw)
                elif kind == "service":
                    if cw[0] == "service-object":
                        if cw[1] == "object":
                            entries += self.services.get(cw[2]) or _missing(cw[2])
                        else:
                            entries.append(self._service_entry(cw[1:]))
                    else:                           # IOS: "tcp eq 3000", "icmp", ...
                        entries.append(self._service_entry(cw))
                elif kind.startswith("portgroup:"):
                    if cw[0] != "port-object":
                        raise _Skip("port group entry not modelled")
                    got, rest = _port_op(cw[1:])
                    if got is None or rest:
                        raise _Skip("port-object not understood")
                    portset += got
                elif kind == "protocol":
                    if cw[0] != "protocol-object":
                        raise _Skip("protocol group entry not modelled")
                    if cw[1] in ANY_IP:
                        any_proto = True
                    else:
                        protos.add(_protocol(cw[1]))
                elif kind == "icmp-type":
                    if cw[0] != "icmp-object" or cw[1] not in ICMP_TYPES:
                        raise _Skip("icmp-type entry not modelled")
                    icmps.add(ICMP_TYPES[cw[1]])
                else:
                    raise _Skip(f"object-group {kind} not modelled")
                self.mark(child, "modelled")
            except _Skip as why:
                self.unsupported(child, str(why))
                self.broken.add(name)
            except (AddrFormatError, IndexError, ValueError):
                self.unsupported(child, "not understood")
                self.broken.add(name)
        if kind == "network":
            self.networks[name] = addrs
        elif kind == "service":
            self.services[name] = entries
        elif kind.startswith("portgroup:"):
            proto = kind.split(":")[1]
            ports = P.normalize(portset)
            self.portgroups[name] = ports
            protoset = frozenset({"tcp", "udp"}) if proto == "tcp-udp" else frozenset({proto})
            self.services[name] = [_Service(protoset, dport=ports)]
        elif kind == "protocol":
            self.protogroups[name] = None if any_proto else frozenset(protos)
        elif kind == "icmp-type":
            self.icmpgroups[name] = frozenset(icmps)
        else:
            self.unsupported(head, f"object-group {kind} not modelled")
        del self._pending[name]
        self._resolving.discard(name)

    def _netobj(self, name: str) -> IPSet:
        self._resolve_group(name)
        self._usable(name)
        if name not in self.networks:
            raise _Skip(f"network object {name} is not defined")
        return self.networks[name]

    def _usable(self, name: str) -> None:
        """A list line using a partly modelled object would filter less than the device: it is
        reported instead."""
        if name in self.broken:
            raise _Skip(f"object {name} has entries that are not modelled")

    def _group_address(self, cw: list[str]) -> IPSet:
        if cw[0] == "host":
            return IPSet([IPAddress(cw[1])])
        if cw[0] == "range":
            return IPSet(IPRange(cw[1], cw[2]))
        if cw[0] in ("any", "any4", "any6"):
            return _any(cw[0], self.asa)
        return _net(cw[0], cw[1] if len(cw) > 1 else None, mask=True)

    def _service_entry(self, w: list[str]) -> _Service:
        """`tcp [source OP] [destination] [OP]`, `icmp [TYPE]`, `ip`, a protocol number."""
        if not w:
            raise _Skip("empty service entry")
        name = w[0]
        if name in ANY_IP:
            return _Service(None)
        protos = frozenset({"tcp", "udp"}) if name == "tcp-udp" else frozenset({_protocol(name)})
        rest = w[1:]
        if protos & {"icmp", "icmpv6"}:
            if rest and rest[0] in ICMP_TYPES:
                return _Service(protos, icmp_types=frozenset({ICMP_TYPES[rest[0]]}))
            if rest:
                raise _Skip(f"icmp type not modelled: {rest[0]}")
            return _Service(protos)
        sport = dport = None
        while rest:
            if rest[0] == "source":
                sport, rest = _port_op(rest[1:])
            elif rest[0] == "destination":
                dport, rest = _port_op(rest[1:])
            else:
                dport, rest = _port_op(rest)
            if (sport is None and dport is None) or (rest and rest[0] not in ("source", "destination")):
                raise _Skip(f"service entry not understood: {' '.join(w)}")
        return _Service(protos, sport=sport, dport=dport)

    # --- access lists -------------------------------------------------------------------
    def _chain(self, name: str, line: _Line, family: str) -> Chain:
        if name not in self.rs.chains:
            self.rs.chains[name] = Chain(name, policy="drop", family=family,
                                         origin=self.origin(line))
        return self.rs.chains[name]

    def _named_acl(self, block: _Block) -> None:
        w = block.head.words
        family = "ip6" if w[0] == "ipv6" else "ip"
        rest = w[2:]
        kind = "extended"
        if rest and rest[0] in ("standard", "extended"):
            kind, rest = rest[0], rest[1:]
        if not rest:
            raise _Skip("access-list without a name")
        chain = self._chain(rest[0], block.head, family)
        self.mark(block.head, "modelled")
        comment = None
        for child in block.children:
            cw = child.words
            if cw[0].isdigit():
                cw = cw[1:]
            if not cw:
                self.mark(child, "comment")
                continue
            if cw[0] == "remark":
                comment = " ".join(cw[1:])
                self.mark(child, "comment")
                continue
            self._entry(chain, child, cw, kind, family, comment)
            comment = None

    def _flat_acl(self, head: _Line) -> None:
        """IOS `access-list 101 permit ...` or ASA `access-list NAME [line N] extended ...`."""
        w = head.words
        if len(w) < 3:
            raise _Skip("access-list without entries")
        name, rest = w[1], w[2:]
        if rest[0] == "line" and len(rest) > 2:
            rest = rest[2:]
        kind = "extended"
        if name.isdigit():
            n = int(name)
            kind = "standard" if n < 100 or 1300 <= n < 2000 else "extended"
        if rest[0] in ("standard", "extended"):
            kind, rest = rest[0], rest[1:]
        elif rest[0] in ("webtype", "ethertype", "rate-limit", "dynamic"):
            raise _Skip(f"access-list {rest[0]} not modelled")
        chain = self._chain(name, head, "inet" if self.asa else "ip")
        if rest[0] == "remark":
            self._remarks[name] = " ".join(rest[1:])
            self.mark(head, "comment")
            return
        self._entry(chain, head, rest, kind, chain.family, self._remarks.pop(name, None))

    def _entry(self, chain: Chain, line: _Line, w: list[str], kind: str, family: str,
               comment: str | None) -> None:
        try:
            rules = self._rules(line, w, kind, family, comment)
        except _Skip as why:
            self.unsupported(line, str(why))
            return
        except (AddrFormatError, IndexError, ValueError) as exc:
            self.unsupported(line, f"access-list entry not understood ({exc.__class__.__name__})")
            return
        chain.rules.extend(rules)
        self.mark(line, "modelled")

    def _rules(self, line: _Line, w: list[str], kind: str, family: str,
               comment: str | None) -> list[Rule]:
        action = {"permit": "accept", "deny": "drop"}.get(w[0])
        if action is None:
            raise _Skip(f"access-list action not modelled: {w[0]}")
        rest = w[1:]
        services: list[_Service]
        if kind == "standard":
            src, rest = self._address(rest, family)
            services, dst = [_Service(None)], None
        else:
            services, rest = self._protocol_part(rest)
            src, rest = self._address(rest, family)
            sport, rest = self._ports_here(rest)
            dst, rest = self._address(rest, family)
            dport, rest = self._ports_here(rest)
            services = [_narrow(s, sport, dport) for s in services]
        states = None
        icmp = None
        notes = []
        while rest:
            opt = rest.pop(0)
            if opt in ICMP_TYPES and icmp is None:
                icmp = frozenset({ICMP_TYPES[opt]})
                if opt in ("ttl-exceeded", "net-unreachable", "host-unreachable", "port-unreachable",
                           "protocol-unreachable", "administratively-prohibited",
                           "net-redirect", "host-redirect", "reassembly-timeout"):
                    notes.append(f"icmp {opt}: its code is not modelled, only its type")
            elif opt in self.icmpgroups and icmp is None:
                icmp = self.icmpgroups[opt]
            elif opt == "object-group" and rest and rest[0] in self.icmpgroups and icmp is None:
                icmp = self.icmpgroups[rest.pop(0)]
            elif opt == "established":
                states = frozenset({"established", "related"})
            elif opt in IGNORED_OPTIONS:
                while rest and (rest[0].isdigit() or rest[0] in ("interval", "disable", "default")
                                or rest[0] in _LOG_LEVELS):
                    rest.pop(0)
            elif opt == "inactive":
                return []                        # an inactive ASA entry filters nothing
            else:
                raise _Skip(f"access-list option not modelled: {opt}")
        rules = []
        for s in services:
            icmp_types = s.icmp_types if icmp is None else icmp
            protos = s.protocols
            if family == "ip6" and protos and "icmp" in protos:
                protos = (protos - {"icmp"}) | {"icmpv6"}
            m = Match(src=src, dst=dst, protocols=protos, sport=s.sport, dport=s.dport,
                      icmp_types=icmp_types, states=states)
            text = "; ".join(filter(None, [comment, *notes])) or None
            rules.append(Rule(m, action, self.origin(line), comment=text))
        return rules

    def _protocol_part(self, w: list[str]) -> tuple[list[_Service], list[str]]:
        if w[0] in ("object-group", "object"):
            name = w[1]
            self._usable(name)
            if name in self.protogroups:
                protos = self.protogroups[name]
                return [_Service(protos)], w[2:]
            if name in self.services:
                return list(self.services[name]) or _missing(name), w[2:]
            raise _Skip(f"{w[0]} {name} is not a defined protocol or service group")
        if w[0] in ANY_IP:
            return [_Service(None)], w[1:]
        return [_Service(frozenset({_protocol(w[0])}))], w[1:]

    def _address(self, w: list[str], family: str) -> tuple[IPSet, list[str]]:
        if not w:
            raise _Skip("missing address")
        tok = w[0]
        if tok in ("any", "any4", "any6"):
            return _any(tok, self.asa, family), w[1:]
        if tok == "host":
            return IPSet([IPAddress(w[1])]), w[2:]
        if tok in ("object-group", "object", "addrgroup"):
            return self._netobj(w[1]), w[2:]
        if tok == "interface":
            raise _Skip("interface addresses in access-lists are not modelled")
        if "/" in tok:
            return IPSet([IPNetwork(tok).cidr]), w[1:]
        if len(w) > 1 and _is_dotted(w[1]):
            return _net(tok, w[1], mask=self.asa), w[2:]
        return IPSet([IPAddress(tok)]), w[1:]

    def _ports_here(self, w: list[str]) -> tuple[Ports | None, list[str]]:
        if w and w[0] in ("object-group", "object") and len(w) > 1 and w[1] in self.portgroups:
            self._usable(w[1])
            return self.portgroups[w[1]], w[2:]
        return _port_op(w)

    # --- interfaces and bindings ------------------------------------------------------------
    def _interface(self, block: _Block) -> None:
        name = block.head.words[1]
        self.mark(block.head, "modelled")
        nets, key, zone, level = IPSet(), name, None, None
        binds: list[tuple[str, str]] = []
        for child in block.children:
            cw = child.words
            try:
                if cw[0] == "description":
                    self.mark(child, "comment")
                    continue
                if cw[:2] in (["ip", "address"], ["ipv6", "address"]) and len(cw) > 2:
                    if cw[2] in ("dhcp", "negotiated", "pppoe", "autoconfig"):
                        raise _Skip("a dynamic address is not known from the configuration")
                    second = cw[3] if len(cw) > 3 and _is_dotted(cw[3]) else None
                    nets |= _net(cw[2], second, mask=True)
                elif cw[:2] in (["ip", "access-group"], ["ipv6", "traffic-filter"]) and len(cw) > 3:
                    if cw[3] not in ("in", "out"):
                        raise _Skip("access-group direction not understood")
                    binds.append((cw[2], cw[3]))
                elif cw[:2] == ["zone-member", "security"] and len(cw) > 2:
                    zone = cw[2]
                    self.zones.setdefault(zone, []).append(name)
                elif cw[0] == "nameif" and len(cw) > 1:
                    key = cw[1]
                elif cw[0] == "security-level" and len(cw) > 1:
                    level = child
                elif any(k in cw for k in ("access-group", "inspect", "zone-member",
                                           "traffic-filter", "access-class")):
                    raise _Skip("interface filtering command not modelled")
                else:
                    self.mark(child, "not-firewall")    # speed, mtu, shutdown, vlan, ...
                    continue
                self.mark(child, "modelled")
            except _Skip as why:
                self.unsupported(child, str(why))
            except (AddrFormatError, IndexError, ValueError):
                self.unsupported(child, "interface address not understood")
        if level is not None and key != name and level.words[1] != "0":   # 0: nothing is lower
            self.levels[key] = level
        for chain, direction in binds:
            self.rs.bindings.append(Binding(chain=chain, direction=direction, interface=key))
        self.rs.interfaces[key] = self.rs.interfaces.get(key, IPSet()) | nets
        if zone:
            self.rs.interfaces[zone] = self.rs.interfaces.get(zone, IPSet()) | nets

    def _access_group(self, head: _Line) -> None:
        """ASA `access-group NAME in|out interface IFNAME` or `access-group NAME global`."""
        w = head.words
        if len(w) == 3 and w[2] == "global":
            self.rs.bindings.append(Binding(chain=w[1], direction="forward"))
        elif len(w) >= 5 and w[2] in ("in", "out") and w[3] == "interface":
            if len(w) > 5:
                raise _Skip(f"access-group option not modelled: {' '.join(w[5:])}")
            self.rs.bindings.append(Binding(chain=w[1], direction=w[2], interface=w[4]))
        else:
            raise _Skip("access-group not understood")
        self.mark(head, "modelled")

    # --- zone-based firewall --------------------------------------------------------------
    def _collect_map(self, block: _Block) -> None:
        w = block.head.words
        table = self.class_maps if w[0] == "class-map" else self.policy_maps
        if len(w) >= 4 and w[1:3] == ["type", "inspect"]:
            table[w[-1]] = block
        else:                                   # QoS and ASA inspection maps: not filtering
            self.mark(block.head, "not-firewall")
            for child in block.children:
                self.mark(child, "not-firewall")

    def _zone_pair(self, block: _Block) -> None:
        w = block.head.words
        try:
            name = w[2]
            src = w[w.index("source") + 1]
            dst = w[w.index("destination") + 1]
        except (ValueError, IndexError):
            raise _Skip("zone-pair not understood") from None
        chain = Chain(f"zone-pair {name}", policy="drop", family="ip", origin=self.origin(block.head))
        self.rs.chains[chain.name] = chain
        self.rs.bindings.append(Binding(chain=chain.name, from_zone=src, to_zone=dst))
        self.mark(block.head, "modelled")
        for child in block.children:
            cw = child.words
            if cw[0] == "description":
                self.mark(child, "comment")
            elif cw[:3] == ["service-policy", "type", "inspect"] and len(cw) == 4:
                if cw[3] not in self.policy_maps:
                    self.unsupported(child, f"policy-map {cw[3]} is not defined")
                    continue
                self.mark(child, "modelled")
                self._policy(chain, self.policy_maps[cw[3]])
            else:
                self.unsupported(child, "zone-pair entry not modelled")

    def _policy(self, chain: Chain, block: _Block) -> None:
        """Each class in order: jump to its chain; class-default's action ends the list."""
        pname = block.head.words[-1]
        self.mark(block.head, "modelled")
        items: list[tuple[_Line, list[_Line]]] = []
        for child in block.children:
            if child.words[0] == "class":
                items.append((child, []))
            elif items and child.indent > items[-1][0].indent:
                items[-1][1].append(child)
            else:
                self.unsupported(child, "policy-map entry not modelled")
        for cls, actions in items:
            self.mark(cls, "modelled")
            action = None
            for a in actions:
                verb = {"inspect": "accept", "pass": "accept", "drop": "drop"}.get(a.words[0])
                if verb and action is None:
                    action = (verb, a)
                    self.mark(a, "modelled")
                elif a.words[0] == "description":
                    self.mark(a, "comment")
                else:
                    self.unsupported(a, "policy-map class action not modelled")
            verb, at = action if action else ("drop", cls)   # a class without action drops
            cw = cls.words
            if cw[-1] == "class-default":
                chain.rules.append(Rule(Match(), verb, self.origin(at),
                                        comment=f"{pname} class-default"))
                continue
            cname = cw[-1]
            if cname not in self.class_maps:
                self.unsupported(cls, f"class-map {cname} is not defined")
                continue
            sub = f"{pname}/{cname}"
            if sub not in self.rs.chains:
                self.rs.chains[sub] = Chain(sub, family="ip", origin=self.origin(cls),
                                            rules=self._class_rules(self.class_maps[cname], verb))
            chain.rules.append(Rule(Match(), "jump", self.origin(cls), target=sub,
                                    comment=f"{pname}: class {cname} → {verb}"))

    def _class_rules(self, block: _Block, verb: str) -> list[Rule]:
        match_any = "match-any" in block.head.words
        self.mark(block.head, "modelled")
        acls: list[str] = []
        apps: list[tuple[frozenset[str], Ports | None, _Line]] = []
        for child in block.children:
            cw = child.words
            if cw[:3] == ["match", "access-group", "name"] and len(cw) == 4:
                acls.append(cw[3])
            elif cw[:2] == ["match", "access-group"] and len(cw) == 3:
                acls.append(cw[2])
            elif cw[:2] == ["match", "protocol"] and len(cw) == 3 and cw[2] in APP_PROTOCOLS:
                apps.append((*APP_PROTOCOLS[cw[2]], child))
            elif cw[0] == "description":
                self.mark(child, "comment")
                continue
            else:
                self.unsupported(child, "class-map match not modelled")
                continue
            self.mark(child, "modelled")
        rules: list[Rule] = []
        if match_any:
            for protos, dport, line in apps:
                rules.append(Rule(Match(protocols=protos, dport=dport), verb, self.origin(line)))
        for acl in acls:
            if acl not in self.rs.chains:
                continue                        # an undefined ACL matches nothing
            for r in self.rs.chains[acl].rules:
                if r.action != "accept":
                    rules.append(replace(r, action="return"))
                    continue
                m = r.match
                if not match_any:
                    for protos, dport, _ in apps:
                        m = _intersect(m, protos, dport)
                        if m is None:
                            break
                if m is not None:
                    rules.append(replace(r, match=m, action=verb))
        if not acls and not match_any:
            m: Match | None = Match()
            for protos, dport, _ in apps:
                m = _intersect(m, protos, dport) if m else None
            if m is not None and apps:
                rules.append(Rule(m, verb, self.origin(apps[0][2])))
        return rules


_LOG_LEVELS = ("emergencies", "alerts", "critical", "errors", "warnings", "notifications",
               "informational", "debugging")


def _missing(name: str):
    raise _Skip(f"object {name} is not defined")


def _protocol(word: str) -> str:
    if word in PROTOCOLS:
        return PROTOCOLS[word]
    if word.isdigit() and 0 <= int(word) <= 255:
        return word
    raise _Skip(f"protocol not modelled: {word}")


def _is_dotted(word: str) -> bool:
    return bool(re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", word))


def _any(word: str, asa: bool, family: str = "ip") -> IPSet:
    v4, v6 = IPNetwork("0.0.0.0/0"), IPNetwork("::/0")
    if word == "any4":
        return IPSet([v4])
    if word == "any6" or family == "ip6":
        return IPSet([v6])
    return IPSet([v4, v6]) if asa else IPSet([v4])


def _net(addr: str, second: str | None, *, mask: bool) -> IPSet:
    """`A/len`, `A` (a host), `A MASK` (mask=True: a subnet mask; host bits are cleared as the
    devices do) or `A WILDCARD` (mask=False: IOS, 1-bits are "any"; non-contiguous wildcards
    are expanded while they make at most 256 blocks)."""
    if "/" in addr:
        return IPSet([IPNetwork(addr).cidr])
    ip = IPAddress(addr)
    if second is None:
        return IPSet([ip])
    m = int(IPAddress(second))
    if mask:
        wild = (~m) & 0xFFFFFFFF
        if (wild + 1) & wild:
            raise _Skip(f"{second} is not a subnet mask")
    else:
        wild = m
    return _wildcard(int(ip), wild)


def _wildcard(base: int, wild: int) -> IPSet:
    trailing = 0
    while trailing < 32 and wild >> trailing & 1:
        trailing += 1
    free = [b for b in range(trailing, 32) if wild >> b & 1]
    if len(free) > 8:
        raise _Skip("non-contiguous wildcard expands to more than 256 blocks")
    base &= ~wild & 0xFFFFFFFF
    nets = []
    for combo in range(1 << len(free)):
        value = base
        for k, bit in enumerate(free):
            if combo >> k & 1:
                value |= 1 << bit
        nets.append(IPNetwork(f"{IPAddress(value)}/{32 - trailing}"))
    return IPSet(nets)


def _port(word: str) -> int | None:
    if word.isdigit() and int(word) <= 65535:
        return int(word)
    return SERVICES.get(word)


def _port_op(w: list[str]) -> tuple[Ports | None, list[str]]:
    """`eq P [P ...]`, `neq P`, `lt P`, `gt P`, `range A B` at the head of w; (None, w) if none."""
    if not w or w[0] not in ("eq", "neq", "lt", "gt", "range"):
        return None, w
    op, rest = w[0], w[1:]
    if op == "range":
        lo, hi = _port(rest[0]), _port(rest[1])
        if lo is None or hi is None:
            raise _Skip("port range not understood")
        return P.normalize([(lo, hi)]), rest[2:]
    first = _port(rest[0]) if rest else None
    if first is None:
        raise _Skip(f"port not understood: {' '.join(w[:2])}")
    rest = rest[1:]
    if op == "eq":
        got = [first]
        while rest and _port(rest[0]) is not None:
            got.append(_port(rest.pop(0)))
        return P.normalize([(p, p) for p in got]), rest
    if op == "neq":
        return P.complement(((first, first),)), rest
    if op == "lt":
        return P.normalize([(0, first - 1)]), rest
    return P.normalize([(first + 1, 65535)]), rest


def _narrow(s: _Service, sport: Ports | None, dport: Ports | None) -> _Service:
    if (sport or dport) and not (s.protocols and s.protocols <= {"tcp", "udp", "sctp"}):
        raise _Skip("ports given for a protocol without ports")
    return replace(s, sport=P.intersect(s.sport, sport), dport=P.intersect(s.dport, dport))


def _intersect(m: Match, protos: frozenset[str], dport: Ports | None) -> Match | None:
    """m narrowed to a class-map's `match protocol`; None when nothing is left."""
    have = protos if m.protocols is None else m.protocols & protos
    ports = P.intersect(m.dport, dport)
    if not have or ports == ():
        return None
    return replace(m, protocols=frozenset(have), dport=ports)
