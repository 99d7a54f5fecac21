"""What a layer-2 neighbour announcement (LLDP, CDP) tells about its sender, said once: the role
its enabled capabilities suggest, the identity with its management address, and its host name."""
from __future__ import annotations

from plantguard.model import Observation, Packet

_SWITCH_CAPABILITIES = frozenset({"bridge", "switch", "trans-bridge", "source-route-bridge"})


def role_hint(caps: list[str]) -> str | None:
    """'router' or 'switch' from announced capability names (LLDP and CDP spell bridges differently)."""
    if "router" in caps:
        return "router"
    if _SWITCH_CAPABILITIES.intersection(caps):
        return "switch"
    return None


def announce(pkt: Packet, proto: str, ident: dict, caps: list[str], addrs: list[str],
             name: str | None) -> list[Observation]:
    """The sender's identity (with a role hint and its first management address) and host name."""
    hint = role_hint(caps)
    if hint:
        ident["role_hint"] = hint
    if addrs:
        ident["ip"] = addrs[0]
    out = [pkt.observe("identity", proto, subject="src", **ident)]
    if name:
        extra = {"ip": addrs[0]} if addrs else {}
        out.append(pkt.observe("hostname", proto, subject="src", name=name, source=proto, **extra))
    return out
