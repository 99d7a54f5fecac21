"""Finds the protocol modules, checks their declared SPEC, and answers every question the rest
of plantguard asks about protocols (ports, names, traits, roles): lists of protocol names
elsewhere are derived from here, never written by hand.

A module (or package) under plantguard/protocols/ whose name does not start with '_' is a
protocol and must declare `


SPEC = ProtocolSpec(...)`; anything wrong with it stops the load
with a one-line ProtocolSpecError naming the module."""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from types import ModuleType

from plantguard.protocols._spec import (
    ProtocolSpec,
    ProtocolSpecError,
    unknown_key_error,
)

_NOT_PROTOCOLS = {"registry", "base"}
# Module-level names of the old declaration style: a module still using them has not moved
# its traits into SPEC and would silently lose them.
_LEGACY = {"TCP_PORTS", "UDP_PORTS", "ETHERTYPES", "ANY_PORT", "LLC_SNAP", "ROUTINE_REPLAY",
           "TCP_PORT", "UDP_PORT", "ETHERTYPE"}


@lru_cache(maxsize=1)
def protocol_modules() -> tuple[ModuleType, ...]:
    """Every protocol module, sorted by module name, each with a valid SPEC."""
    import plantguard.protocols as pkg
    mods = [load_module(f"plantguard.protocols.{info.name}")
            for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name)
            if info.name not in _NOT_PROTOCOLS and not info.name.startswith("_")]
    seen: dict[str, str] = {}
    for m in mods:
        name = m.SPEC.name
        if name in seen:
            raise ProtocolSpecError(f"{m.__name__}: protocol name {name!r} is already declared by {seen[name]}")
        seen[name] = m.__name__
    return tuple(mods)


def load_module(qualname: str) -> ModuleType:
    """Import one protocol module and check its declaration (one-line error when wrong)."""
    try:
        mod = importlib.import_module(qualname)
    except TypeError as e:
        err = unknown_key_error(qualname, e)
        if err is None:
            raise ProtocolSpecError(f"{qualname}: {type(e).__name__}: {e}") from e
        raise err from e
    except ProtocolSpecError as e:
        raise ProtocolSpecError(f"{qualname}: {e}") from e
    except Exception as e:
        raise ProtocolSpecError(f"{qualname}: cannot be imported: {type(e).__name__}: {e}") from e
    spec = getattr(mod, "SPEC", None)
    if not isinstance(spec, ProtocolSpec):
        raise ProtocolSpecError(f"{qualname}: declares no SPEC = ProtocolSpec(...)")
    legacy = sorted(_LEGACY & set(vars(mod)))
    if legacy:
        raise ProtocolSpecError(f"{qualname}: {', '.join(legacy)} at module level; declare them in SPEC")
    if getattr(mod, "NAME", spec.name) != spec.name:
        raise ProtocolSpecError(f"{qualname}: NAME {mod.NAME!r} differs from SPEC.name {spec.name!r}")
    if getattr(mod, "decode", spec.decode) is not spec.decode:
        raise ProtocolSpecError(f"{qualname}: SPEC.decode is not the module's decode()")
    return mod


def protocol_specs() -> tuple[ProtocolSpec, ...]:
    return tuple(m.SPEC for m in protocol_modules())


def protocol_names() -> frozenset[str]:
    return frozenset(s.name for s in protocol_specs())


def names_with_trait(trait: str) -> frozenset[str]:
    """Protocol names that declare `trait` (see _spec.TRAITS)."""
    return _names_with_trait(trait)


@lru_cache(maxsize=None)
def _names_with_trait(trait: str) -> frozenset[str]:
    return frozenset(s.name for s in protocol_specs() if trait in s.traits)


@lru_cache(maxsize=1)
def server_roles() -> dict[str, str]:
    """Protocol name -> the role of the hosts that serve it, where the protocol says one."""
    return {s.name: s.server_role for s in protocol_specs() if s.server_role}


@lru_cache(maxsize=1)
def port_tables() -> tuple[dict, dict, dict, tuple]:
    tcp: dict[int, list] = {}
    udp: dict[int, list] = {}
    eth: dict[int, list] = {}
    anyport = []
    for m in protocol_modules():
        s = m.SPEC
        for p in s.tcp_ports:
            tcp.setdefault(p, []).append(m)
        for p in s.udp_ports:
            udp.setdefault(p, []).append(m)
        for t in s.ethertypes:
            eth.setdefault(t, []).append(m)
        if s.any_port:
            anyport.append(m)
    return tcp, udp, eth, tuple(anyport)


@lru_cache(maxsize=1)
def layer2_ids() -> tuple[frozenset[int], frozenset[tuple[bytes, int]]]:
    """The EtherTypes and the 802.2 SNAP (OUI, protocol id) pairs some module decodes: a
    layer-2 frame of any other id is counted as not decoded (layers.undecoded_kind)."""
    mods = protocol_modules()
    return (frozenset(t for m in mods for t in m.SPEC.ethertypes),
            frozenset(k for m in mods for k in m.SPEC.llc_snap))


def by_name(name: str) -> ModuleType | None:
    for m in protocol_modules():
        if m.SPEC.name == name:
            return m
    return None


def spec_of(name: str) -> ProtocolSpec | None:
    m = by_name(name)
    return m.SPEC if m is not None else None


def classify(l4: str, sport: int, dport: int, payload: bytes) -> ModuleType | None:
    """The protocol module for a payload: a module registered on either port whose signature
    matches, else any module that recognises itself on any port. None when nothing matches."""
    tcp, udp, _eth, anyport = port_tables()
    table = tcp if l4 == "tcp" else udp
    tried = []
    for port in (dport, sport):
        for m in table.get(port, ()):
            if m in tried:
                continue
            tried.append(m)
            if _sig(m, payload):
                return m
    for m in anyport:
        if m not in tried and _sig(m, payload, m.SPEC.any_port_signature):
            return m
    return None


def is_known_server_port(l4: str, port: int) -> bool:
    tcp, udp, _eth, _any = port_tables()
    return port in (tcp if l4 == "tcp" else udp)


def _sig(m: ModuleType, payload: bytes, signature=None) -> bool:
    """The module's signature (or the stricter one it gives for ports not its own)."""
    try:
        return bool((signature or m.SPEC.signature)(payload))
    except Exception:  # a signature must never break classification
        return False
