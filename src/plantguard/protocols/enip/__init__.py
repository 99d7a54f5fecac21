"""EtherNet/IP encapsulation (TCP/UDP 44818) and the CIP messages it carries, plus implicit I/O
(UDP 2222).

Observations: service (once per flow); identity from ListIdentity replies and from CIP Identity
object replies (Get_Attributes_All / Get_Attribute_Single / Get_Attribute_List on class 1,
also when routed through a backplane by Unconnected Send); operation per discovery command
and per CIP request (Multiple Service Packet and Unconnected Send are unwrapped, so each inner
service counts once); error for a failed encapsulation command or CIP reply; one "read"
operation per implicit I/O packet.

One module per layer: encap (header, commands, framing, CPF items), cip (messages, pairing,
what a request does), path (EPATH), pccc, identity, io (implicit I/O), routine (array
recognisers). This module decodes a packet and turns each encapsulation PDU into observations;
cip._observe_cip and io._observe_io give those of a CIP message and an I/O packet.
"""
from __future__ import annotations

from collections import OrderedDict

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import tcp_pdus
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.base import once
from plantguard.protocols.enip import cip, io
from plantguard.protocols.enip.cip import (
    CLASS_CONNECTION_MANAGER,
    CLASS_IDENTITY,
    CLASS_SERVICES,
    SERVICES,
    TAG_SERVICES,
    CipMessage,
    cip_messages,
    class_name,
    describe_request,
    parse_message,
    service_name,
    status_name,
)
from plantguard.protocols.enip.encap import (
    COMMANDS,
    ENCAP,
    ENCAP_PORT,
    ENCAP_STATUS,
    IO_PORT,
    LIST_IDENTITY,
    MAX_ENCAP,
    MAX_PDUS_PER_SEGMENT,
    NAME,
    SEND_RR_DATA,
    SEND_UNIT_DATA,
    Encap,
    cpf_items,
    encap_signature,
    frame_len,
    is_request,
)
from plantguard.protocols.enip.identity import (
    _table,
    device_type_name,
    identity_from_reply,
    parse_list_identity,
    vendor_name,
)
from plantguard.protocols.enip.io import IOPacket, parse_io
from plantguard.protocols.enip.pccc import PCCC
from plantguard.protocols.enip.routine import (
    PIPELINED_WIDTH,
    cip_io_routine,
    enip_cip_routine,
    enip_pipelined_routine,
)

__all__ = ["CLASS_CONNECTION_MANAGER", "CLASS_IDENTITY", "CLASS_SERVICES", "COMMANDS", "ENCAP", "ENCAP_PORT",
           "ENCAP_STATUS", "IO_PORT", "NAME", "PCCC", "SERVICES", "SPEC", "TAG_SERVICES", "CipMessage", "Encap",
           "IOPacket", "_table", "cip_io_routine", "cip_messages", "class_name", "cpf_items", "decode",
           "describe_request", "device_type_name", "enip_cip_routine", "enip_pipelined_routine", "frame_len", "identity_from_reply",
           "is_request", "parse_io", "parse_list_identity", "parse_message", "service_name", "signature",
           "status_name", "vendor_name"]


def signature(payload: bytes) -> bool:
    """An encapsulation header with a known command and options 0 (a partial last PDU is
    fine), or an implicit I/O packet (sequenced address item + connected data item)."""
    return encap_signature(payload) or parse_io(payload) is not None


def decode(pkt: Packet) -> list[Observation]:
    if pkt.l4 == "udp" and IO_PORT in (pkt.sport, pkt.dport) and ENCAP_PORT not in (pkt.sport, pkt.dport):
        packet = parse_io(pkt.payload)
        return io._observe_io(pkt, packet) if packet is not None else []
    out: list[Observation] = []
    request = is_request(pkt)
    for raw in tcp_pdus(pkt, frame_len, MAX_ENCAP, MAX_PDUS_PER_SEGMENT):
        out.extend(_observe(pkt, Encap(*ENCAP.struct.unpack_from(raw, 0), bytes(raw[ENCAP.size:]), request)))
    return out



def prime(pkt: Packet) -> None:
    """The flow's state moved past a packet the engine replayed, as decode() moves it, with no
    output: the stream, the service seen, and the requests kept for their replies (unparsed
    until a decoded reply needs one: cip.track_pending)."""
    if pkt.l4 == "udp" and IO_PORT in (pkt.sport, pkt.dport) and ENCAP_PORT not in (pkt.sport, pkt.dport):
        decode(pkt)
        return
    request = is_request(pkt)
    for raw in tcp_pdus(pkt, frame_len, MAX_ENCAP, MAX_PDUS_PER_SEGMENT):
        once(pkt, "service")
        command = ENCAP.struct.unpack_from(raw, 0)[0]
        if command in (SEND_RR_DATA, SEND_UNIT_DATA):
            pending = pkt.state.get("pending")
            if pending is None:
                pending = pkt.state["pending"] = OrderedDict()
            cip.track_pending(Encap(*ENCAP.struct.unpack_from(raw, 0), bytes(raw[ENCAP.size:]), request), pending)

def _observe(pkt: Packet, enc: Encap) -> list[Observation]:
    out: list[Observation] = []
    if once(pkt, "service"):
        out.append(pkt.observe("service", NAME, subject="dst" if enc.request else "src", name=NAME))
    name, category = COMMANDS.get(enc.command, (f"Command 0x{enc.command:04x}", "other"))
    if enc.request and category is not None:
        out.append(pkt.observe("operation", NAME, subject="dst", category=category, code=enc.command,
                               name=name, detail=f"encapsulation command {name}"))
    if not enc.request and enc.status:
        out.append(pkt.observe("error", NAME, subject="src", code=enc.status,
                               name=ENCAP_STATUS.get(enc.status, f"Encapsulation status 0x{enc.status:x}"),
                               command=name))
    if enc.command == LIST_IDENTITY and not enc.request:
        for ident in parse_list_identity(enc.data):
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
    elif enc.command in (SEND_RR_DATA, SEND_UNIT_DATA):
        pending = pkt.state.get("pending")
        if pending is None:
            pending = pkt.state["pending"] = OrderedDict()
        for msg in cip_messages(enc, pending, copy=False):
            out.extend(cip._observe_cip(pkt, msg))
            if not msg.response:
                msg.data = b""     # kept in pending for the reply, which needs ids, not data
    return out


SPEC = ProtocolSpec(
    name=NAME, title="EtherNet/IP + CIP", layer="industrial",
    decode=decode, signature=signature, prime=prime,
    tcp_ports=(ENCAP_PORT,),
    udp_ports=(ENCAP_PORT, IO_PORT),
    # most CIP messages fit 128 bytes; a second pass at 512 on the rows the first left, then
    # segments of several PDUs (pipelined polls) up to a full Ethernet frame
    routine=(Routine(cip_io_routine, 24, transport=17), Routine(enip_cip_routine, 128, transport=6),
             Routine(enip_cip_routine, 512, transport=6), Routine(enip_pipelined_routine, PIPELINED_WIDTH, transport=6)),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="plc",
    observes=("error", "identity", "operation", "service"),
)
