"""CDP (Cisco Discovery Protocol, LLC/SNAP OUI 00:00:0c type 0x2000): a Cisco device
announcing itself to its neighbours.

One `identity` observation per distinct announcement, describing the sender MAC: name (device
id), description (software version text), firmware (the "Version x" in it), product and model
(platform), vendor, port_id, capabilities, role_hint, native_vlan and `ip` = the first
announced IPv4 address. The device id is also a `hostname` observation."""
from __future__ import annotations

import ipaddress

from plantguard.model import Observation, Packet
from plantguard.protocols._neighbour import announce
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols._sysdescr import parse_description
from plantguard.protocols.base import printable

NAME = "cdp"

MAX_TLVS = 64
MAX_ADDRESSES = 16
CAPABILITIES = ((0x01, "router"), (0x02, "trans-bridge"), (0x04, "source-route-bridge"),
                (0x08, "switch"), (0x10, "host"), (0x20, "igmp"), (0x40, "repeater"),
                (0x80, "phone"), (0x100, "remote-managed"), (0x200, "cvta"), (0x400, "mac-relay"))
T_DEVICE_ID, T_ADDRESSES, T_PORT_ID, T_CAPS, T_VERSION, T_PLATFORM = 1, 2, 3, 4, 5, 6
T_NATIVE_VLAN, T_MGMT_ADDRESSES = 0x0A, 0x16


def signature(payload: bytes) -> bool:
    return len(payload) >= 8 and payload[0] in (1, 2)


def _addresses(v: bytes) -> list[str]:
    """The IPv4/IPv6 entries of an Addresses TLV."""
    out: list[str] = []
    if len(v) < 4:
        return out
    count = min(int.from_bytes(v[:4], "big"), MAX_ADDRESSES)
    off = 4
    for _ in range(count):
        if off + 2 > len(v):
            break
        ptype, plen = v[off], v[off + 1]
        proto = v[off + 2:off + 2 + plen]
        off += 2 + plen
        if off + 2 > len(v):
            break
        alen = int.from_bytes(v[off:off + 2], "big")
        addr = v[off + 2:off + 2 + alen]
        off += 2 + alen
        if len(addr) < alen:
            break
        if ptype == 1 and proto == b"\xcc" and alen == 4:
            out.append(str(ipaddress.IPv4Address(addr)))
        elif ptype == 2 and proto.endswith(b"\x86\xdd") and alen == 16:
            out.append(str(ipaddress.IPv6Address(addr)))
    return out


def parse(payload: bytes) -> dict:
    out: dict = {}
    if not signature(payload):
        return out
    out["cdp_version"] = payload[0]
    off, n = 4, 0
    while off + 4 <= len(payload) and n < MAX_TLVS:
        n += 1
        t = int.from_bytes(payload[off:off + 2], "big")
        ln = int.from_bytes(payload[off + 2:off + 4], "big")
        if ln < 4:
            break
        v = payload[off + 4:off + ln]
        off += ln
        if t == T_DEVICE_ID:
            out["name"] = printable(v)
        elif t == T_ADDRESSES:
            out["addresses"] = _addresses(v)
        elif t == T_PORT_ID:
            out["port_id"] = printable(v)
        elif t == T_CAPS and len(v) >= 4:
            bits = int.from_bytes(v[:4], "big")
            out["capabilities"] = [name for bit, name in CAPABILITIES if bits & bit]
        elif t == T_VERSION:
            out["software"] = v[:1024].decode("utf-8", "replace").strip()
        elif t == T_PLATFORM:
            out["platform"] = printable(v)
        elif t == T_NATIVE_VLAN and len(v) >= 2:
            out["native_vlan"] = int.from_bytes(v[:2], "big")
        elif t == T_MGMT_ADDRESSES:
            out["mgmt_addresses"] = _addresses(v)
    return out


def decode(pkt: Packet) -> list[Observation]:
    info = parse(pkt.payload)
    if not info.get("name") and not info.get("platform"):
        return []
    ident: dict = {"vendor": "Cisco"}
    if info.get("name"):
        ident["name"] = info["name"]
    software = info.get("software")
    if software:
        ident["description"] = " ".join(software.split())[:512]
        for k, v in parse_description(software).items():
            ident.setdefault(k, v)
    platform = info.get("platform")
    if platform:
        ident["product"] = platform
        model = platform.split()[-1] if platform.lower().startswith("cisco ") else platform
        ident["model"] = model
    for key in ("port_id", "capabilities", "native_vlan"):
        if info.get(key) not in (None, [], ""):
            ident[key] = info[key]
    addrs = (info.get("mgmt_addresses") or []) + (info.get("addresses") or [])
    return announce(pkt, NAME, ident, info.get("capabilities") or [], addrs, info.get("name"))


SPEC = ProtocolSpec(
    name=NAME, title="CDP", layer="it",
    decode=decode, signature=signature,
    llc_snap=((b"\x00\x00\x0c", 0x2000),),
    observes=("hostname", "identity"),
)
