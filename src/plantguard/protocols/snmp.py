"""SNMP v1 / v2c / v3 (UDP 161 agents, 162 trap receivers).

What a defender learns: community strings in clear (v1/v2c), USM user names (v3), which
manager reads or writes (get/getnext/getbulk vs set) which agent, and the agent's own
description (sysDescr), vendor (sysObjectID enterprise number), name (sysName, also a
hostname), location (sysLocation) and contact (sysContact), read from GetResponse varbinds only
(a set request's values are what a manager wants, not what the agent is).

parse_message() is the pure wire decode (also used by tests); decode() turns it into
Observations. Malformed BER never escapes parse_message() as anything but BerError, and
decode() keeps what it could read before the damage."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from plantguard.model import Observation, Packet
from plantguard.protocols._ber import (
    BerError,
    children,
    expect,
    read_tlv,
    to_int,
    to_oid,
    to_uint,
)
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols._sysdescr import parse_description
from plantguard.protocols.base import once

NAME = "snmp"

MAX_VARBINDS = 64
VERSION_NAMES = {0: "snmpv1", 1: "snmpv2c", 3: "snmpv3"}
PDU_NAMES = {0xA0: "get", 0xA1: "getnext", 0xA2: "response", 0xA3: "set", 0xA4: "trap",
             0xA5: "getbulk", 0xA6: "inform", 0xA7: "trap2", 0xA8: "report"}
REQUESTS = {0xA0: "read", 0xA1: "read", 0xA5: "read", 0xA3: "config"}
ERROR_NAMES = ("noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess",
               "wrongType", "wrongLength", "wrongEncoding", "wrongValue", "noCreation",
               "inconsistentValue", "resourceUnavailable", "commitFailed", "undoFailed",
               "authorizationError", "notWritable", "inconsistentName")
SYS_DESCR, SYS_OBJECT_ID, SYS_NAME = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.5.0"
SYS_CONTACT, SYS_LOCATION = "1.3.6.1.2.1.1.4.0", "1.3.6.1.2.1.1.6.0"
SYS_TEXT = {SYS_NAME: "name", SYS_LOCATION: "location", SYS_CONTACT: "contact"}   # -> identity key
ENTERPRISES = "1.3.6.1.4.1."
UNSIGNED_TAGS = (0x41, 0x42, 0x43, 0x46, 0x47)  # Counter32, Gauge32, TimeTicks, Counter64, UInt32


@dataclass
class SnmpMessage:
    version: int
    community: bytes | None = None
    pdu_type: int | None = None          # context tag 0xA0..0xA8; None when encrypted (v3)
    request_id: int | None = None
    error_status: int = 0
    error_index: int = 0
    non_repeaters: int | None = None     # getbulk only
    max_repetitions: int | None = None
    varbinds: list = field(default_factory=list)   # (oid, tag, value)
    enterprise: str | None = None        # v1 trap fields
    agent_addr: str | None = None
    generic_trap: int | None = None
    specific_trap: int | None = None
    time_stamp: int | None = None
    msg_id: int | None = None            # v3 fields
    max_size: int | None = None
    flags: int = 0
    security_model: int | None = None
    engine_id: bytes | None = None
    engine_boots: int | None = None
    engine_time: int | None = None
    user: bytes | None = None
    encrypted: bool = False
    context_engine_id: bytes | None = None
    context_name: bytes | None = None
    malformed: bool = False              # something after the header could not be read

    @property
    def pdu_name(self) -> str | None:
        return PDU_NAMES.get(self.pdu_type) if self.pdu_type is not None else None


def signature(payload: bytes) -> bool:
    try:
        tag, s, e = read_tlv(payload, 0)
        if tag != 0x30:
            return False
        vs, ve = expect(payload, s, e, 0x02)
        version = to_int(payload[vs:ve])
        nxt, _, _ = read_tlv(payload, ve, e)
    except BerError:
        return False
    return (version in (0, 1) and nxt == 0x04) or (version == 3 and nxt == 0x30)


def decode_value(tag: int, raw: bytes):
    if tag == 0x02:
        return to_int(raw)
    if tag == 0x06:
        return to_oid(raw)
    if tag in UNSIGNED_TAGS:
        return to_uint(raw) if raw else 0
    if tag == 0x40 and len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    if tag in (0x05, 0x80, 0x81, 0x82):
        return None
    return bytes(raw)


def parse_message(payload: bytes) -> SnmpMessage:
    """The SNMP message in a UDP payload. Raises BerError when even the header is unreadable;
    damage further in sets `malformed` and keeps what was read."""
    buf = bytes(payload)
    _, s, e = read_tlv(buf, 0)
    vs, ve = expect(buf, s, e, 0x02)
    version = to_int(buf[vs:ve])
    if version in (0, 1):
        cs, ce = expect(buf, ve, e, 0x04)
        msg = SnmpMessage(version, community=buf[cs:ce])
        _parse_pdu(buf, ce, e, msg)
        return msg
    if version == 3:
        msg = SnmpMessage(version)
        _parse_v3(buf, ve, e, msg)
        return msg
    raise BerError(f"unknown SNMP version {version}")


def _parse_pdu(buf: bytes, off: int, end: int, msg: SnmpMessage) -> None:
    tag, s, e = read_tlv(buf, off, end)
    if tag not in PDU_NAMES:
        raise BerError(f"unknown PDU 0x{tag:02x}")
    msg.pdu_type = tag
    try:
        fields = children(buf, s, e, limit=8)
        if tag == 0xA4:
            _, a, b = next(fields)
            msg.enterprise = to_oid(buf[a:b])
            t, a, b = next(fields)
            msg.agent_addr = decode_value(t, buf[a:b]) if t == 0x40 else None
            _, a, b = next(fields)
            msg.generic_trap = to_int(buf[a:b])
            _, a, b = next(fields)
            msg.specific_trap = to_int(buf[a:b])
            _, a, b = next(fields)
            msg.time_stamp = to_uint(buf[a:b])
        else:
            _, a, b = next(fields)
            msg.request_id = to_int(buf[a:b])
            _, a, b = next(fields)
            x = to_int(buf[a:b])
            _, a, b = next(fields)
            y = to_int(buf[a:b])
            if tag == 0xA5:
                msg.non_repeaters, msg.max_repetitions = x, y
            else:
                msg.error_status, msg.error_index = x, y
        t, vbs, vbe = next(fields)
        if t != 0x30:
            raise BerError("varbind list is not a sequence")
        for vt, a, b in children(buf, vbs, vbe, limit=MAX_VARBINDS):
            if vt != 0x30:
                raise BerError("varbind is not a sequence")
            os_, oe = expect(buf, a, b, 0x06)
            oid = to_oid(buf[os_:oe])
            t2, xs, xe = read_tlv(buf, oe, b)
            msg.varbinds.append((oid, t2, decode_value(t2, buf[xs:xe])))
    except (BerError, StopIteration, ValueError):
        msg.malformed = True


def _parse_v3(buf: bytes, off: int, end: int, msg: SnmpMessage) -> None:
    gs, ge = expect(buf, off, end, 0x30)                     # msgGlobalData
    g = children(buf, gs, ge, limit=4)
    _, a, b = next(g)
    msg.msg_id = to_int(buf[a:b])
    _, a, b = next(g)
    msg.max_size = to_int(buf[a:b])
    _, a, b = next(g)
    msg.flags = buf[a] if b > a else 0
    _, a, b = next(g)
    msg.security_model = to_int(buf[a:b])
    ss, se = expect(buf, ge, end, 0x04)                     # msgSecurityParameters
    try:
        us, ue = expect(buf, ss, se, 0x30)                  # UsmSecurityParameters
        u = children(buf, us, ue, limit=6)
        _, a, b = next(u)
        msg.engine_id = buf[a:b]
        _, a, b = next(u)
        msg.engine_boots = to_uint(buf[a:b]) if b > a else 0   # 0..2^31-1; agents often mis-sign it
        _, a, b = next(u)
        msg.engine_time = to_uint(buf[a:b]) if b > a else 0
        _, a, b = next(u)
        msg.user = buf[a:b]
    except (BerError, StopIteration):
        msg.malformed = True
    try:
        t, ds, de = read_tlv(buf, se, end)                  # msgData
        if t == 0x04:
            msg.encrypted = True
            return
        if t != 0x30:
            raise BerError("bad scoped PDU")
        cs, ce = expect(buf, ds, de, 0x04)
        msg.context_engine_id = buf[cs:ce]
        ns, ne = expect(buf, ce, de, 0x04)
        msg.context_name = buf[ns:ne]
        _parse_pdu(buf, ne, de, msg)
    except BerError:
        msg.malformed = True


def enterprise_number(oid: str | None) -> int | None:
    """The IANA enterprise number in a 1.3.6.1.4.1.<n>... object identifier."""
    if oid and oid.startswith(ENTERPRISES):
        head = oid[len(ENTERPRISES):].split(".", 1)[0]
        if head.isdigit():
            return int(head)
    return None


def engine_enterprise(engine_id: bytes | None) -> int | None:
    """RFC 3411 engine IDs start with the enterprise number (top bit set in the new format)."""
    if engine_id and len(engine_id) >= 5:
        return int.from_bytes(engine_id[:4], "big") & 0x7FFFFFFF
    return None


def _text(b) -> str:
    return bytes(b).decode("latin-1") if isinstance(b, (bytes, bytearray)) else str(b)


def decode(pkt: Packet) -> list[Observation]:
    try:
        msg = parse_message(pkt.payload)
    except BerError:
        return []
    out: list[Observation] = []
    vname = VERSION_NAMES.get(msg.version, str(msg.version))
    pdu = msg.pdu_type
    is_request = pdu in REQUESTS or pdu in (0xA4, 0xA6, 0xA7) or (
        msg.encrypted and bool(msg.flags & 0x04))

    # the secret: a community in clear (v1/v2c) or a USM user name (v3)
    if msg.version in (0, 1) and is_request and once(pkt, ("cred", msg.community)):
        out.append(pkt.observe("credential", NAME, user=None, password=_text(msg.community),
                               secret_type="community", cleartext=True, result=None,
                               version=vname))
    if msg.version == 3 and is_request and msg.user and once(pkt, ("usm", msg.user)):
        out.append(pkt.observe("credential", NAME, user=_text(msg.user), password=None,
                               secret_type="usm", cleartext=False, result=None, version=vname,
                               auth=bool(msg.flags & 1), priv=bool(msg.flags & 2)))
    if pdu in REQUESTS:
        detail = None
        if pdu == 0xA3:  # a change: say what is being set
            detail = ",".join(oid for oid, _, _ in msg.varbinds[:8])
        out.append(pkt.observe("operation", NAME, category=REQUESTS[pdu], code=pdu & 0x1F,
                               name=PDU_NAMES[pdu], detail=detail))
    agent_side = "dst" if is_request and pdu not in (0xA4, 0xA7) else "src"
    if msg.version == 3 and msg.engine_id and once(pkt, ("engine", agent_side, msg.engine_id)):
        ident = {"snmp_engine_id": msg.engine_id.hex()}
        ent = engine_enterprise(msg.engine_id)
        if ent is not None:
            ident["enterprise"] = ent
        out.append(pkt.observe("identity", NAME, subject=agent_side, **ident))
    if pdu in (0xA2, 0xA8) or (msg.encrypted and not is_request):
        if once(pkt, ("service", vname)):
            out.append(pkt.observe("service", NAME, subject="src", name=NAME, version=vname))
    if pdu == 0xA2:
        if msg.error_status:
            code = msg.error_status
            name = ERROR_NAMES[code] if 0 <= code < len(ERROR_NAMES) else str(code)
            out.append(pkt.observe("error", NAME, subject="src", code=code, name=name))
        else:   # an error response echoes the request's varbinds: not the agent's values
            out.extend(_agent_identity(pkt, msg))
    return out


def _agent_identity(pkt: Packet, msg: SnmpMessage) -> list[Observation]:
    out = []
    ident: dict = {}
    for oid, tag, value in msg.varbinds:
        if oid == SYS_DESCR and tag == 0x04 and value:
            text = _text(value).strip()
            ident["description"] = text[:512]
            for k, v in parse_description(text).items():
                ident.setdefault(k, v)
        elif oid == SYS_OBJECT_ID and tag == 0x06 and value:
            ident["sys_object_id"] = value
            ent = enterprise_number(value)
            if ent is not None:
                ident["enterprise"] = ent
        elif oid in SYS_TEXT and tag == 0x04 and value:
            text = " ".join(_text(value).split())[:255]
            if not text:
                continue
            ident[SYS_TEXT[oid]] = text
            if oid == SYS_NAME and once(pkt, ("name", text)):
                out.append(pkt.observe("hostname", NAME, subject="src", name=text, source="snmp"))
    if ident and once(pkt, ("ident", tuple(sorted(ident.items())))):
        out.append(pkt.observe("identity", NAME, subject="src", **ident))
    return out


SPEC = ProtocolSpec(
    name=NAME, title="SNMP v1/v2c/v3", layer="it",
    decode=decode, signature=signature,
    udp_ports=(161, 162),
    observes=("credential", "error", "hostname", "identity", "operation", "service"),
)
