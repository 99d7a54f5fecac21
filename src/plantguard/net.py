"""Address classes, decided in one place for every stage (inventory, checks, knowledge, report)."""
from __future__ import annotations

import ipaddress
from functools import lru_cache


@lru_cache(maxsize=262144)
def address_class(ip: str | None) -> str:
    """'public', 'private', or 'other' (multicast, broadcast, unspecified, not an address).
    Broadcast is judged by text (a '.255' last octet) because captures rarely say the mask."""
    if not ip:
        return "other"
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return "other"
    if a.is_multicast or a.is_unspecified or (a.version == 4 and ip.endswith(".255")):
        return "other"
    return "public" if a.is_global else "private"


def is_public(ip: str | None) -> bool:
    """A unicast address on the internet (not private, not multicast or broadcast)."""
    return address_class(ip) == "public"


def is_unicast(ip: str | None) -> bool:
    return address_class(ip) != "other"


def is_global(ip: str | None) -> bool:
    """The address lies in globally routed space (multicast and broadcast included): where a
    packet to it would leave the plant."""
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip).is_global
    except ValueError:
        return False


def ip_sort_key(ip: str) -> tuple:
    """Addresses in numeric order, IPv4 before IPv6, anything unparsable last."""
    try:
        a = ipaddress.ip_address(ip)
        return (a.version, int(a))
    except ValueError:
        return (9, 0)
