"""MAC address -> vendor, from the IEEE registry shipped inside the netaddr package (no network
at run time)."""
from __future__ import annotations

import re
from functools import lru_cache

import netaddr

# IEEE registrations carry legal suffixes and odd capitalisation; a short name reads better.
_SUFFIXES = re.compile(r"[,.]?\s+(inc|incorporated|corp|corporation|co|company|ltd|limited|llc|gmbh|ag|"
                       r"s\.?a|s\.?p\.?a|b\.?v|a/s|oy|ab|kg|gmbh & co\.? kg|co\.,? ltd)\.?$", re.I)


@lru_cache(maxsize=65536)
def vendor_of_mac(mac: str | None) -> str | None:
    """Registered organisation for a MAC, or None (unknown, multicast or locally administered)."""
    if not mac:
        return None
    try:
        first = int(mac[:2], 16)
    except ValueError:
        return None
    if first & 0x01:   # group address
        return None
    if first & 0x02:   # locally administered: no registry entry by definition
        return None
    try:
        eui = netaddr.EUI(mac)
        org = eui.oui.registration().org
    except (netaddr.NotRegisteredError, netaddr.AddrFormatError, IndexError, ValueError):
        return None
    return short_vendor(org)


def short_vendor(org: str) -> str:
    name = " ".join(org.split()).strip(" ,.")
    for _ in range(3):   # "Festo AG & Co. KG" -> "Festo"
        name = _SUFFIXES.sub("", name).strip(" ,.&")
    if name.isupper() and len(name) > 4:
        name = name.title()
    return name
