"""Fingerprint evidence: what one device says and how it talks (`Evidence`), the tests each kind
of evidence a fingerprint may name runs on it (`Condition`, `TESTS`), and `Fingerprint.fire`, which
tells whether a fingerprint's evidence holds and what it concludes. Reading the files is
inventory/fingerprint_files.py's job, scoring inventory/fingerprints.py's."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

SERVED_ROLE = "{served_role}"        # a conclusion: the role the served protocol's ProtocolSpec names
GROUP_REF = re.compile(r"\{(\w+)\}")
# which protocols' statements are descriptions a person wrote or the vendor's firmware fills in
_HINT_SOURCE = re.compile(r"^([a-z0-9][a-z0-9-]*) says ")
_BINDER_KINDS = (("many", re.compile(r"fronts \d+ IP addresses")),
                 ("public", re.compile(r"traffic of public addresses")),
                 ("relay", re.compile(r"seen at least as often with a MAC of its own")),
                 ("gateway", re.compile(r"carries the traffic of")))
BINDER_KINDS = ("many", "public", "relay", "gateway", "other")


# -- the evidence of one device ------------------------------------------------------------------
@dataclass
class Evidence:
    """What one device says and how it talks: the input of every fingerprint."""
    asset: Any
    client_ops: Counter = field(default_factory=Counter)
    server_ops: Counter = field(default_factory=Counter)
    client_apps: set = field(default_factory=set)
    server_apps: set = field(default_factory=set)
    role_hints: list = field(default_factory=list)
    n_controller_peers: int = 0
    client_ports: set | None = None      # {(l4, port)} the device connected to (None: not known)

    @cached_property
    def ident(self) -> dict:
        return self.asset.identity or {}

    @cached_property
    def sources(self) -> set[str]:
        return {str(s) for s in self.ident.get("sources") or ()}

    @cached_property
    def served(self) -> set[str]:
        """Application names the device serves (flows and service observations)."""
        names = set(self.server_apps)
        names |= {s.name for s in self.asset.services.values() if s.name}
        return names

    @cached_property
    def served_ports(self) -> set[tuple[str, int]]:
        return {(s.proto, s.port) for s in self.asset.services.values()}

    @cached_property
    def hints(self) -> list[tuple[str, str, str]]:
        """(role, source, reason) of the protocols' role statements. The address binder's own
        "router" statement (one MAC fronting addresses) is context (binder_router), not a hint."""
        out = []
        for role, why in self.role_hints:
            m = _HINT_SOURCE.match(str(why))
            src = m.group(1) if m else "protocol"
            if role == "router" and not m and self.asset.is_router:
                continue
            out.append((role, src, str(why)))
        return out

    @cached_property
    def binder_reason(self) -> str:
        for role, why in self.role_hints:
            if role == "router" and not _HINT_SOURCE.match(str(why)):
                return str(why)
        return "one MAC address fronts several IP addresses"

    @cached_property
    def binder_kind(self) -> str | None:
        """Why the address binder calls the device a router: 'many' (one MAC, many addresses),
        'public' (its MAC carries public addresses), 'relay' (its MAC carries addresses also seen
        with their own MAC), 'gateway' (it carries addresses of other subnets), 'other'. Read from
        the binder's reason until the builder passes the kind itself."""
        if not self.asset.is_router:
            return None
        why = self.binder_reason
        for kind, pat in _BINDER_KINDS:
            if pat.search(why):
                return kind
        return "other"

    @cached_property
    def industrial_client(self) -> set[str]:
        from plantguard.inventory.roles import INDUSTRIAL_APPS
        return self.client_apps & INDUSTRIAL_APPS

    @cached_property
    def industrial(self) -> bool:
        from plantguard.inventory.roles import INDUSTRIAL_APPS
        return bool((self.client_apps | self.served) & INDUSTRIAL_APPS)

    @cached_property
    def it_only(self) -> bool:
        """Speaks decoded protocols, none of them industrial."""
        from plantguard.inventory.roles import INDUSTRIAL_APPS
        spoken = set(self.asset.protocols) | self.client_apps | self.server_apps
        return bool(spoken) and not (spoken & INDUSTRIAL_APPS)

    @cached_property
    def talks(self) -> bool:
        a = self.asset
        return bool(a.peers or a.services or a.protocols or self.client_apps or self.server_apps)

    def field_value(self, name: str, protocols: tuple[str, ...] | None) -> str | None:
        """An identity field as the device stated it. A description that is the device's
        User-Agent (HTTP) or SSDP Server header is not its description; with `protocols`, the
        field counts only if one of those protocols stated the device's identity."""
        ident = self.ident
        val = ident.get(name)
        if val in (None, "", [], {}):
            return None
        if name == "description" and val in (ident.get("user_agent"), ident.get("ssdp_server")):
            return None
        provenance = ident.get("field_sources")      # {field: protocol}, when the builder records it
        if protocols:
            if isinstance(provenance, dict) and name in provenance:
                if provenance[name] not in protocols:
                    return None
            elif not (self.sources & set(protocols)):
                return None
        return val if isinstance(val, str) else str(val)


