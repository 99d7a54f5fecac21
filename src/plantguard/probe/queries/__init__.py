"""Every probe query, found in the modules of this package (each declares QUERIES); the
command line's --protocols choices and the catalogue's coverage are read from here."""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from plantguard.probe.query import Query

# --protocols names: the probe's short names for the protocols it can ask
ALIASES = {"s7": "s7comm", "dcp": "profinet"}
# the command line contract's protocol names (every one has a query module)
CONTRACT_PROTOCOLS = ("enip", "modbus", "s7", "bacnet", "snmp", "dcp", "opcua", "http")


@lru_cache(maxsize=1)
def all_queries() -> tuple[Query, ...]:
    out: list[Query] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        out.extend(mod.QUERIES)
    ids = [q.id for q in out]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"probe queries declared twice: {', '.join(sorted(dup))}")
    return tuple(out)


def short_name(protocol: str) -> str:
    return next((k for k, v in ALIASES.items() if v == protocol), protocol)


def protocol_choices() -> list[str]:
    return sorted({short_name(q.protocol) for q in all_queries()})


def select(protocols: list[str] | None) -> list[Query]:
    """The queries of the --protocols names (all when none); ValueError names an unknown one."""
    qs = all_queries()
    if not protocols:
        return list(qs)
    wanted = {ALIASES.get(p.strip().lower(), p.strip().lower()) for p in protocols if p.strip()}
    known = {q.protocol for q in qs}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"--protocols: {', '.join(unknown)} is not a probe protocol "
                         f"(choose from {', '.join(protocol_choices())})")
    return [q for q in qs if q.protocol in wanted]
