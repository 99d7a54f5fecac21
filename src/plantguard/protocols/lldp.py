"""LLDP (IEEE 802.1AB, Ethernet type 0x88cc): a switch, PLC or PC announcing itself.

One `identity` observation per distinct announcement, describing the sender MAC: name
(system name), description (system description) and what that description plainly says
(vendor, product, firmware, hardware, Siemens order number), chassis_id, port_id,
port_description, capabilities, role_hint ("router" / "switch" from the enabled
capabilities), and `ip` = the first IPv4/IPv6 management address. The system name is also a
`hostname` observation (with that `ip` when one is announced)."""
from __future__ import annotations

import ipaddress

from plantguard.model import Observation, Packet
from plantguard.protocols._neighbour import announce
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols._sysdescr import parse_description
from plantguard.protocols.base import printable

NAME = "lldp"

MAX_TLVS = 64
CAPABILITIES = ((0x01, "other"), (0x02, "repeater"), (0x04, "bridge"), (0x08, "wlan-ap"),
                (0x10, "router"), (0x20, "telephone"), (0x40, "docsis"), (0x80, "station"))
# chassis / port id subtypes whose value is a MAC address or a network address
_MAC_SUBTYPE = {1: 4, 2: 3}
_NET_SUBTYPE = {1: 5, 2: 4}


def signature(payload: bytes) -> bool:
    return len(payload) >= 2 and payload[0] >> 1 == 1  # starts with a Chassis ID TLV


def _net_address(b: bytes) -> str | None:
    """An IANA address-family-prefixed address (1 = IPv4, 2 = IPv6)."""
    if len(b) == 5 and b[0] == 1:
        return str(ipaddress.IPv4Address(b[1:5]))
    if len(b) == 17 and b[0] == 2:
        return str(ipaddress.IPv6Address(b[1:17]))
    return None


def _id_value(kind: int, b: bytes) -> str | None:
    if len(b) < 2:
        return None
    subtype, v = b[0], b[1:]
    if subtype == _MAC_SUBTYPE[kind] and len(v) == 6:
        return v.hex(":")
    if subtype == _NET_SUBTYPE[kind]:
        addr = _net_address(v)
        if addr:
            return addr
    return printable(v) or v.hex()


def cap_names(bits: int) -> list[str]:
    return [name for bit, name in CAPABILITIES if bits & bit]


def parse(payload: bytes) -> dict:
    """The TLVs plantguard uses, as a dict (missing ones absent)."""
    out: dict = {}
    off, n = 0, 0
    while off + 2 <= len(payload) and n < MAX_TLVS:
        n += 1
        head = int.from_bytes(payload[off:off + 2], "big")
        t, ln = head >> 9, head & 0x1FF
        v = payload[off + 2:off + 2 + ln]
        off += 2 + ln
        if t == 0 or len(v) < ln:
            break
        if t == 1:
            out["chassis_id"] = _id_value(1, v)
        elif t == 2:
            out["port_id"] = _id_value(2, v)
        elif t == 3 and ln >= 2:
            out["ttl"] = int.from_bytes(v[:2], "big")
        elif t == 4:
            out["port_description"] = printable(v)
        elif t == 5:
            out["name"] = printable(v)
        elif t == 6:
            out["description"] = printable(v, 512)
        elif t == 7 and ln >= 4:
            out["capabilities"] = cap_names(int.from_bytes(v[:2], "big"))
            out["enabled_capabilities"] = cap_names(int.from_bytes(v[2:4], "big"))
        elif t == 8 and ln >= 2:
            alen = v[0]
            addr = _net_address(v[1:1 + alen])
            if addr:
                out.setdefault("mgmt_addresses", []).append(addr)
    return out


def decode(pkt: Packet) -> list[Observation]:
    info = parse(pkt.payload)
    if "chassis_id" not in info:
        return []
    ident: dict = {}
    for key in ("name", "description", "chassis_id", "port_id", "port_description"):
        if info.get(key):
            ident[key] = info[key]
    for k, v in parse_description(info.get("description")).items():
        ident.setdefault(k, v)
    caps = info.get("enabled_capabilities") or info.get("capabilities") or []
    if info.get("capabilities"):
        ident["capabilities"] = info["capabilities"]
    return announce(pkt, NAME, ident, caps, info.get("mgmt_addresses") or [], info.get("name"))


SPEC = ProtocolSpec(
    name=NAME, title="LLDP", layer="it",
    decode=decode, signature=signature,
    ethertypes=(0x88CC,),
    observes=("hostname", "identity"),
)
