"""Fingerprint files: the shipped src/plantguard/data/fingerprints/*.yaml and the user's own
(PLANTGUARD_FINGERPRINTS=/a.yaml:/b.yaml, loaded after the shipped ones; a user fingerprint with a
shipped id replaces it), read and validated into `Fingerprint`s. A bad file or entry is one line
naming the file and the fingerprint (`FingerprintError`); a User-Agent may only conclude an IT
role. The format is described in docs/fingerprints.md."""
from __future__ import annotations

import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from plantguard.errors import InputError
from plantguard.inventory.fingerprint_evidence import (
    BINDER_KINDS,
    FLAGS,
    GROUP_REF,
    SERVED_ROLE,
    TESTS,
    Condition,
    Fingerprint,
)

FORMAT = "plantguard-fingerprints/1"
ENV = "PLANTGUARD_FINGERPRINTS"
# Roles a fingerprint resting only on a User-Agent may conclude (a browser or a tool, not a device).
USER_AGENT_ROLES = frozenset({"it-host", "workstation"})
IDENTITY_KEYS = ("vendor", "product", "family", "model", "firmware", "os", "device_class")
_ID = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")
_PORT = re.compile(r"^(tcp|udp)/(\d{1,5})$")
# identity fields a device states about itself (what identity conditions may read by default)
IDENTITY_FIELDS = ("product", "model", "device_type", "module", "description", "order_number", "name",
                   "vendor", "os", "firmware", "ssdp_server", "user_agent", "software", "platform")


class FingerprintError(InputError, ValueError):
    """A bad fingerprint file or entry: one line naming the file and the fingerprint."""


# -- reading evidence entries --------------------------------------------------------------------
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
    **{flag: (lambda k, v: _bool(v, k)) for flag in FLAGS},
}


def _parse_condition(kind: str, v) -> Condition:
    parse = _PARSERS.get(kind)
    if parse is None:
        raise ValueError(f"unknown evidence {kind!r} (known: {', '.join(sorted(TESTS))})")
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


# -- reading fingerprints ------------------------------------------------------------------------
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
        missing = set(GROUP_REF.findall(v)) - groups
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
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # LibYAML's C loader when present: faster
    try:
        doc = yaml.load(text, Loader=loader)
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
