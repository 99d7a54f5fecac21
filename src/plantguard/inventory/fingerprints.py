"""Fingerprints: what a device is, as data. Each fingerprint names the evidence it needs (MAC vendor,
an identity field from a given protocol, served and used protocols or ports, behaviour, context),
what it concludes (a role and/or vendor/product/family) and how sure it is (0-1). The shipped set
is src/plantguard/data/fingerprints/*.yaml; PLANTGUARD_FINGERPRINTS=/a.yaml:/b.yaml adds a user's
own files (loaded after the shipped ones; a user fingerprint with a shipped id replaces it).
The format is described in docs/fingerprints.md.

`score(evidence)` runs every fingerprint on one device: the role is the one whose fingerprints,
combined (1 - product of (1 - confidence)), score highest; the reasons say which fingerprints fired
and on what evidence. Free text never decides a role on its own: an identity regex is tied to the
identity fields (and protocols) it may read, and a User-Agent (a fact about a client's browser or
tool, not about the device) may only conclude an IT role - the loader refuses anything else."""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from plantguard.errors import InputError

FORMAT = "plantguard-fingerprints/1"
ENV = "PLANTGUARD_FINGERPRINTS"
SERVED_ROLE = "{served_role}"        # a conclusion: the role the served protocol's ProtocolSpec names
MIN_SCORE = 0.2                      # below this, the role stays "unknown"
MIN_IDENTITY_CONFIDENCE = 0.5        # identity facts come only from fingerprints at least this sure
# Roles a fingerprint resting only on a User-Agent may conclude (a browser or a tool, not a device).
USER_AGENT_ROLES = frozenset({"it-host", "workstation"})
IDENTITY_KEYS = ("vendor", "product", "family", "model", "firmware", "os", "device_class")
_ID = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")
_PORT = re.compile(r"^(tcp|udp)/(\d{1,5})$")
_GROUP_REF = re.compile(r"\{(\w+)\}")
# identity fields a device states about itself (what identity conditions may read by default)
IDENTITY_FIELDS = ("product", "model", "device_type", "module", "description", "order_number", "name",
                   "vendor", "os", "firmware", "ssdp_server", "user_agent", "software", "platform")
# which protocols' statements are descriptions a person wrote or the vendor's firmware fills in
_HINT_SOURCE = re.compile(r"^([a-z0-9][a-z0-9-]*) says ")
_BINDER_KINDS = (("many", re.compile(r"fronts \d+ IP addresses")),
                 ("public", re.compile(r"traffic of public addresses")),
                 ("relay", re.compile(r"seen at least as often with a MAC of its own")),
                 ("gateway", re.compile(r"carries the traffic of")))
BINDER_KINDS = ("many", "public", "relay", "gateway", "other")


class FingerprintError(InputError, ValueError):
    """A bad fingerprint file or entry: one line naming the file and the fingerprint."""


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
def _names(v, what: str) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, (str, int)) for x in v):
        raise ValueError(f"{what} must be a name or a list of names")
    return tuple(str(x) for x in v)


def _regex(v, what: str) -> re.Pattern:
    if not isinstance(v, str) or not v:
        raise ValueError(f"{what} must be a regular expression (text)")
    try:
        return re.compile(v, re.IGNORECASE)
    except re.error as e:
        raise ValueError(f"{what}: bad regular expression {v!r}: {e}") from None


def _range(v, what: str) -> tuple[int, int | None]:
    if isinstance(v, int) and not isinstance(v, bool):
        return v, None
    if not isinstance(v, dict) or set(v) - {"min", "max"}:
        raise ValueError(f"{what} must be a number or {{min: N, max: M}}")
    lo, hi = v.get("min", 1), v.get("max")
    if not isinstance(lo, int) or (hi is not None and not isinstance(hi, int)):
        raise ValueError(f"{what}: min and max must be whole numbers")
    return lo, hi


def _bool(v, what: str) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{what} must be true or false")
    return v


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
        return _TESTS[self.kind](self.arg, ev)

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


