"""EtherNet/IP encapsulation (TCP/UDP 44818) and the CIP messages it carries, plus implicit I/O
(UDP 2222).

Observations: service (once per flow); identity from ListIdentity replies and from CIP Identity
object replies (Get_Attributes_All / Get_Attribute_Single / Get_Attribute_List on class 1,
also when routed through a backplane by Unconnected Send); operation per discovery command
and per CIP request (Multiple Service Packet and Unconnected Send are unwrapped, so each inner
service counts once); error for a failed encapsulation command or CIP reply; one "read"
operation per implicit I/O packet.
"""
from __future__ import annotations

import csv
import struct
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import BAD, NEED_MORE, tcp_pdus
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.base import printable
from plantguard.util.arrays import col, hash_keys, le16, span_hash

NAME = "enip"

ENCAP_PORT, IO_PORT = 44818, 2222
HEADER = struct.Struct("<HHII8sI")   # command, length, session, status, sender context, options
MAX_PDUS_PER_SEGMENT = 128
MAX_ENCAP = 24 + 0xFFFF
MAX_ITEMS = 16          # CPF items read from one packet
MAX_EMBEDDED = 64       # services read from one Multiple Service Packet
MAX_DEPTH = 3           # nesting of Unconnected Send / Multiple Service Packet
MAX_PENDING = 32        # requests remembered per flow to understand their replies

# encapsulation command: (name, operation category or None when the command carries CIP)
COMMANDS = {
    0x0000: ("NOP", None),
    0x0004: ("ListServices", "diagnostic"),
    0x0063: ("ListIdentity", "diagnostic"),
    0x0064: ("ListInterfaces", "diagnostic"),
    0x0065: ("RegisterSession", "other"),
    0x0066: ("UnRegisterSession", "other"),
    0x006F: ("SendRRData", None),
    0x0070: ("SendUnitData", None),
    0x0072: ("IndicateStatus", "other"),
    0x0073: ("Cancel", "other"),
    0x00C8: ("StartDTLS", "other"),
}
ENCAP_STATUS = {0x0000: "Success", 0x0001: "Invalid or unsupported command", 0x0002: "Insufficient memory",
                0x0003: "Incorrect data", 0x0064: "Invalid session handle", 0x0065: "Invalid length",
                0x0069: "Unsupported protocol version", 0x006A: "Encapsulated CIP service not allowed on this port"}

ITEM_NULL, ITEM_IDENTITY, ITEM_CONNECTED_ADDRESS = 0x0000, 0x000C, 0x00A1
ITEM_CONNECTED_DATA, ITEM_UNCONNECTED_DATA, ITEM_SEQUENCED_ADDRESS = 0x00B1, 0x00B2, 0x8002

# CIP services common to all classes: (name, category)
SERVICES = {
    0x01: ("Get Attributes All", "read"),
    0x02: ("Set Attributes All", "write"),
    0x03: ("Get Attribute List", "read"),
    0x04: ("Set Attribute List", "write"),
    0x05: ("Reset", "control"),
    0x06: ("Start", "control"),
    0x07: ("Stop", "control"),
    0x08: ("Create", "write"),
    0x09: ("Delete", "write"),
    0x0A: ("Multiple Service Packet", "other"),
    0x0D: ("Apply Attributes", "config"),
    0x0E: ("Get Attribute Single", "read"),
    0x10: ("Set Attribute Single", "write"),
    0x11: ("Find Next Object Instance", "read"),
    0x15: ("Restore", "config"),
    0x16: ("Save", "config"),
    0x17: ("No Operation", "other"),
    0x18: ("Get Member", "read"),
    0x19: ("Set Member", "write"),
    0x1A: ("Insert Member", "write"),
    0x1B: ("Remove Member", "write"),
    0x1C: ("Group Sync", "other"),
}
SET_SERVICES = frozenset({0x02, 0x04, 0x10, 0x19})
MULTIPLE_SERVICE_PACKET, UNCONNECTED_SEND = 0x0A, 0x52

CLASS_IDENTITY, CLASS_CONNECTION_MANAGER, CLASS_FILE, CLASS_PCCC = 0x01, 0x06, 0x37, 0x67
CLASS_SYMBOL, CLASS_TEMPLATE, CLASS_CONTROLLER, CLASS_NVS = 0x6B, 0x6C, 0x8E, 0xA1
# Objects whose attributes configure the device or its network: a Set there is "config".
CONFIG_CLASSES = {0x01: "identity", 0x43: "time synchronisation", 0x47: "device level ring",
                  0x48: "QoS", 0x8B: "wall-clock time", 0xF4: "port", 0xF5: "TCP/IP interface",
                  0xF6: "Ethernet link"}

