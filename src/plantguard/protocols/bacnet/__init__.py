"""BACnet/IP (ANSI/ASHRAE 135 Annex J) on UDP 47808: discovery, device identity, and the
services that read, change or restart building controllers.

Layers: BVLC (0x81, function, length), NPDU (version, control, optional routing addresses,
network-layer messages), APDU (confirmed / unconfirmed requests, simple and complex ACKs,
segment ACKs, error / reject / abort). Service parameters are BACnet tagged values.

Observations: identity from I-Am (device instance, vendor id and name, max APDU, segmentation)
and from the device object's properties in ReadProperty / ReadPropertyMultiple ACKs (vendor,
model, firmware, application software, name), with the names of the other objects those ACKs
and I-Have give (`objects`: type, instance, name); what a BACnet router forwarded from a device
behind it (NPDU source network and address) says so (`bacnet_route`), as it describes that
device, not the router; operation per request (category by service);
credential for the clear-text password of DeviceCommunicationControl / ReinitializeDevice with
the reply's verdict; error for Error / Reject / Abort PDUs; service for the answering device.

One job per module: names (code tables, vendor and enumeration names), tags (tagged values),
properties (property references and lists), apdu (BVLC / NPDU / APDU into a Message,
segmentation); the observations and the declaration are here. What callers use is re-exported
here: import from `plantguard.protocols.bacnet`.
"""
from __future__ import annotations

import struct

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import Hold, ProtocolSpec, Routine
from plantguard.protocols.bacnet.apdu import Message, _npdu_start, parse, reassemble
from plantguard.protocols.bacnet.names import (
    BVLC_FUNCTIONS,
    CONFIRMED,
    DEVICE,
    IDENTITY_PROPERTIES,
    NPDU_FUNCTIONS,
    OBJECT_NAME,
    UNCONFIRMED,
    name_of,
    vendor_names,
)
from plantguard.protocols.bacnet.properties import PropertyRef
from plantguard.protocols.bacnet.routine import bacnet_routine, hold_rows, holds, prime
from plantguard.protocols.bacnet.tags import (
    Malformed,
    Tag,
    application_value,
    character_string,
    read_tag,
    value_text,
)

__all__ = ["NAME", "SPEC", "Malformed", "Message", "PropertyRef", "Tag", "application_value",
           "character_string", "decode", "describe", "name_of", "parse", "read_tag", "reassemble",
           "signature", "value_text", "vendor_names"]

NAME = "bacnet"

MAX_PENDING = 64          # passwords waiting for their reply, per flow


def signature(payload: bytes) -> bool:
    """BVLC type 0x81 and a known function; datagrams carrying an NPDU must start it with
    version 1, the others must have an exact length. (NPDU lengths are not checked: some
    senders write a wrong BVLC length, and peers still decode those datagrams.)"""
    if len(payload) < 4 or payload[0] != 0x81 or payload[1] not in BVLC_FUNCTIONS:
        return False
    if payload[1] in NPDU_FUNCTIONS:
        start = _npdu_start(payload)
        return start + 1 < len(payload) and payload[start] == 0x01
    return struct.unpack_from(">H", payload, 2)[0] == len(payload)


# --- observations ---------------------------------------------------------------------------

def decode(pkt: Packet) -> list[Observation]:
    try:
        msg = parse(pkt.payload)
    except (Malformed, struct.error):
        return []                     # not a BACnet datagram we can read: nothing to report
    if msg.pdu_type is None or msg.pdu_type == "NPDU":
        return []
    st = pkt.state
    out: list[Observation] = []
    whole = reassemble(st, pkt.src, msg)
    if whole is None:
        return out
    msg = whole
    ptype = msg.pdu_type
    if ptype == "CONFIRMED_REQUEST":
        out.extend(_flush_stale(pkt))
        out.append(_operation(pkt, msg, CONFIRMED.get(msg.service_code, ("", "other"))[1]))
        if msg.password:
            pend = st.setdefault("pending", {})
            if len(pend) < MAX_PENDING:
                pend[(pkt.src, pkt.sport, msg.invoke_id)] = _header(pkt) + (msg.password,)
    elif ptype == "UNCONFIRMED_REQUEST":
        category = UNCONFIRMED.get(msg.service_code, ("", None))[1]
        if category:
            out.append(_operation(pkt, msg, category))
        if msg.iam:
            out.extend(_server(pkt))
            i = msg.iam
            vendor = vendor_names().get(i["vendor_id"])
            data = {"device_instance": i["device_instance"], "vendor_id": i["vendor_id"],
                    "max_apdu": i["max_apdu"], "segmentation": i["segmentation"]}
            if vendor:
                data["vendor"] = vendor
            out.append(pkt.observe("identity", NAME, subject="src", **_routed(msg, data)))
        if msg.i_have and msg.i_have.get("name") and msg.i_have.get("object"):
            out.append(_i_have(pkt, msg))
    elif ptype in ("SIMPLE_ACK", "COMPLEX_ACK", "ERROR_PDU", "REJECT_PDU", "ABORT_PDU"):
        if ptype != "ABORT_PDU" or not pkt.from_client:
            out.extend(_server(pkt))
        out.extend(_credential_result(pkt, msg))
        if ptype == "COMPLEX_ACK":
            out.extend(_device_identity(pkt, msg))
        elif ptype != "SIMPLE_ACK":
            name = f"{msg.service}: {msg.result_code}"
            if msg.error_class:
                name += f" ({msg.error_class})"
            out.append(pkt.observe("error", NAME, code=msg.result_code, name=name))
    return out


