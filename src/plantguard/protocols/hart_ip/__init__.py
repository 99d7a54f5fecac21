"""HART-IP (UDP and TCP 5094): who reads, writes, configures or resets which HART field
instrument through which HART-IP gateway or multiplexer.

Observations: service (once per flow, the HART-IP server); operation per HART command a host
sends (in a token-passing PDU or each command of a direct PDU; category from the command
number: reads, writes, configuration such as tag, range and damping writes, control such as
device reset and fixed current mode) and per session initiate / close (category other: a session, no credentials) and audit log read; error
per reply whose response code is an error (warnings such as 8 are not), per communication error
and per HART-IP Error / NAK message or failed session initiate; identity from Read Unique
Identifier (cmd 0, 11, 21: manufacturer, expanded device type, revisions, device id), Read Tag,
Descriptor, Date (13, packed ASCII) and Read Long Tag (20) replies. An instrument behind the
server is one of the server's modules (route "HART unique address ..."); a reply from the server
itself (a protocol bridge, a gateway or HART-IP device profile) describes the server. HART-IP
version 1 has no authentication of its own.

One module per part: frame (header, HART PDU, direct PDU, packed ASCII), commands (code
tables), routine (array recogniser for process data polling and keep-alives)."""
from __future__ import annotations

import struct

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import tcp_pdus
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.base import cstr, once, printable
from plantguard.protocols.hart_ip.commands import (
    COMM_ERROR,
    COMMANDS,
    DEVICE_PROFILES,
    FLAG_PROTOCOL_BRIDGE,
    HARTIP_ERRORS,
    IDENTIFY,
    MANUFACTURERS,
    READ_LONG_TAG,
    READ_TAG,
    SERVER_PROFILES,
    command_name,
    is_error,
    response_name,
)
from plantguard.protocols.hart_ip.frame import (
    AUDIT_REQUEST,
    ID_AUDIT,
    ID_DIRECT,
    ID_SESSION_CLOSE,
    ID_SESSION_INITIATE,
    ID_TOKEN_PASSING,
    MASTER_TYPES,
    MAX_MESSAGE,
    MESSAGE_IDS,
    MSG_ERROR,
    MSG_NAK,
    MSG_REQUEST,
    SESSION_INITIATE,
    Message,
    Pdu,
    message_len,
    packed_ascii,
    parse_direct,
    parse_message,
    parse_token_passing,
    plausible,
)
from plantguard.protocols.hart_ip.routine import hart_ip_routine

NAME = "hart-ip"
HART_IP_PORT = 5094
MAX_PDUS_PER_SEGMENT = 64
MAX_DEVICES = 64          # unique addresses per flow remembered as the server's own

__all__ = ["COMMANDS", "NAME", "SPEC", "decode", "describe", "identity_from_unique_identifier", "signature"]


def signature(payload: bytes) -> bool:
    """Whole HART-IP messages (version, type, id and byte count all as the specification has
    them): strict enough for any port (a gateway answers UDP session initiates from another)."""
    return plausible(payload)


def decode(pkt: Packet) -> list[Observation]:
    out: list[Observation] = []
    for raw in _messages(pkt):
        msg = parse_message(raw)
        if msg is not None:
            out.extend(_observe(pkt, msg))
    return out


def prime(pkt: Packet) -> None:
    """The flow moved past a replayed packet as decode() moves it: the stream and the service."""
    if _messages(pkt):
        once(pkt, "service")


def _messages(pkt: Packet) -> list[bytes]:
    if pkt.l4 == "tcp":
        return tcp_pdus(pkt, message_len, MAX_MESSAGE, MAX_PDUS_PER_SEGMENT)
    out, off, b = [], 0, pkt.payload
    while off < len(b) and len(out) < MAX_PDUS_PER_SEGMENT:
        n = message_len(b, off)
        if n <= 0:
            break
        out.append(b[off:off + n])
        off += n
    return out