# Object-specific services by class: class -> {service: (name, category, reason)}
CLASS_SERVICES: dict[int, dict[int, tuple[str, str, str]]] = {
    CLASS_CONNECTION_MANAGER: {
        0x4E: ("Forward Close", "other", "connection"),
        0x52: ("Unconnected Send", "other", "routing"),
        0x54: ("Forward Open", "other", "connection"),
        0x56: ("Get Connection Data", "read", "connection"),
        0x57: ("Search Connection Data", "read", "connection"),
        0x5A: ("Get Connection Owner", "read", "connection"),
        0x5B: ("Large Forward Open", "other", "connection"),
    },
    CLASS_FILE: {
        0x4B: ("Initiate Upload", "file", "file object"),
        0x4C: ("Initiate Download", "file", "file object"),
        0x4D: ("Initiate Partial Read", "file", "file object"),
        0x4E: ("Initiate Partial Write", "file", "file object"),
        0x4F: ("Upload Transfer", "file", "file object"),
        0x50: ("Download Transfer", "file", "file object"),
        0x51: ("Clear File", "file", "file object"),
    },
    CLASS_PCCC: {0x4B: ("Execute PCCC", "other", "PCCC")},
    CLASS_NVS: {
        0x4B: ("Update Begin", "firmware", "non-volatile storage object: flash update"),
        0x4D: ("Update Transfer", "firmware", "non-volatile storage object: flash update"),
        0x51: ("Update End", "firmware", "non-volatile storage object: flash update"),
    },
    CLASS_CONTROLLER: {
        0x4B: ("Controller Service 0x4B", "control",
               "vendor service on the controller object (controller lock / mode change)"),
        0x4C: ("Controller Service 0x4C", "control",
               "vendor service on the controller object (controller lock / mode change)"),
    },
}
# Logix tag services, used with a symbolic path or the Symbol / Template objects.
TAG_SERVICES = {
    0x4C: ("Read Tag", "read"), 0x4D: ("Write Tag", "write"), 0x4E: ("Read Modify Write Tag", "write"),
    0x52: ("Read Tag Fragmented", "read"), 0x53: ("Write Tag Fragmented", "write"),
    0x55: ("Get Instance Attribute List", "read"),
}
# PCCC (command, function) inside Execute PCCC: (name, category)
PCCC = {
    (0x06, 0x03): ("Diagnostic Status", "diagnostic"),
    (0x0F, 0x11): ("Get Edit Resource", "program"),
    (0x0F, 0x12): ("Return Edit Resource", "program"),
    (0x0F, 0x80): ("Change Mode", "control"),
    (0x0F, 0x67): ("Typed Write", "write"),
    (0x0F, 0x68): ("Typed Read", "read"),
    (0x0F, 0xA1): ("Protected Typed Logical Read (2 address fields)", "read"),
    (0x0F, 0xA2): ("Protected Typed Logical Read (3 address fields)", "read"),
    (0x0F, 0xA9): ("Protected Typed Logical Write (2 address fields)", "write"),
    (0x0F, 0xAA): ("Protected Typed Logical Write (3 address fields)", "write"),
    (0x0F, 0xAB): ("Protected Typed Logical Masked Write", "write"),
}
# Identity object attributes: id -> identity key
IDENTITY_ATTRS = {1: "vendor_id", 2: "device_type_id", 3: "product_code", 4: "revision", 5: "status",
                  6: "serial", 7: "product", 8: "state"}
_IDENTITY_SIZES = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 4, 8: 1, 9: 2, 10: 1}
IDENTIFYING_KEYS = frozenset({"vendor_id", "device_type_id", "product_code", "firmware", "serial", "product"})
VENDOR_CLASSES = range(0x64, 0xC8)   # CIP's vendor-specific object class range


# --- data tables ---------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _table(filename: str) -> dict[int, str]:
    text = resources.files("plantguard.data").joinpath(filename).read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {int(r["id"]): r["name"] for r in rows}


def vendor_name(vendor_id: int) -> str | None:
    return _table("cip_vendors.csv").get(vendor_id)


def device_type_name(type_id: int) -> str | None:
    return _table("cip_device_types.csv").get(type_id)


def status_name(status: int) -> str:
    return _table("cip_status.csv").get(status, f"Status 0x{status:02x}")


def class_name(class_id: int | None) -> str | None:
    return None if class_id is None else _table("cip_classes.csv").get(class_id)


# --- records -------------------------------------------------------------------------------

@dataclass(slots=True)
class Encap:
    """One encapsulation PDU."""
    command: int
    length: int
    session: int
    status: int
    context: bytes
    options: int
    data: bytes
    request: bool


@dataclass(slots=True)
class CipMessage:
    """One CIP request or reply; `parent` is the wrapper service (0x0A or 0x52) it came in."""
    service: int                 # without the reply bit
    response: bool
    status: int | None = None
    ext_status: int | None = None
    class_id: int | None = None
    instance_id: int | None = None
    attribute_id: int | None = None
    classes: tuple = ()          # every class segment of the path (some paths name two objects)
    symbol: str | None = None    # ANSI extended symbolic segment (a tag name)
    data: bytes = b""
    seq: int | None = None       # connected-messaging sequence count
    parent: int | None = None
    route: str | None = None     # Unconnected Send route path, as text
    request_of: "CipMessage | None" = None  # for replies: the request they answer, when known


@dataclass(slots=True)
class IOPacket:
    connection_id: int
    sequence: int
    data: bytes