_TESTS = {
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


_FLAGS = ("public", "binder_router", "industrial", "industrial_client", "it_only", "talks", "serves_anything",
          "layer2_only")


def _parse_ops(v, what: str):
    if isinstance(v, dict) and "categories" in v:
        cats = _names(v["categories"], f"{what}.categories")
        rest = {k: x for k, x in v.items() if k != "categories"}
        rng = _range(rest or {"min": 1}, what)
    else:
        raise ValueError(f"{what} must be {{categories: [...], min: N, max: M}}")
    from plantguard.model import OP_CATEGORIES
    bad = [c for c in cats if c not in OP_CATEGORIES and c != "any"]
    if bad:
        raise ValueError(f"{what}: unknown operation categories {', '.join(bad)} "
                         f"(known: {', '.join(OP_CATEGORIES)}, any)")
    return cats, rng


def _p_names_or_ports(kind, v):
    names, ports = set(), {}
    for x in _names(v, kind):
        m = _PORT.match(x)
        if m:
            ports[(m.group(1), int(m.group(2)))] = x
        elif "/" in x:
            raise ValueError(f"{kind}: {x!r} is neither a protocol name nor tcp/N or udp/N")
        else:
            names.add(x)
    return frozenset(names), ports


def _p_one_of(allowed: tuple[str, ...], what: str):
    def parse(kind, v):
        arg = _names(v, kind)
        bad = [r for r in arg if r not in allowed]
        if bad:
            raise ValueError(f"{kind}: {', '.join(bad)} is not {what} ({', '.join(allowed)})")
        return frozenset(arg)
    return parse


def _p_serves_role(kind, v):
    from plantguard.protocols._spec import SERVER_ROLES
    return _p_one_of(tuple(SERVER_ROLES), "a ProtocolSpec server_role")(kind, v)


def _p_oui(kind, v):
    return tuple(_regex(x, kind) for x in _names(v, kind))


def _p_identity(kind, v):
    if not isinstance(v, dict) or set(v) - {"field", "regex", "protocol"} or "regex" not in v:
        raise ValueError("identity must be {field: ..., regex: ..., protocol: ...}")
    fields = _names(v.get("field", list(IDENTITY_FIELDS)), "identity.field")
    if "user_agent" in fields:
        raise ValueError("identity cannot read user_agent: use the user_agent condition")
    protos = _names(v["protocol"], "identity.protocol") if "protocol" in v else None
    return {"field": fields, "regex": _regex(v["regex"], "identity.regex"), "protocol": protos}


def _p_banner(kind, v):
    if isinstance(v, str):
        v = {"regex": v}
    if not isinstance(v, dict) or set(v) - {"regex", "port"} or "regex" not in v:
        raise ValueError("banner must be a regex or {regex: ..., port: N}")
    if "port" in v and not isinstance(v["port"], int):
        raise ValueError("banner.port must be a port number")
    return {"regex": _regex(v["regex"], "banner.regex"), "port": v.get("port")}


def _p_hint(kind, v):
    if not isinstance(v, dict):
        return frozenset(_names(v, "hint")), frozenset()
    if set(v) - {"role", "from"} or "role" not in v:
        raise ValueError("hint must be a list of roles or {role: [...], from: [protocols]}")
    sources = frozenset(_names(v["from"], "hint.from")) if "from" in v else frozenset()
    return frozenset(_names(v["role"], "hint.role")), sources


_PARSERS = {
    "serves": _p_names_or_ports, "uses": _p_names_or_ports, "serves_role": _p_serves_role,
    "oui": _p_oui, "identity": _p_identity, "user_agent": lambda k, v: _regex(v, k),
    "hostname": lambda k, v: _regex(v, k), "banner": _p_banner, "hint": _p_hint,
    "sends": lambda k, v: _parse_ops(v, k), "receives": lambda k, v: _parse_ops(v, k),
    "binder_reason": lambda k, v: _p_one_of(BINDER_KINDS, "a binder reason")(k, v),
    "controller_peers": lambda k, v: _range(v, k), "addresses": lambda k, v: _range(v, k),
    **{flag: (lambda k, v: _bool(v, k)) for flag in _FLAGS},
}


def _parse_condition(kind: str, v) -> Condition:
    parse = _PARSERS.get(kind)
    if parse is None:
        raise ValueError(f"unknown evidence {kind!r} (known: {', '.join(sorted(_TESTS))})")
    return Condition(kind, parse(kind, v))


def _parse_conditions(v, what: str) -> tuple[Condition, ...]:
    if v is None:
        return ()
    if isinstance(v, dict):
        v = [{k: x} for k, x in v.items()]
    if not isinstance(v, list):
        raise ValueError(f"{what} must be a list of evidence entries")
    out = []
    for entry in v:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f"each {what} entry must be one evidence (e.g. '- serves: [modbus]')")
        (kind, arg), = entry.items()
        out.append(_parse_condition(str(kind), arg))
    return tuple(out)


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
            val = _GROUP_REF.sub(lambda m: groups.get(m.group(1), ""), v).strip()
            if val:
                out[k] = val
        return out


_FP_KEYS = {"id", "description", "when", "any", "unless", "then", "confidence"}