# -- conditions ----------------------------------------------------------------------------------
def _short(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 1] + "…"


@dataclass(frozen=True)
class Condition:
    """One piece of evidence a fingerprint needs. test() returns what it saw (for the reasons)
    and the named regex groups, or None when the evidence is absent."""
    kind: str
    arg: Any

    def test(self, ev: Evidence) -> tuple[str, dict] | None:
        return TESTS[self.kind](self.arg, ev)

    @property
    def user_agent_only(self) -> bool:
        return self.kind == "user_agent"

    @property
    def groups(self) -> set[str]:
        if self.kind in ("identity", "user_agent", "banner", "hostname"):
            pat = self.arg["regex"] if isinstance(self.arg, dict) else self.arg
            return set(pat.groupindex)
        return set()


def _hits(arg, names: set[str], ports: set[tuple[str, int]]) -> list[str]:
    """The names and ports of `arg` ((names, {(l4, port): "l4/port"})) that are present."""
    want_names, want_ports = arg
    out = sorted(want_names & names)
    out += [text for port, text in want_ports.items() if port in ports]
    return out


def _t_serves(arg, ev):
    hits = _hits(arg, ev.served, ev.served_ports)
    return (f"serves {', '.join(hits)}", {}) if hits else None


def _t_serves_role(arg, ev):
    from plantguard.protocols.registry import server_roles
    roles = server_roles()
    hits = sorted(a for a in ev.server_apps if roles.get(a) in arg)
    if not hits:
        return None
    return f"serves {', '.join(hits)}", {"served_role": roles[hits[0]]}


def _t_uses(arg, ev):
    hits = _hits(arg, ev.client_apps, ev.client_ports or set())
    return (f"uses {', '.join(hits)} as a client", {}) if hits else None


def _t_oui(arg, ev):
    vendor = ev.asset.vendor
    if vendor and any(p.search(vendor) for p in arg):
        return f"MAC vendor {vendor}", {}
    return None


def _t_identity(arg, ev):
    for name in arg["field"]:
        val = ev.field_value(name, arg.get("protocol"))
        if val is None:
            continue
        m = arg["regex"].search(val)
        if m:
            return f"{name} {_short(val)!r}", {k: v for k, v in m.groupdict().items() if v}
    return None


def _t_user_agent(arg, ev):
    ua = ev.ident.get("user_agent")
    if ua:
        m = arg.search(str(ua))
        if m:
            return f"User-Agent {_short(ua)!r}", {k: v for k, v in m.groupdict().items() if v}
    return None


def _t_banner(arg, ev):
    for (l4, port), svc in sorted(ev.asset.services.items()):
        if not svc.banner or (arg.get("port") is not None and port != arg["port"]):
            continue
        m = arg["regex"].search(svc.banner)
        if m:
            return f"{l4}/{port} banner {_short(svc.banner)!r}", {k: v for k, v in m.groupdict().items() if v}
    return None


def _t_hint(arg, ev):
    roles, sources = arg
    for role, src, why in ev.hints:
        if role in roles and (not sources or src in sources):
            return why, {}
    return None


def _ops(counter: Counter, arg) -> tuple[int, list[str]]:
    cats, _rng = arg
    if cats == ("any",):
        keys = list(counter)
    else:
        keys = [c for c in cats if counter.get(c)]
    return sum(counter.get(c, 0) for c in keys), keys


def _in_range(n: int, rng) -> bool:
    lo, hi = rng
    return n >= lo and (hi is None or n <= hi)