# --- framing and signature -----------------------------------------------------------------

def frame_len(buf: bytes, off: int) -> int:
    if len(buf) - off < 24:
        return NEED_MORE
    command, length = struct.unpack_from("<HH", buf, off)
    if command not in COMMANDS:
        return BAD
    return 24 + length


def signature(payload: bytes) -> bool:
    """An encapsulation header with a known command and options 0 (a partial last PDU is
    fine), or an implicit I/O packet (sequenced address item + connected data item)."""
    return _encap_signature(payload) or parse_io(payload) is not None


def _encap_signature(payload: bytes) -> bool:
    off, n, seen = 0, len(payload), 0
    while off < n and seen < 16:
        if n - off < 24:
            return seen > 0
        command, length, _session, status, _ctx, options = HEADER.unpack_from(payload, off)
        if command not in COMMANDS or options != 0 or status > 0xFFFF:
            return False
        if command in (0x0063, 0x0004, 0x0064) and length == 0 and n - off > 24 and seen == 0:
            return False    # discovery requests carry nothing after the header
        off += 24 + length
        seen += 1
    return seen > 0


# --- decode ----------------------------------------------------------------------------------

def decode(pkt: Packet) -> list[Observation]:
    if pkt.l4 == "udp" and IO_PORT in (pkt.sport, pkt.dport) and ENCAP_PORT not in (pkt.sport, pkt.dport):
        io = parse_io(pkt.payload)
        return _observe_io(pkt, io) if io is not None else []
    out: list[Observation] = []
    request = is_request(pkt)
    for raw in tcp_pdus(pkt, frame_len, MAX_ENCAP, MAX_PDUS_PER_SEGMENT):
        command, length, session, status, ctx, options = HEADER.unpack_from(raw, 0)
        out.extend(_observe(pkt, Encap(command, length, session, status, ctx, options, bytes(raw[24:]), request)))
    return out


def is_request(pkt: Packet) -> bool:
    """Towards port 44818 (the port decides over the engine's guess when only one side has it)."""
    if (pkt.dport == ENCAP_PORT) != (pkt.sport == ENCAP_PORT):
        return pkt.dport == ENCAP_PORT
    return pkt.from_client


def _observe(pkt: Packet, enc: Encap) -> list[Observation]:
    out: list[Observation] = []
    server = "dst" if enc.request else "src"
    if not pkt.state.get("service"):
        pkt.state["service"] = True
        out.append(pkt.observe("service", NAME, subject=server, name=NAME))
    name, category = COMMANDS.get(enc.command, (f"Command 0x{enc.command:04x}", "other"))
    if enc.request and category is not None:
        out.append(pkt.observe("operation", NAME, subject="dst", category=category, code=enc.command,
                               name=name, detail=f"encapsulation command {name}"))
    if not enc.request and enc.status:
        out.append(pkt.observe("error", NAME, subject="src", code=enc.status,
                               name=ENCAP_STATUS.get(enc.status, f"Encapsulation status 0x{enc.status:x}"),
                               command=name))
    if enc.command == 0x0063 and not enc.request:
        for ident in parse_list_identity(enc.data):
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
    elif enc.command in (0x006F, 0x0070):
        pending = pkt.state.get("pending")
        if pending is None:
            pending = pkt.state["pending"] = OrderedDict()
        for msg in cip_messages(enc, pending, copy=False):
            out.extend(_observe_cip(pkt, msg))
            if not msg.response:
                msg.data = b""     # kept in pending for the reply, which needs ids, not data
    return out


def _observe_cip(pkt: Packet, msg: CipMessage) -> list[Observation]:
    if not msg.response:
        if msg.service in (MULTIPLE_SERVICE_PACKET, UNCONNECTED_SEND) and _is_wrapper(msg):
            return []   # the services inside are the operations
        code, name, category, detail = describe_request(msg)
        return [pkt.observe("operation", NAME, subject="dst", category=category, code=code, name=name,
                            detail=detail)]
    out: list[Observation] = []
    if msg.status not in (None, 0x00, 0x06):   # 0x06 (partial transfer) is a normal fragment
        req = msg.request_of
        out.append(pkt.observe("error", NAME, subject="src", code=msg.status, name=status_name(msg.status),
                               service=msg.service, service_name=service_name(msg.service, req),
                               ext_status=msg.ext_status))
    req = msg.request_of
    if msg.status == 0 and req is not None and req.class_id == CLASS_IDENTITY:
        ident = identity_from_reply(req, msg.data)
        if IDENTIFYING_KEYS.intersection(ident):     # a status word alone identifies nothing
            if req.route:
                ident["route"] = req.route
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
    return out


def _observe_io(pkt: Packet, io: IOPacket) -> list[Observation]:
    out: list[Observation] = []
    if not pkt.state.get("service"):
        pkt.state["service"] = True
        out.append(pkt.observe("service", NAME, subject="dst", name=NAME, transport="implicit I/O"))
    out.append(pkt.observe("operation", NAME, subject="dst", category="read", code=ITEM_CONNECTED_DATA,
                           name="Implicit I/O", detail=f"connection 0x{io.connection_id:08x}"))
    return out


