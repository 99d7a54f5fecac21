"""DHCP / BOOTP (UDP 67 server, 68 client).

Client messages describe the client, named by its hardware address (chaddr): when the sender
has no usable IP yet (0.0.0.0) or the message was relayed, the observation's src is None and
src_mac is chaddr, so it lands on the device and not on the relay. They give:
  identity  dhcp_fingerprint (option 55 as a comma list), description = vendor class (60)
            with an `os` hint, dhcp_client_id (61), dhcp_requested_ip (50), dhcp_message (53)
  hostname  option 12 (source "dhcp")
  address   ciaddr <-> chaddr when the client already holds an address
Server messages give the `service` (subject src), on ACK the binding yiaddr <-> chaddr, and
on NAK an `error` with the server's message."""
from __future__ import annotations

import socket

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols.base import printable

NAME = "dhcp"

MAGIC = b"\x63\x82\x53\x63"
MAX_OPTIONS = 128
MSG_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK",
             7: "RELEASE", 8: "INFORM", 9: "FORCERENEW", 10: "LEASEQUERY", 11: "LEASEUNASSIGNED",
             12: "LEASEUNKNOWN", 13: "LEASEACTIVE"}
ACK = 5
# vendor class prefixes -> operating system family (best effort)
_OS_HINTS = (("msft", "Windows"), ("android", "Android"), ("dhcpcd", "Linux"), ("udhcp", "Linux"),
             ("linux", "Linux"), ("ubnt", "Linux"), ("cisco", "Cisco IOS"), ("vxworks", "VxWorks"))


def signature(payload: bytes) -> bool:
    return len(payload) >= 240 and payload[0] in (1, 2) and payload[236:240] == MAGIC


def _ip(b: bytes) -> str:
    return socket.inet_ntoa(b)


def parse(payload: bytes) -> dict | None:
    """The BOOTP header fields and the options plantguard uses; None when not DHCP/BOOTP."""
    if not signature(payload):
        return None
    hlen = min(payload[2], 16)
    msg = {"op": payload[0], "xid": int.from_bytes(payload[4:8], "big"),
           "ciaddr": _ip(payload[12:16]), "yiaddr": _ip(payload[16:20]),
           "siaddr": _ip(payload[20:24]), "giaddr": _ip(payload[24:28]),
           "chaddr": payload[28:28 + hlen].hex(":"), "options": {}}
    opts = msg["options"]
    off, n = 240, 0
    while off < len(payload) and n < MAX_OPTIONS:
        n += 1
        code = payload[off]
        if code == 255:
            break
        if code == 0:
            off += 1
            continue
        if off + 2 > len(payload):
            break
        ln = payload[off + 1]
        val = payload[off + 2:off + 2 + ln]
        off += 2 + ln
        if len(val) < ln:
            break
        opts[code] = opts.get(code, b"") + val   # long options may be split (RFC 3396)
    return msg


def fields(msg: dict) -> dict:
    """Readable values of the options a defender cares about."""
    o = msg["options"]
    out: dict = {}
    if 53 in o and o[53]:
        out["message"] = MSG_TYPES.get(o[53][0], str(o[53][0]))
    if o.get(12):
        out["hostname"] = printable(o[12], 255)
    if o.get(60):
        out["vendor_class"] = printable(o[60], 255)
    if o.get(55):
        out["fingerprint"] = ",".join(str(b) for b in o[55])
    if o.get(61):
        cid = o[61]
        out["client_id"] = cid[1:].hex(":") if cid[0] == 1 and len(cid) == 7 else cid.hex()
    if len(o.get(50, b"")) == 4:
        out["requested_ip"] = _ip(o[50])
    if len(o.get(54, b"")) == 4:
        out["server_id"] = _ip(o[54])
    if len(o.get(51, b"")) == 4:
        out["lease_time"] = int.from_bytes(o[51], "big")
    if o.get(15):
        out["domain"] = printable(o[15], 255)
    if o.get(56):
        out["server_message"] = printable(o[56], 255)
    return out


def os_hint(vendor_class: str | None) -> str | None:
    if not vendor_class:
        return None
    low = vendor_class.lower()
    for prefix, os_name in _OS_HINTS:
        if low.startswith(prefix):
            return os_name
    return None


def _about_client(pkt: Packet, chaddr: str, kind: str, **data) -> Observation:
    """An observation describing the DHCP client, named by its hardware address whenever the
    packet's own source address is not the client's (no address yet, or a relay)."""
    if pkt.src not in (None, "0.0.0.0") and pkt.src_mac == chaddr:
        return pkt.observe(kind, NAME, subject="src", **data)
    return Observation(kind, NAME, pkt.capture, pkt.frame, pkt.ts, None, pkt.dst, chaddr,
                       pkt.dst_mac, pkt.l4, pkt.sport, pkt.dport, pkt.vlan, "src", data)


def decode(pkt: Packet) -> list[Observation]:
    msg = parse(pkt.payload)
    if msg is None:
        return []
    f = fields(msg)
    chaddr = msg["chaddr"]
    out: list[Observation] = []
    usable_mac = len(chaddr) == 17 and chaddr != "00:00:00:00:00:00"
    if msg["op"] == 1 and usable_mac:
        ident: dict = {}
        if "fingerprint" in f:
            ident["dhcp_fingerprint"] = f["fingerprint"]
        if "vendor_class" in f:
            ident["description"] = f["vendor_class"]
            ident["dhcp_vendor_class"] = f["vendor_class"]
            hint = os_hint(f["vendor_class"])
            if hint:
                ident["os"] = hint
        if "client_id" in f:
            ident["dhcp_client_id"] = f["client_id"]
        if ident:
            ident["mac"] = chaddr
            for k in ("message", "requested_ip"):
                if k in f:
                    ident["dhcp_" + k] = f[k]
            out.append(_about_client(pkt, chaddr, "identity", **ident))
        if "hostname" in f:
            extra = {"ip": msg["ciaddr"]} if msg["ciaddr"] != "0.0.0.0" else {}
            out.append(_about_client(pkt, chaddr, "hostname", name=f["hostname"], source=NAME,
                                     mac=chaddr, **extra))
        if msg["ciaddr"] != "0.0.0.0" and f.get("message") in ("REQUEST", "INFORM", "RELEASE"):
            out.append(pkt.observe("address", NAME, subject="src", ip=msg["ciaddr"], mac=chaddr,
                                   source=NAME))
    elif msg["op"] == 2:
        svc = {"name": NAME}
        if "server_id" in f:
            svc["server_id"] = f["server_id"]
        out.append(pkt.observe("service", NAME, subject="src", **svc))
        if f.get("message") == "NAK":
            out.append(pkt.observe("error", NAME, subject="src", code=6,
                                   name=f.get("server_message") or "NAK"))
        # an ACK (or a plain BOOTP reply, which has no message type) hands out yiaddr
        if f.get("message") in ("ACK", None) and usable_mac and msg["yiaddr"] != "0.0.0.0":
            extra = {"lease_time": f["lease_time"]} if "lease_time" in f else {}
            out.append(pkt.observe("address", NAME, subject="dst", ip=msg["yiaddr"], mac=chaddr,
                                   source=NAME, **extra))
    return out


SPEC = ProtocolSpec(
    name=NAME, title="DHCP", layer="it",
    decode=decode, signature=signature,
    udp_ports=(67, 68),
    observes=("address", "error", "hostname", "identity", "service"),
)