def _observe(pkt: Packet, msg: Message) -> list[Observation]:
    server = "src" if msg.from_server else "dst"
    out = [pkt.observe("service", NAME, subject=server, name=NAME)] if once(pkt, "service") else []
    if msg.msg_type in (MSG_ERROR, MSG_NAK):
        out.append(pkt.observe("error", NAME, subject="src", code=msg.status,
                               name=HARTIP_ERRORS.get(msg.status, f"HART-IP error {msg.status}"),
                               function=msg.msg_id, function_name=MESSAGE_IDS.get(msg.msg_id)))
        return out
    if msg.msg_type == MSG_REQUEST:
        out.extend(_request(pkt, msg))
        return out
    if msg.status and is_error(msg.status):
        out.append(pkt.observe("error", NAME, subject="src", code=msg.status, name=response_name(msg.status),
                               function=msg.msg_id, function_name=MESSAGE_IDS.get(msg.msg_id)))
    if msg.msg_id == ID_TOKEN_PASSING:
        pdu = parse_token_passing(msg.body)
        if pdu is not None and pdu.reply:
            out.extend(_reply(pkt, pdu))
    elif msg.msg_id == ID_DIRECT:
        for pdu in parse_direct(msg.body, True)[2]:
            out.extend(_reply(pkt, pdu))
    return out


def _request(pkt: Packet, msg: Message) -> list[Observation]:
    if msg.msg_id == ID_TOKEN_PASSING:
        pdu = parse_token_passing(msg.body)
        return [] if pdu is None or pdu.reply else [_operation(pkt, pdu)]
    if msg.msg_id == ID_DIRECT:
        return [_operation(pkt, pdu) for pdu in parse_direct(msg.body, False)[2]]
    if msg.msg_id == ID_SESSION_INITIATE:
        detail = ""
        if len(msg.body) >= SESSION_INITIATE.size:
            s = SESSION_INITIATE.unpack_from(msg.body, 0)
            detail = (f"master={MASTER_TYPES.get(s.master_type, s.master_type)} "
                      f"inactivity_timer_ms={s.inactivity_timer}")
        # a session (primary or secondary master, inactivity timer), no credentials: not "auth"
        return [pkt.observe("operation", NAME, subject="dst", category="other", code="session-initiate",
                            name="Session Initiate", detail=detail)]
    if msg.msg_id == ID_SESSION_CLOSE:
        return [pkt.observe("operation", NAME, subject="dst", category="other", code="session-close",
                            name="Session Close", detail="")]
    if msg.msg_id == ID_AUDIT:
        detail = ""
        if len(msg.body) >= AUDIT_REQUEST.size:
            a = AUDIT_REQUEST.unpack_from(msg.body, 0)
            detail = f"start_record={a.start_record} records={a.records}"
        return [pkt.observe("operation", NAME, subject="dst", category="diagnostic", code="read-audit-log",
                            name="Read Audit Log", detail=detail)]
    return []   # keep-alive: no operation


def _operation(pkt: Packet, pdu: Pdu) -> Observation:
    name, category, detail = describe(pdu)
    return pkt.observe("operation", NAME, subject="dst", category=category, code=pdu.command, name=name,
                       detail=detail)


def describe(pdu: Pdu) -> tuple[str, str, str]:
    """(name, category, detail) of a HART command a host sends: the detail names the device it
    addresses (token-passing) and, for the writes that name a value, what they write."""
    entry = COMMANDS.get(pdu.command)
    name, category = entry if entry else (command_name(pdu.command), "other")
    parts = [pdu.address_text()] if pdu.address else []
    if pdu.command == 6 and pdu.data:
        parts.append(f"polling_address={pdu.data[0]}")
    elif pdu.command == 18 and len(pdu.data) >= 6:
        parts.append(f"tag={packed_ascii(pdu.data[:6]).rstrip()}")
    elif pdu.command == 22 and pdu.data:
        parts.append(f"long_tag={_latin1(pdu.data[:32])}")
    elif pdu.command == 40 and len(pdu.data) >= 4:
        parts.append(f"current_ma={struct.unpack_from('>f', pdu.data, 0)[0]:g}")
    if entry is None:
        parts.append(f"{len(pdu.data)} data bytes")
    return name, category, " ".join(p for p in parts if p)


def _reply(pkt: Packet, pdu: Pdu) -> list[Observation]:
    out = []
    rc = pdu.response_code
    if rc is None:
        return out
    if pdu.delimiter is not None and rc & COMM_ERROR:
        out.append(pkt.observe("error", NAME, subject="src", code=rc, name=f"Communication error 0x{rc:02X}",
                               function=pdu.command, function_name=command_name(pdu.command)))
        return out
    if is_error(rc):
        out.append(pkt.observe("error", NAME, subject="src", code=rc, name=response_name(rc),
                               function=pdu.command, function_name=command_name(pdu.command)))
        return out
    ident = _identity(pkt, pdu)
    if ident:
        out.append(pkt.observe("identity", NAME, subject="src", **ident))
    return out