def _is_wrapper(msg: CipMessage) -> bool:
    return msg.service == MULTIPLE_SERVICE_PACKET or msg.class_id == CLASS_CONNECTION_MANAGER


# --- encapsulation payloads -----------------------------------------------------------------

def cpf_items(data: bytes, off: int = 0) -> list[tuple[int, bytes]]:
    """Common Packet Format items starting at `off` (item count first)."""
    if len(data) < off + 2:
        return []
    count = struct.unpack_from("<H", data, off)[0]
    off += 2
    items = []
    for _ in range(min(count, MAX_ITEMS)):
        if off + 4 > len(data):
            break
        typ, length = struct.unpack_from("<HH", data, off)
        items.append((typ, bytes(data[off + 4:off + 4 + length])))
        off += 4 + length
    return items


def parse_io(payload: bytes) -> IOPacket | None:
    """An implicit I/O packet: sequenced address item, then connected data item, exactly."""
    if len(payload) < 2:
        return None
    count = struct.unpack_from("<H", payload, 0)[0]
    if not 1 <= count <= 4:
        return None
    items, off = [], 2
    for _ in range(count):
        if off + 4 > len(payload):
            return None
        typ, length = struct.unpack_from("<HH", payload, off)
        if off + 4 + length > len(payload):
            return None
        items.append((typ, payload[off + 4:off + 4 + length]))
        off += 4 + length
    if off != len(payload) or items[0][0] != ITEM_SEQUENCED_ADDRESS or len(items[0][1]) != 8:
        return None
    cid, seq = struct.unpack_from("<II", items[0][1], 0)
    data = next((d for t, d in items[1:] if t == ITEM_CONNECTED_DATA), None)
    if data is None:
        return None
    return IOPacket(cid, seq, bytes(data))


def parse_list_identity(data: bytes) -> list[dict]:
    """Identity keys from the CIP Identity items of a ListIdentity reply."""
    out = []
    for typ, item in cpf_items(data):
        if typ != ITEM_IDENTITY or len(item) < 34:
            continue
        version = struct.unpack_from("<H", item, 0)[0]
        port = struct.unpack_from(">H", item, 4)[0]
        ip = ".".join(str(b) for b in item[6:10])
        ident = _identity_core(item[18:])
        if ident is None:
            continue
        ident.update(ip=ip, port=port, encapsulation_version=version)
        out.append(ident)
    return out


def _identity_core(b: bytes) -> dict | None:
    """vendor, type, product code, revision, status, serial, product name [, state]."""
    if len(b) < 15:
        return None
    vendor, dtype, code, major, minor, status, serial = struct.unpack_from("<HHHBBHI", b, 0)
    name_len = b[14]
    ident = _named_identity(vendor, dtype)
    ident.update(product_code=code, firmware=f"{major}.{minor}", status=f"0x{status:04x}",
                 serial=f"0x{serial:08x}")
    name = printable(b[15:15 + name_len])
    if name:
        ident["product"] = name
    if len(b) > 15 + name_len:
        ident["state"] = f"0x{b[15 + name_len]:02x}"
    return ident


def _named_identity(vendor: int, dtype: int) -> dict:
    ident: dict = {"vendor_id": vendor, "device_type_id": dtype}
    vname, tname = vendor_name(vendor), device_type_name(dtype)
    if vname:
        ident["vendor"] = vname
    if tname:
        ident["device_type"] = tname
    return ident


def identity_from_reply(req: CipMessage, data: bytes) -> dict:
    """Identity keys from a successful reply to a read of the Identity object."""
    if req.service == 0x01:
        return _identity_core(data) or {}
    if req.service == 0x0E and req.attribute_id is not None:
        return _identity_attrs([(req.attribute_id, data)])
    if req.service == 0x03:
        return _identity_attrs(_attribute_list_reply(data))
    return {}


def _attribute_list_reply(data: bytes) -> list[tuple[int, bytes]]:
    """(attribute, value bytes) from a Get_Attribute_List reply to the Identity object; stops at
    an attribute whose size is not known (its value cannot be skipped)."""
    if len(data) < 2:
        return []
    count = struct.unpack_from("<H", data, 0)[0]
    off, out = 2, []
    for _ in range(min(count, 64)):
        if off + 4 > len(data):
            break
        attr, status = struct.unpack_from("<HH", data, off)
        off += 4
        if status != 0:
            continue
        if attr == 7:
            size = 1 + data[off] if off < len(data) else 0
        else:
            size = _IDENTITY_SIZES.get(attr, -1)
        if size <= 0 or off + size > len(data):
            break
        out.append((attr, data[off:off + size]))
        off += size
    return out


