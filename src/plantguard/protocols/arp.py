"""ARP (Ethernet type 0x0806, also over LLC/SNAP): which MAC answers for which IPv4 address.

Emits an `address` observation (ip, mac, source "arp") for the sender of every request and
reply, and for the target of a reply (the asker). A sender that announces its own address
(sender IP == target IP: gratuitous ARP / announcement) is flagged `gratuitous`. ARP probes
(sender 0.0.0.0) bind nothing. Headers with other hardware/protocol sizes are ignored."""
from __future__ import annotations

import socket

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec

NAME = "arp"

OP_REQUEST, OP_REPLY = 1, 2
_NO_MAC = ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff")


def signature(payload: bytes) -> bool:
    # hardware type Ethernet (1) or IEEE 802 (6, seen over LLC/SNAP), IPv4, 6-byte MAC, 4-byte IP
    return len(payload) >= 28 and payload[:2] in (b"\x00\x01", b"\x00\x06") \
        and payload[2:6] == b"\x08\x00\x06\x04"


def parse(payload: bytes) -> dict | None:
    """{op, sha, spa, tha, tpa} of an Ethernet/IPv4 ARP packet, None for anything else."""
    if not signature(payload):
        return None
    op = int.from_bytes(payload[6:8], "big")
    return {"op": op,
            "sha": payload[8:14].hex(":"), "spa": socket.inet_ntoa(payload[14:18]),
            "tha": payload[18:24].hex(":"), "tpa": socket.inet_ntoa(payload[24:28])}


def decode(pkt: Packet) -> list[Observation]:
    a = parse(pkt.payload)
    if a is None or a["op"] not in (OP_REQUEST, OP_REPLY):
        return []
    out = []
    gratuitous = a["spa"] == a["tpa"]
    if a["spa"] != "0.0.0.0" and a["sha"] not in _NO_MAC:
        data = {"ip": a["spa"], "mac": a["sha"], "source": NAME}
        if gratuitous:
            data["gratuitous"] = True
        out.append(pkt.observe("address", NAME, subject="src", **data))
    if a["op"] == OP_REPLY and not gratuitous and a["tpa"] != "0.0.0.0" and a["tha"] not in _NO_MAC:
        out.append(pkt.observe("address", NAME, subject="dst", ip=a["tpa"], mac=a["tha"], source=NAME))
    return out


SPEC = ProtocolSpec(
    name=NAME, title="ARP", layer="it",
    decode=decode, signature=signature,
    ethertypes=(0x0806,),
    llc_snap=((b"\x00\x00\x00", 0x0806),),
    observes=("address",),
)
