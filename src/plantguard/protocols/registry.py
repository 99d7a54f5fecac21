"""Finds the protocol modules and picks the one that owns a flow (by port AND signature)."""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from types import ModuleType

_NOT_PROTOCOLS = {"registry", "base"}


@lru_cache(maxsize=1)
def protocol_modules() -> tuple[ModuleType, ...]:
    import plantguard.protocols as pkg
    mods = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name in _NOT_PROTOCOLS or info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"plantguard.protocols.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "decode"):
            mods.append(mod)
    return tuple(mods)


@lru_cache(maxsize=1)
def port_tables() -> tuple[dict, dict, dict, tuple]:
    tcp: dict[int, list] = {}
    udp: dict[int, list] = {}
    eth: dict[int, list] = {}
    anyport = []
    for m in protocol_modules():
        for p in getattr(m, "TCP_PORTS", ()):
            tcp.setdefault(p, []).append(m)
        for p in getattr(m, "UDP_PORTS", ()):
            udp.setdefault(p, []).append(m)
        for t in getattr(m, "ETHERTYPES", ()):
            eth.setdefault(t, []).append(m)
        if getattr(m, "ANY_PORT", False):
            anyport.append(m)
    return tcp, udp, eth, tuple(anyport)


def by_name(name: str) -> ModuleType | None:
    for m in protocol_modules():
        if m.NAME == name:
            return m
    return None


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
        if m not in tried and _sig(m, payload):
            return m
    return None


def is_known_server_port(l4: str, port: int) -> bool:
    tcp, udp, _eth, _any = port_tables()
    return port in (tcp if l4 == "tcp" else udp)


def _sig(m: ModuleType, payload: bytes) -> bool:
    try:
        return bool(m.signature(payload))
    except Exception:  # a signature must never break classification
        return False