def _identity_attrs(pairs: list[tuple[int, bytes]]) -> dict:
    raw: dict = {}
    for attr, value in pairs:
        key = IDENTITY_ATTRS.get(attr)
        if key is None:
            continue
        if attr in (1, 2, 3) and len(value) >= 2:
            raw[key] = struct.unpack_from("<H", value)[0]
        elif attr == 4 and len(value) >= 2:
            raw["firmware"] = f"{value[0]}.{value[1]}"
        elif attr == 5 and len(value) >= 2:
            raw["status"] = f"0x{struct.unpack_from('<H', value)[0]:04x}"
        elif attr == 6 and len(value) >= 4:
            raw["serial"] = f"0x{struct.unpack_from('<I', value)[0]:08x}"
        elif attr == 7 and value:
            name = printable(value[1:1 + value[0]])
            if name:
                raw["product"] = name
        elif attr == 8 and value:
            raw["state"] = f"0x{value[0]:02x}"
    if "vendor_id" in raw and vendor_name(raw["vendor_id"]):
        raw["vendor"] = vendor_name(raw["vendor_id"])
    if "device_type_id" in raw and device_type_name(raw["device_type_id"]):
        raw["device_type"] = device_type_name(raw["device_type_id"])
    return raw


# --- CIP -------------------------------------------------------------------------------------

def cip_messages(enc: Encap, pending: OrderedDict | None = None, copy: bool = True) -> list[CipMessage]:
    """Every CIP message of a SendRRData / SendUnitData PDU, wrappers first then what they
    carry; replies are paired with their requests through `pending` (per-flow state).
    copy=False keeps the request messages themselves in `pending` (the caller drops their
    data once read: _observe does, saving a copy per message)."""
    if len(enc.data) < 6:
        return []
    out: list[CipMessage] = []
    for typ, item in cpf_items(enc.data, 6):
        if typ == ITEM_UNCONNECTED_DATA:
            key = ("u", enc.context)
            seq, body = None, item
        elif typ == ITEM_CONNECTED_DATA and len(item) >= 2:
            seq = struct.unpack_from("<H", item, 0)[0]
            key, body = ("c", seq), item[2:]
        else:
            continue
        msgs = parse_message(body, seq=seq)
        if not msgs:
            continue
        top = msgs[0]
        if pending is not None:
            if not top.response:
                # the reply needs ids, not data
                pending[key] = [_without_data(m) for m in msgs] if copy else list(msgs)
                while len(pending) > MAX_PENDING:
                    pending.popitem(last=False)
            else:
                _pair(msgs, pending.pop(key, None))
        out.extend(msgs)
    return out


def _without_data(m: CipMessage) -> CipMessage:
    """A copy of a request without its data (built directly: dataclasses.replace is slow)."""
    return CipMessage(m.service, m.response, m.status, m.ext_status, m.class_id, m.instance_id,
                      m.attribute_id, m.classes, m.symbol, b"", m.seq, m.parent, m.route, m.request_of)


def _pair(replies: list[CipMessage], requests: list[CipMessage] | None) -> None:
    """Attach to each reply the request it answers (wrappers to wrappers, inner to inner)."""
    if not requests:
        return
    req_top = requests[0]
    inner_reqs = [m for m in requests[1:] if m.parent is not None]
    if req_top.service == UNCONNECTED_SEND and _is_wrapper(req_top):
        # the routed device answers with the inner service's reply directly
        inner = next((m for m in inner_reqs if m.parent == UNCONNECTED_SEND), None)
        if replies[0].service == (inner.service if inner else -1):
            replies[0].request_of = inner
        else:
            replies[0].request_of = req_top
        rest_replies = replies[1:]
        rest_reqs = [m for m in inner_reqs if m is not inner]
    else:
        replies[0].request_of = req_top
        rest_replies, rest_reqs = replies[1:], inner_reqs
    for rep, req in zip(rest_replies, rest_reqs):
        if rep.service == req.service:
            rep.request_of = req


def parse_message(b: bytes, seq: int | None = None, depth: int = 0, parent: int | None = None,
                  route: str | None = None) -> list[CipMessage]:
    """A CIP message and, for Multiple Service Packet and Unconnected Send, the messages inside
    (flattened, in order)."""
    if len(b) < 2 or depth > MAX_DEPTH:
        return []
    svc = b[0]
    if svc & 0x80:
        if len(b) < 4:
            return []
        ext_words = b[3]
        ext = struct.unpack_from("<H", b, 4)[0] if ext_words and len(b) >= 6 else None
        # positional: keyword construction costs measurably at one message per CIP service
        msg = CipMessage(svc & 0x7F, True, b[2], ext, None, None, None, (), None, bytes(b[4 + 2 * ext_words:]),
                         seq, parent)
        out = [msg]
        if msg.service == MULTIPLE_SERVICE_PACKET and msg.status in (0, 0x1E):
            for part in _msp_parts(msg.data):
                out.extend(parse_message(part, seq, depth + 1, MULTIPLE_SERVICE_PACKET))
        return out
    words = b[1]
    path = b[2:2 + 2 * words]
    if len(path) < 2 * words:
        return []
    class_id, instance_id, attribute_id, symbol, classes = _path_fields(path)
    msg = CipMessage(svc, False, None, None, class_id, instance_id, attribute_id, classes, symbol,
                     bytes(b[2 + 2 * words:]), seq, parent, route)
    out = [msg]
    if svc == MULTIPLE_SERVICE_PACKET:
        for part in _msp_parts(msg.data):
            out.extend(parse_message(part, seq, depth + 1, MULTIPLE_SERVICE_PACKET, route))
    elif svc == UNCONNECTED_SEND and msg.class_id == CLASS_CONNECTION_MANAGER:
        inner, inner_route = _unconnected_send(msg.data)
        if inner:
            out.extend(parse_message(inner, seq, depth + 1, UNCONNECTED_SEND, inner_route))
    return out