def _parse_id(raw) -> str:
    if not isinstance(raw, dict):
        raise ValueError("a fingerprint must be a mapping with id, when, then, confidence")
    extra = set(raw) - _FP_KEYS
    if extra:
        raise ValueError(f"unknown key(s) {', '.join(sorted(map(str, extra)))} (known: {', '.join(sorted(_FP_KEYS))})")
    fid = raw.get("id")
    if not isinstance(fid, str) or not _ID.match(fid):
        raise ValueError("id must be lower-case letters, digits, '-' or '.' (at most 64)")
    return fid


def _parse_then(then, when: tuple[Condition, ...], roles: frozenset) -> tuple[str | None, dict]:
    if not isinstance(then, dict) or not then or set(then) - {"role", "identity"}:
        raise ValueError("'then' must conclude a role and/or identity: {role: ..., identity: {...}}")
    role = then.get("role")
    if role is not None and role != SERVED_ROLE and role not in roles:
        raise ValueError(f"role {role!r} is not one of {', '.join(sorted(roles))} (or {SERVED_ROLE})")
    if role == SERVED_ROLE and not any(c.kind == "serves_role" for c in when):
        raise ValueError(f"role {SERVED_ROLE} needs a serves_role evidence")
    ident = then.get("identity") or {}
    if not isinstance(ident, dict) or set(ident) - set(IDENTITY_KEYS) or \
            not all(isinstance(v, str) and v for v in ident.values()):
        raise ValueError(f"then.identity takes text values for {', '.join(IDENTITY_KEYS)}")
    if role is None and not ident:
        raise ValueError("'then' concludes nothing")
    return role, dict(ident)


def _check_conclusions(role: str | None, ident: dict, conditions: tuple[Condition, ...]) -> None:
    groups = set().union(*(c.groups for c in conditions))
    for v in ident.values():
        missing = set(_GROUP_REF.findall(v)) - groups
        if missing:
            raise ValueError(f"then.identity refers to {', '.join('{' + g + '}' for g in sorted(missing))}, "
                             "which no regex of 'when' names (use (?P<name>...))")
    if role is not None and all(c.user_agent_only for c in conditions) and role not in USER_AGENT_ROLES:
        raise ValueError(f"a User-Agent is a fact about a client's browser or tool, not the device: it may "
                         f"conclude only {', '.join(sorted(USER_AGENT_ROLES))}, not {role!r}")


def _parse_confidence(raw) -> float:
    conf = raw.get("confidence")
    if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0 < conf <= 1:
        raise ValueError("confidence must be a number in (0, 1]")
    return float(conf)


def _parse_fingerprint(raw, source: str, roles: frozenset) -> Fingerprint:
    fid = _parse_id(raw)
    when = _parse_conditions(raw.get("when"), "when")
    unless = _parse_conditions(raw.get("unless"), "unless")
    any_of = _parse_conditions(raw.get("any"), "any")
    if not when and not any_of:
        raise ValueError("'when' (or 'any') must name at least one evidence")
    role, ident = _parse_then(raw.get("then"), when + any_of, roles)
    _check_conclusions(role, ident, when + any_of)
    conf = _parse_confidence(raw)
    desc = raw.get("description", "")
    if not isinstance(desc, str):
        raise ValueError("description must be text")
    return Fingerprint(fid, source, " ".join(desc.split()), when, unless, any_of, role, ident, conf)


def _known_roles() -> frozenset:
    from plantguard.site.vocabulary import ASSET_ROLES
    return frozenset(ASSET_ROLES) - {"unknown"}