def _identity(pkt: Packet, pdu: Pdu) -> dict:
    if pdu.command in IDENTIFY:
        ident = identity_from_unique_identifier(pdu.data)
        if not ident:
            return {}
        unique = ident.pop("_unique")
        own = ident.pop("_server")
        if own:
            owned = pkt.state.setdefault("hart_server_devices", set())
            if len(owned) < MAX_DEVICES:
                owned.add(unique)
        else:
            ident["route"] = f"HART unique address {unique}"
        return ident
    if pdu.command == READ_TAG and len(pdu.data) >= 21:
        ident = {"hart_tag": _packed_text(pdu.data[:6]), "description": _packed_text(pdu.data[6:18])}
    elif pdu.command == READ_LONG_TAG and pdu.data:
        ident = {"name": _latin1(pdu.data[:32])}
    else:
        return {}
    ident = {k: v for k, v in ident.items() if v}
    # a device asked by its unique address is routed unless a cmd 0 reply made it the server's;
    # a polling address names no device by itself: the reply is taken as the server's own
    if ident and pdu.address:
        unique = _unique_of(pdu.address)
        if unique is not None and unique not in pkt.state.get("hart_server_devices", ()):
            ident["route"] = f"HART unique address {unique}"
    return ident


def _unique_of(address: bytes) -> str | None:
    """The unique address (hex, master and burst bits masked) of a long-frame address; None for
    a polling address, which names no device by itself."""
    if len(address) != 5:
        return None
    return bytes([address[0] & 0x3F]).hex() + address[1:].hex()


def identity_from_unique_identifier(data: bytes) -> dict:
    """Identity from a Read Unique Identifier reply's data (after response code and status):
    254, expanded device type, preambles, HART revision, device revision, software revision,
    hardware revision and signalling, flags, device id, and from HART 6/7 on the manufacturer
    and private label codes (bytes 17-20) and the device profile (21). {} when not such a reply."""
    if len(data) < 12 or data[0] != 254:
        return {}
    hart_rev = data[4]
    edt = data[1] << 8 | data[2]
    ident: dict = {"device_type_id": edt, "hart_revision": hart_rev, "device_revision": data[5],
                   "firmware": str(data[6]), "hardware": str(data[7] >> 3),
                   "device_id": data[9] << 16 | data[10] << 8 | data[11]}
    if len(data) >= 19 and hart_rev >= 6:
        maker = data[17] << 8 | data[18]
    else:
        maker = data[1]          # HART 5: byte 1 is the manufacturer, byte 2 the device type
        ident["device_type_id"] = data[2]
    ident["vendor_id"] = maker
    if maker in MANUFACTURERS:
        ident["vendor"] = MANUFACTURERS[maker]
    profile = data[21] if len(data) >= 22 and hart_rev >= 7 else None
    if profile is not None and profile in DEVICE_PROFILES:
        ident["device_type"] = DEVICE_PROFILES[profile]
    ident["_server"] = bool(data[8] & FLAG_PROTOCOL_BRIDGE) or profile in SERVER_PROFILES
    ident["_unique"] = f"{(edt & 0x3FFF) << 24 | ident['device_id']:010x}"
    return ident


def _packed_text(b: bytes) -> str:
    """Packed ASCII as a name: padding spaces stripped; all '@' (zero bytes) is no name."""
    text = packed_ascii(b).rstrip()
    return "" if not text.strip("@") else text


def _latin1(b: bytes) -> str:
    return printable(cstr(bytes(b)).encode("utf-8"))


SPEC = ProtocolSpec(
    name=NAME, title="HART-IP", layer="industrial",
    decode=decode, signature=signature, prime=prime,
    tcp_ports=(HART_IP_PORT,), udp_ports=(HART_IP_PORT,),
    # whole messages with version, type, id and byte count checked: a HART-IP gateway answers a
    # UDP session initiate on 5094 from another port (5095) and the session continues there
    any_port=True,
    routine=(Routine(hart_ip_routine, 64),),
    traits=frozenset({"industrial", "unauthenticated-control"}),
    server_role="gateway",
    observes=("error", "identity", "operation", "service"),
)