def _msp_parts(data: bytes) -> list[bytes]:
    if len(data) < 2:
        return []
    count = struct.unpack_from("<H", data, 0)[0]
    if count == 0 or 2 + 2 * count > len(data):
        return []
    count = min(count, MAX_EMBEDDED)
    offsets = list(struct.unpack_from(f"<{count}H", data, 2))
    parts = []
    for i, start in enumerate(offsets):
        end = offsets[i + 1] if i + 1 < count else len(data)
        if 2 + 2 * count <= start < end <= len(data):
            parts.append(data[start:end])
    return parts


def _unconnected_send(data: bytes) -> tuple[bytes, str | None]:
    """(embedded request, route path text) of an Unconnected Send request."""
    if len(data) < 4:
        return b"", None
    size = struct.unpack_from("<H", data, 2)[0]
    inner = data[4:4 + size]
    off = 4 + size + (size & 1)
    route = None
    if off + 2 <= len(data):
        words = data[off]
        route = _route_text(data[off + 2:off + 2 + 2 * words])
    return bytes(inner), route


def _route_text(path: bytes) -> str | None:
    """Port segments of a route path as text ('port 1, link 0')."""
    parts, off = [], 0
    while off < len(path) and len(parts) < 8:
        seg = path[off]
        if seg & 0xE0:
            break                      # not a port segment
        port = seg & 0x0F
        if seg & 0x10:                 # extended link address
            if off + 2 > len(path):
                break
            size = path[off + 1]
            link = printable(path[off + 2:off + 2 + size])
            off += 2 + size + (size & 1)
        else:
            if off + 2 > len(path):
                break
            link = str(path[off + 1])
            off += 2
        if port == 0x0F:               # 16-bit port number follows
            break
        parts.append(f"port {port}, link {link}")
    return "; ".join(parts) or None


_PATHS: dict[bytes, tuple] = {}   # request path -> what _parse_path found (paths repeat a lot)
_PATHS_MAX = 4096


def _read_path(path: bytes, msg: CipMessage) -> None:
    """Class / instance / attribute ids and a tag name from a padded EPATH."""
    msg.class_id, msg.instance_id, msg.attribute_id, msg.symbol, msg.classes = _path_fields(path)


def _path_fields(path: bytes) -> tuple:
    """(class, instance, attribute, symbol, classes) of a request path, cached by its bytes."""
    path = bytes(path)
    found = _PATHS.get(path)
    if found is None:
        probe = CipMessage(0, False)
        _parse_path(path, probe)
        found = (probe.class_id, probe.instance_id, probe.attribute_id, probe.symbol, probe.classes)
        if len(_PATHS) >= _PATHS_MAX:
            _PATHS.clear()
        _PATHS[path] = found
    return found


def _parse_path(path: bytes, msg: CipMessage) -> None:
    off, classes = 0, []
    while off < len(path):
        seg = path[off]
        if seg == 0x91:                       # ANSI extended symbolic
            if off + 2 > len(path):
                break
            size = path[off + 1]
            name = printable(path[off + 2:off + 2 + size], 128)
            msg.symbol = name if msg.symbol is None else f"{msg.symbol}.{name}"
            off += 2 + size + (size & 1)
            continue
        if seg & 0xE0 == 0x20:                # logical segment
            kind, fmt = (seg >> 2) & 0x07, seg & 0x03
            if fmt == 0:
                if off + 2 > len(path):
                    break
                value, off = path[off + 1], off + 2
            elif fmt == 1:
                if off + 4 > len(path):
                    break
                value, off = struct.unpack_from("<H", path, off + 2)[0], off + 4
            elif fmt == 2:
                if off + 6 > len(path):
                    break
                value, off = struct.unpack_from("<I", path, off + 2)[0], off + 6
            else:
                break
            if kind == 0:
                classes.append(value)
                if msg.class_id is None:
                    msg.class_id = value
            elif kind == 1 and msg.instance_id is None:
                msg.instance_id = value
            elif kind == 4 and msg.attribute_id is None:
                msg.attribute_id = value
            continue
        if seg & 0xE0 == 0x00:                # port segment (in a routed request path)
            off += 2 if not seg & 0x10 else 2 + (path[off + 1] if off + 1 < len(path) else 0)
            continue
        if seg == 0x80 and off + 1 < len(path):   # simple data segment
            off += 2 + 2 * path[off + 1]
            continue
        break
    msg.classes = tuple(classes)