def parse_text(text: str, source: str) -> list[Fingerprint]:
    """The fingerprints of one YAML document; FingerprintError (one line) on any bad entry."""
    import yaml
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise FingerprintError(f"{source}:{where} not valid YAML: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FingerprintError(f"{source}: not a fingerprint file (needs 'format: {FORMAT}')")
    items = doc.get("fingerprints")
    if not isinstance(items, list):
        raise FingerprintError(f"{source}: 'fingerprints' must be a list")
    roles = _known_roles()
    out, seen = [], set()
    for i, raw in enumerate(items):
        label = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"#{i + 1}"
        try:
            fp = _parse_fingerprint(raw, source, roles)
        except ValueError as e:
            raise FingerprintError(f"{source}: fingerprint {label!r}: {e}") from None
        if fp.id in seen:
            raise FingerprintError(f"{source}: fingerprint {fp.id!r}: id used twice in this file")
        seen.add(fp.id)
        out.append(fp)
    return out


def shipped_files() -> list[tuple[str, str]]:
    """(name, text) of the fingerprint files shipped with plantguard, in name order."""
    base = resources.files("plantguard").joinpath("data", "fingerprints")
    return [(f"data/fingerprints/{p.name}", p.read_text(encoding="utf-8"))
            for p in sorted(base.iterdir(), key=lambda p: p.name) if p.name.endswith((".yaml", ".yml"))]


def user_files(spec: str | None) -> list[Path]:
    """The files PLANTGUARD_FINGERPRINTS names (path-separator list; a folder means its *.yaml)."""
    out: list[Path] = []
    for part in (spec or "").split(os.pathsep):
        if not part.strip():
            continue
        p = Path(part.strip()).expanduser()
        if p.is_dir():
            out.extend(sorted(x for x in p.iterdir() if x.suffix in (".yaml", ".yml")))
        elif p.is_file():
            out.append(p)
        else:
            raise FingerprintError(f"{ENV}: {p}: no such file")
    return out


@lru_cache(maxsize=8)
def _load(spec: str | None) -> tuple[Fingerprint, ...]:
    by_id: dict[str, Fingerprint] = {}
    for name, text in shipped_files():
        for fp in parse_text(text, name):
            if fp.id in by_id:
                raise FingerprintError(f"{name}: fingerprint {fp.id!r}: id already used in {by_id[fp.id].source}")
            by_id[fp.id] = fp
    shipped = set(by_id)
    for path in user_files(spec):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise FingerprintError(f"{path}: cannot be read: {e}") from None
        for fp in parse_text(text, str(path)):
            if fp.id in by_id and fp.id not in shipped:
                raise FingerprintError(f"{path}: fingerprint {fp.id!r}: id already used in {by_id[fp.id].source}")
            by_id[fp.id] = fp          # a user's fingerprint replaces the shipped one of that id
    return tuple(by_id.values())


def load(spec: str | None = None) -> tuple[Fingerprint, ...]:
    """The shipped fingerprints plus the user's (PLANTGUARD_FINGERPRINTS, or `spec`)."""
    return _load(os.environ.get(ENV) if spec is None else spec)


# -- scoring -------------------------------------------------------------------------------------
@dataclass
class Fired:
    fingerprint: Fingerprint
    role: str | None
    seen: list[str]
    identity: dict

    def reason(self) -> str:
        what = "; ".join(self.seen) or self.fingerprint.description or self.fingerprint.id
        return f"{what} [fingerprint {self.fingerprint.id} {self.fingerprint.confidence:.2f}]"


@dataclass
class Verdict:
    role: str
    score: float
    reasons: list[str]
    identity: dict                      # facts to add (key -> (value, fingerprint id))
    fired: list[Fired]
    scores: dict[str, float]


def combine(confidences: Iterable[float]) -> float:
    """Independent pieces of evidence for one role: 1 - product of (1 - confidence)."""
    miss = 1.0
    for c in confidences:
        miss *= 1.0 - c
    return 1.0 - miss


def score(ev: Evidence, fingerprints: Iterable[Fingerprint] | None = None) -> Verdict:
    fps = load() if fingerprints is None else fingerprints
    fired: list[Fired] = []
    for fp in fps:
        r = fp.fire(ev)
        if r is not None:
            seen, groups = r
            fired.append(Fired(fp, fp.role_for(groups), seen, fp.identity_for(groups)))
    by_role: dict[str, list[Fired]] = {}
    for f in fired:
        if f.role:
            by_role.setdefault(f.role, []).append(f)
    scores = {role: combine(f.fingerprint.confidence for f in fs) for role, fs in by_role.items()}
    order = {id(f): i for i, f in enumerate(fired)}
    ranked = sorted(scores, key=lambda r: (-round(scores[r], 9),
                                           -max(f.fingerprint.confidence for f in by_role[r]),
                                           min(order[id(f)] for f in by_role[r])))
    identity: dict[str, tuple[str, str]] = {}
    for f in sorted(fired, key=lambda f: -f.fingerprint.confidence):
        if f.fingerprint.confidence < MIN_IDENTITY_CONFIDENCE:
            continue
        for k, v in f.identity.items():
            identity.setdefault(k, (v, f.fingerprint.id))
    if not ranked or scores[ranked[0]] < MIN_SCORE:
        return Verdict("unknown", 0.0, ["not enough traffic to tell"], identity, fired, scores)
    best = ranked[0]
    winners = sorted(by_role[best], key=lambda f: (-f.fingerprint.confidence, order[id(f)]))
    reasons = [f.reason() for f in winners]
    tail = f"{best} {scores[best]:.2f}"
    if len(ranked) > 1:
        tail += "; outweighed: " + ", ".join(f"{r} {scores[r]:.2f}" for r in ranked[1:4])
    reasons.append(tail)
    return Verdict(best, scores[best], reasons, identity, fired, scores)