def _t_sends(arg, ev):
    n, keys = _ops(ev.client_ops, arg)
    if _in_range(n, arg[1]):
        what = "/".join(keys) if keys and arg[0] != ("any",) else "industrial"
        return f"sends {n} {what} operation{'s' if n != 1 else ''}", {}
    return None


def _t_receives(arg, ev):
    n, keys = _ops(ev.server_ops, arg)
    if _in_range(n, arg[1]):
        what = "/".join(keys) if keys and arg[0] != ("any",) else "industrial"
        return f"answers {n} {what} operation{'s' if n != 1 else ''}", {}
    return None


def _t_controller_peers(arg, ev):
    n = ev.n_controller_peers
    return (f"talks to {n} controller{'s' if n != 1 else ''}", {}) if _in_range(n, arg) else None


def _t_addresses(arg, ev):
    n = len(ev.asset.ips)
    return (f"{n} address{'es' if n != 1 else ''}", {}) if _in_range(n, arg) else None


def _flag(name: str, value_of, yes: str, no: str):
    def t(arg, ev):
        v = bool(value_of(ev))
        return ((yes if v else no), {}) if v == arg else None
    return t


def _t_binder_reason(arg, ev):
    kind = ev.binder_kind
    return (ev.binder_reason, {}) if kind in arg else None


def _t_hostname(arg, ev):
    for h in sorted(ev.asset.hostnames):
        m = arg.search(h)
        if m:
            return f"hostname {h!r}", {k: v for k, v in m.groupdict().items() if v}
    return None


TESTS = {
    "serves": _t_serves, "serves_role": _t_serves_role, "uses": _t_uses, "oui": _t_oui,
    "identity": _t_identity, "user_agent": _t_user_agent, "banner": _t_banner, "hint": _t_hint,
    "sends": _t_sends, "receives": _t_receives, "controller_peers": _t_controller_peers,
    "addresses": _t_addresses, "hostname": _t_hostname, "binder_reason": _t_binder_reason,
    "public": _flag("public", lambda e: e.asset.public, "public IP address", "private address"),
    "binder_router": lambda arg, ev: ((ev.binder_reason if ev.asset.is_router else "not a router by its addresses"), {})
    if bool(ev.asset.is_router) == arg else None,
    "industrial": _flag("industrial", lambda e: e.industrial, "speaks an industrial protocol",
                        "speaks no industrial protocol"),
    "industrial_client": _flag("industrial_client", lambda e: e.industrial_client,
                               "client of an industrial protocol", "client of no industrial protocol"),
    "it_only": _flag("it_only", lambda e: e.it_only, "speaks only IT protocols", "speaks an industrial protocol or none"),
    "talks": _flag("talks", lambda e: e.talks, "has traffic", "no traffic of its own"),
    "layer2_only": _flag("layer2_only", lambda e: e.asset.ip is None, "known by its MAC address only",
                         "has an IP address"),
    "serves_anything": _flag("serves_anything", lambda e: e.asset.services or e.server_apps,
                             "serves something", "serves nothing"),
}


FLAGS = ("public", "binder_router", "industrial", "industrial_client", "it_only", "talks", "serves_anything",
         "layer2_only")


# -- fingerprints --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fingerprint:
    id: str
    source: str
    description: str
    when: tuple[Condition, ...]
    unless: tuple[Condition, ...]
    any: tuple[Condition, ...]
    role: str | None
    identity: dict
    confidence: float

    def fire(self, ev: Evidence) -> tuple[list[str], dict] | None:
        """(what it saw, named groups) when every `when` holds and no `unless` does."""
        seen, groups = [], {}
        for c in self.when:
            r = c.test(ev)
            if r is None:
                return None
            if r[0]:
                seen.append(r[0])
            groups.update(r[1])
        if self.any:
            for c in self.any:
                r = c.test(ev)
                if r is not None:
                    if r[0]:
                        seen.append(r[0])
                    groups.update(r[1])
                    break
            else:
                return None
        for c in self.unless:
            if c.test(ev) is not None:
                return None
        return seen, groups

    def role_for(self, groups: dict) -> str | None:
        if self.role == SERVED_ROLE:
            return groups.get("served_role")
        return self.role

    def identity_for(self, groups: dict) -> dict:
        out = {}
        for k, v in self.identity.items():
            val = GROUP_REF.sub(lambda m: groups.get(m.group(1), ""), v).strip()
            if val:
                out[k] = val
        return out