def service_name(service: int, req: CipMessage | None = None) -> str:
    cls = req.class_id if req is not None else None
    entry = CLASS_SERVICES.get(cls, {}).get(service) if cls is not None else None
    if entry:
        return entry[0]
    if service in SERVICES:
        return SERVICES[service][0]
    if req is not None and service in TAG_SERVICES and (req.symbol or cls in (CLASS_SYMBOL, CLASS_TEMPLATE)):
        return TAG_SERVICES[service][0]
    return f"Service 0x{service:02x}"


def describe_request(msg: CipMessage) -> tuple[int, str, str, str]:
    """(code, name, category, detail) of a CIP request, with the reason for the category."""
    svc, cls = msg.service, msg.class_id
    pccc = _pccc(msg.data) if cls == CLASS_PCCC and svc == 0x4B else None
    return _describe(svc, cls, msg.classes, msg.instance_id, msg.attribute_id, msg.symbol, msg.route, pccc)


@lru_cache(maxsize=8192)
def _describe(svc: int, cls: int | None, classes: tuple, instance_id: int | None, attribute_id: int | None,
              symbol: str | None, route: str | None, pccc: tuple | None) -> tuple[int, str, str, str]:
    """describe_request on the fields it reads (cached: a plant repeats the same requests)."""
    msg = CipMessage(svc, False, class_id=cls, instance_id=instance_id, attribute_id=attribute_id,
                     classes=classes, symbol=symbol, route=route)
    target = _target_text(msg)
    specific = CLASS_SERVICES.get(cls, {}).get(svc) if cls is not None else None
    if pccc is not None:
        name, category, why = pccc
    elif specific:
        name, category, why = specific
    elif svc in SERVICES:
        name, category = SERVICES[svc]
        why = ""
        if svc in SET_SERVICES and cls in CONFIG_CLASSES:
            category, why = "config", f"sets {CONFIG_CLASSES[cls]} attributes"
        elif svc == 0x05 and cls == CLASS_IDENTITY:
            why = "device reset"
        elif svc in (0x08, 0x09) and cls in VENDOR_CLASSES:
            category = "program"
            why = "creates or deletes a vendor-specific controller object (online edit or download)"
    elif svc in TAG_SERVICES and (msg.symbol or cls in (CLASS_SYMBOL, CLASS_TEMPLATE)):
        name, category = TAG_SERVICES[svc]
        why = f"tag {msg.symbol}" if msg.symbol else ""
    else:
        name, category, why = f"Service 0x{svc:02x}", "other", "vendor-specific service"
    detail = "; ".join(p for p in (target, why, f"routed via {msg.route}" if msg.route else "") if p)
    return svc, name, category, detail


def _target_text(msg: CipMessage) -> str:
    parts = []
    if msg.class_id is not None:
        cname = class_name(msg.class_id)
        parts.append(f"class 0x{msg.class_id:02x}" + (f" ({cname})" if cname else ""))
        for extra in msg.classes[1:]:
            parts.append(f"class 0x{extra:02x}")
    if msg.instance_id is not None:
        parts.append(f"instance 0x{msg.instance_id:02x}")
    if msg.attribute_id is not None:
        parts.append(f"attribute 0x{msg.attribute_id:02x}")
    return " ".join(parts)


def _pccc(data: bytes) -> tuple[str, str, str]:
    """Name and category of the PCCC command inside Execute PCCC (requestor id, then CMD, STS,
    TNS, FNC)."""
    if not data:
        return "Execute PCCC", "other", "PCCC"
    off = data[0]                     # requestor id length includes its own byte
    if off < 7 or off + 5 > len(data):
        return "Execute PCCC", "other", "PCCC"
    cmd, fnc = data[off], data[off + 4]
    name, category = PCCC.get((cmd, fnc), (f"PCCC 0x{cmd:02x}/0x{fnc:02x}", "other"))
    return f"PCCC {name}" if not name.startswith("PCCC") else name, category, \
        f"PCCC command 0x{cmd:02x} function 0x{fnc:02x}"


# Routine recognition (capture/routine.py calls these on whole chunks): the key must cover
# every field decode() reports for such a packet.
# CIP services left to the deep tier: Identity-capable reads (their replies give identity
# through request pairing), Multiple Service Packet and Unconnected Send (wrappers).
_CIP_DEEP = (0x01, 0x03, 0x0E, 0x0A, 0x52)