def _header(pkt: Packet) -> tuple:
    return (pkt.capture, pkt.frame, pkt.ts, pkt.src, pkt.dst, pkt.src_mac, pkt.dst_mac, pkt.l4,
            pkt.sport, pkt.dport, pkt.vlan)


def _credential(header: tuple, password: str, result: str | None) -> Observation:
    return Observation("credential", NAME, *header, "dst",
                       {"user": None, "password": password, "secret_type": "password",
                        "cleartext": True, "result": result})


def _credential_result(pkt: Packet, msg: Message) -> list[Observation]:
    pend = pkt.state.get("pending")
    if not pend:
        return []
    header = pend.pop((pkt.dst, pkt.dport, msg.invoke_id), None)
    if header is None:
        return []
    if msg.pdu_type == "SIMPLE_ACK":
        result = "success"
    elif msg.pdu_type == "ERROR_PDU" and msg.result_code in ("password-failure", "authentication-failed"):
        result = "failure"
    else:
        result = None
    return [_credential(header[:-1], header[-1], result)]


def _flush_stale(pkt: Packet) -> list[Observation]:
    """Passwords whose reply never came: report them without a verdict once the same client
    has moved on to another request (bounded memory, nothing lost)."""
    pend = pkt.state.get("pending")
    if not pend:
        return []
    stale = [k for k in pend if k[0] == pkt.src and k[1] == pkt.sport]
    return [_credential(pend[k][:-1], pend.pop(k)[-1], None) for k in stale]


def _server(pkt: Packet) -> list[Observation]:
    seen = pkt.state.setdefault("servers", set())
    if pkt.src in seen or len(seen) > 64:
        return []
    seen.add(pkt.src)
    return [pkt.observe("service", NAME, subject="src", name=NAME)]


def _operation(pkt: Packet, msg: Message, category: str) -> Observation:
    return pkt.observe("operation", NAME, category=category, code=msg.service_code,
                       name=msg.service, detail=describe(msg))


def describe(msg: Message) -> str:
    parts = [msg.service or "?"]
    if msg.properties:
        refs = []
        for ref in msg.properties[:8]:
            s = f"{name_of('object_type', ref.object_type)} {ref.instance} {name_of('property', ref.property)}"
            if ref.array_index is not None:
                s += f"[{ref.array_index}]"
            if ref.values:
                s += f" = {value_text(ref.value)[:40]}"
            refs.append(s)
        parts.append("; ".join(refs) + (f" (+{len(msg.properties) - 8} more)" if len(msg.properties) > 8 else ""))
    if msg.object_id:
        parts.append(f"{name_of('object_type', msg.object_id[0])} {msg.object_id[1]}")
    if msg.device_state:
        parts.append(msg.device_state)
    if msg.time_duration is not None:
        parts.append(f"for {msg.time_duration} min")
    if msg.who_is_range:
        parts.append(f"devices {msg.who_is_range[0]}-{msg.who_is_range[1]}")
    if msg.service_code is not None and msg.pdu_type == "CONFIRMED_REQUEST" and msg.password is not None:
        parts.append("with password")
    return " ".join(parts)


def _routed(msg: Message, data: dict) -> dict:
    """A message a BACnet router forwarded (NPDU source network and address) comes from a
    device behind it, not from the router whose IP address the packet carries: say which."""
    if msg.source_network is not None and data:
        data["bacnet_route"] = f"network {msg.source_network} mac {msg.source_address or '-'}"
    return data


def _object(otype: int, instance: int, name: str, device_instance: int | None = None) -> dict:
    entry = {"type": name_of("object_type", otype), "instance": instance, "name": name}
    if device_instance is not None:
        entry["device_instance"] = device_instance
    return entry


def _i_have(pkt: Packet, msg: Message) -> Observation:
    """I-Have: the sender holds that object, with that name (the answer to a Who-Has)."""
    i = msg.i_have
    dev, (otype, inst) = i.get("device"), i["object"]
    obj = _object(otype, inst, i["name"].strip(), dev[1] if dev else None)
    return pkt.observe("identity", NAME, subject="src", **_routed(msg, {"objects": [obj]}))


def _device_identity(pkt: Packet, msg: Message) -> list[Observation]:
    data: dict = {}
    objects: list[dict] = []
    for ref in msg.properties:
        if ref.object_type != DEVICE and ref.property == OBJECT_NAME and not ref.error \
                and isinstance(ref.value, str) and ref.value.strip():
            objects.append(_object(ref.object_type, ref.instance, ref.value.strip()))
            continue
        if ref.object_type != DEVICE or ref.error or not ref.values:
            continue
        key = IDENTITY_PROPERTIES.get(ref.property)
        v = ref.value
        if key is None or v is None or (key != "vendor_id" and not isinstance(v, str)):
            continue
        if isinstance(v, str):
            v = v.strip()
            if not v:
                continue
        data["device_instance"] = ref.instance
        data[key] = v
        if key == "model":
            data.setdefault("product", v)
    if objects:
        data["objects"] = objects
    if not data:
        return []
    return [pkt.observe("identity", NAME, subject="src", **_routed(msg, data))]


SPEC = ProtocolSpec(
    name=NAME, title="BACnet/IP", layer="industrial",
    decode=decode, signature=signature, prime=prime,
    # polling datagrams keyed without their invoke id; flows waiting on a password's reply or
    # joining segments are decoded (bacnet/routine.py)
    routine=(Routine(bacnet_routine, 64, transport=17), Routine(bacnet_routine, 1500, transport=17)),
    hold=Hold(hold_rows, 64, holds),
    # 0xBAC0-0xBACF, the ports BACnet/IP networks use
    udp_ports=tuple(range(47808, 47824)),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="plc",
    observes=("credential", "error", "identity", "operation", "service"),
)