def enip_cip_routine(p, plen, from_client, l4, sport, dport):
    """SendRRData / SendUnitData with exactly one CIP message. Requests key on the service and
    path (and the PCCC command and function for Execute PCCC); replies on service and status."""
    ok = (l4 == 6) & (plen >= 44) & (plen == 24 + le16(p, 2))
    cmd = le16(p, 0)
    ok &= ((cmd == 0x6F) | (cmd == 0x70)) & (p[:, 8] == 0) & (p[:, 9] == 0) & (p[:, 10] == 0) & (p[:, 11] == 0)
    ok &= le16(p, 30) == 2
    t1, len1 = le16(p, 32), le16(p, 34)
    ok &= ((t1 == 0) & (len1 == 0)) | ((t1 == 0xA1) & (len1 == 4))
    i2 = 36 + len1
    rows = np.arange(len(p))
    w = p.shape[1]

    def at(i, sub=None):
        return p[rows if sub is None else sub, np.minimum(i, w - 1)].astype(np.int64)

    t2 = at(i2) | (at(i2 + 1) << 8)
    len2 = at(i2 + 2) | (at(i2 + 3) << 8)
    ok &= ((t2 == 0xB2) & (t1 == 0)) | ((t2 == 0xB1) & (t1 == 0xA1))
    ok &= plen == i2 + 4 + len2
    cip = i2 + 4 + np.where(t2 == 0xB1, 2, 0)
    ok &= cip + 4 <= np.minimum(plen, w)
    svc = at(cip)
    one = (dport == 44818) != (sport == 44818)
    request = np.where(one, dport == 44818, from_client)
    words = at(cip + 1)
    path_end = cip + 2 + 2 * words
    req = ok & request & (svc < 0x80) & ~np.isin(svc, _CIP_DEEP) & (path_end + 8 <= np.minimum(plen, w))
    rsp = ok & ~request & (svc >= 0x80) & ~np.isin(svc & 0x7F, _CIP_DEEP) & np.isin(at(cip + 2), (0, 6))
    # Execute PCCC: the command and function bytes after the requestor id
    d0 = path_end
    rl = at(d0)
    valid = (rl >= 7) & (d0 + rl + 5 <= plen)
    pccc = np.where(req & (svc == 0x4B),
                    (rl << 24) | (valid << 16) | np.where(valid, (at(d0 + rl) << 8) | at(d0 + rl + 4), 0), 0)
    # Multiple Service Packet: requests key on the whole message; replies on the inner
    # services when every inner reply succeeded
    msp_req, msp_rsp, inner = _msp(at, ok, request, svc, cip, path_end, plen, w)
    end = np.where(msp_req, plen, np.where(req, path_end, 0))
    key = hash_keys((col(request), col(cmd), col(svc), col(pccc), span_hash(p, cip, end),
                     col(np.where(rsp, at(cip + 2) | (at(cip + 3) << 8), 0)), inner))
    return req | rsp | msp_req | msp_rsp, key


MSP_MAX = 32  # inner messages looked at; larger packets stay deep


def _msp(at, ok, request, svc, cip, path_end, plen, w):
    n = len(svc)
    msp_req = ok & request & (svc == 0x0A) & (plen <= w)
    msp_rsp = ok & ~request & (svc == 0x8A) & (at(cip + 2) == 0)
    data = np.where(msp_req, path_end, cip + 4 + 2 * at(cip + 3))
    count = at(data) | (at(data + 1) << 8)
    good = (msp_req | msp_rsp) & (count >= 1) & (count <= MSP_MAX)
    # the inner loop looks at the candidate rows only (a few of an ENIP chunk)
    sel = np.flatnonzero(good)
    s_req, s_rsp, s_data, s_count = msp_req[sel], msp_rsp[sel], data[sel], count[sel]
    s_lim = np.minimum(plen[sel], w)
    s_good = np.ones(len(sel), bool)
    s_inner = np.zeros(len(sel), np.uint64)
    for i in range(MSP_MAX):
        live = s_good & (i < s_count)
        if not live.any():
            break
        o = s_data + (at(s_data + 2 + 2 * i, sel) | (at(s_data + 3 + 2 * i, sel) << 8))
        isvc = at(o, sel)
        bad = live & (o + 4 > s_lim)
        bad |= live & s_req & ((isvc >= 0x80) | np.isin(isvc, _CIP_DEEP))
        bad |= live & s_rsp & ((isvc < 0x80) | np.isin(isvc & 0x7F, _CIP_DEEP) | ~np.isin(at(o + 2, sel), (0, 6)))
        s_good &= ~bad
        s_inner = np.where(live, hash_keys((s_inner, isvc.astype(np.uint64))), s_inner)
    good[sel] = s_good
    inner = np.zeros(n, np.uint64)
    inner[sel] = s_inner
    return msp_req & good, msp_rsp & good, np.where(msp_rsp & good, inner, np.uint64(0))


def cip_io_routine(p, plen, from_client, l4, sport, dport):
    ok = (l4 == 17) & ((sport == 2222) | (dport == 2222)) & (plen >= 18)
    ok &= (le16(p, 0) == 2) & (le16(p, 2) == 0x8002) & (le16(p, 4) == 8) & (le16(p, 14) == 0xB1)
    ok &= plen == 18 + le16(p, 16)
    conn = col(p[:, 6]) | (col(p[:, 7]) << np.uint64(8)) | (col(p[:, 8]) << np.uint64(16)) \
        | (col(p[:, 9]) << np.uint64(24))
    key = hash_keys((col(from_client), conn, col(plen)))
    return ok, key


SPEC = ProtocolSpec(
    name=NAME, title="EtherNet/IP + CIP", layer="industrial",
    decode=decode, signature=signature,
    tcp_ports=(44818,),
    udp_ports=(44818, 2222),
    routine=(Routine(enip_cip_routine, 512), Routine(cip_io_routine, 24)),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="plc",
    observes=("error", "identity", "operation", "service"),
)
