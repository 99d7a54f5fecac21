"""CIP explicit messages in SendRRData / SendUnitData: the messages of one encapsulation PDU
(Multiple Service Packet and Unconnected Send unwrapped, so each inner service counts once),
replies paired with their requests through per-flow state, what each request does (service,
object, category and the reason for it), and the observations for one message."""
from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from plantguard.model import Observation, Packet
from plantguard.protocols.base import u16le
from plantguard.protocols.enip.encap import (
    ITEM_CONNECTED_DATA,
    ITEM_UNCONNECTED_DATA,
    NAME,
    SEND_DATA,
    Encap,
    cpf_items,
)
from plantguard.protocols.enip.identity import (
    IDENTIFYING_KEYS,
    _table,
    identity_from_reply,
)
from plantguard.protocols.enip.path import path_fields, route_text
from plantguard.protocols.enip.pccc import CLASS_PCCC, EXECUTE_PCCC, pccc_command

MAX_EMBEDDED = 64       # services read from one Multiple Service Packet
MAX_DEPTH = 3           # nesting of Unconnected Send / Multiple Service Packet
MAX_PENDING = 32        # requests remembered per flow to understand their replies

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

CLASS_IDENTITY, CLASS_CONNECTION_MANAGER, CLASS_FILE = 0x01, 0x06, 0x37
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
    CLASS_PCCC: {EXECUTE_PCCC: ("Execute PCCC", "other", "PCCC")},
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
VENDOR_CLASSES = range(0x64, 0xC8)   # CIP's vendor-specific object class range


def status_name(status: int) -> str:
    return _table("cip_status.csv").get(status, f"Status 0x{status:02x}")


def class_name(class_id: int | None) -> str | None:
    return None if class_id is None else _table("cip_classes.csv").get(class_id)


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
    request_of: CipMessage | None = None  # for replies: the request they answer, when known


# --- observations ------------------------------------------------------------------------------

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


def _is_wrapper(msg: CipMessage) -> bool:
    return msg.service == MULTIPLE_SERVICE_PACKET or msg.class_id == CLASS_CONNECTION_MANAGER


# --- messages ----------------------------------------------------------------------------------

def cip_messages(enc: Encap, pending: OrderedDict | None = None, copy: bool = True) -> list[CipMessage]:
    """Every CIP message of a SendRRData / SendUnitData PDU, wrappers first then what they
    carry; replies are paired with their requests through `pending` (per-flow state).
    copy=False keeps the request messages themselves in `pending` (the caller drops their
    data once read: enip._observe does, saving a copy per message)."""
    out: list[CipMessage] = []
    for key, seq, body in _bodies(enc):
        msgs = parse_message(body, seq=seq)
        if not msgs:
            continue
        top = msgs[0]
        if pending is not None:
            if not top.response:
                # the reply needs ids, not data
                _remember(pending, key, [_without_data(m) for m in msgs] if copy else list(msgs))
            else:
                _pair(msgs, _requests(pending.pop(key, None)))
        out.extend(msgs)
    return out


def track_pending(enc: Encap, pending: OrderedDict) -> None:
    """What cip_messages does to `pending` for this PDU, without parsing its messages (a packet
    the engine replayed, fed only to move the flow's state): a request is kept unparsed, and
    parsed only if a decoded reply asks for it; a reply drops its request."""
    for key, seq, body in _bodies(enc):
        if not _parses(body):
            continue
        if body[0] & 0x80:
            pending.pop(key, None)
        else:
            _remember(pending, key, _Unparsed(body, seq))


class _Unparsed:
    """A request's bytes kept in `pending` in place of its parsed messages (track_pending)."""
    __slots__ = ("body", "seq")

    def __init__(self, body: bytes, seq: int | None):
        self.body, self.seq = body, seq


def _bodies(enc: Encap):
    """(pending key, sequence count, CIP message bytes) of each data item of the PDU."""
    if len(enc.data) < SEND_DATA.size:
        return
    for typ, item in cpf_items(enc.data, SEND_DATA.size):
        if typ == ITEM_UNCONNECTED_DATA:
            yield ("u", enc.context), None, item
        elif typ == ITEM_CONNECTED_DATA and len(item) >= 2:
            seq = u16le(item, 0)[0]
            yield ("c", seq), seq, item[2:]


def _parses(b: bytes) -> bool:
    """Whether parse_message gives at least the top message for these bytes."""
    if len(b) < 2:
        return False
    return len(b) >= 4 if b[0] & 0x80 else len(b) >= 2 + 2 * b[1]


def _remember(pending: OrderedDict, key, requests) -> None:
    pending[key] = requests
    while len(pending) > MAX_PENDING:
        pending.popitem(last=False)


def _requests(kept) -> list[CipMessage] | None:
    """The request messages a reply pairs with: kept parsed, or parsed now (without data, as
    a decoded request leaves them)."""
    if isinstance(kept, _Unparsed):
        return [_without_data(m) for m in parse_message(kept.body, seq=kept.seq)]
    return kept


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
        ext = u16le(b, 4)[0] if ext_words and len(b) >= 6 else None
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
    class_id, instance_id, attribute_id, symbol, classes = path_fields(path)
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
    """The services of a Multiple Service Packet: a count, then their offsets from the count."""
    if len(data) < 2:
        return []
    count = u16le(data, 0)[0]
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
    """(embedded request, route path text) of an Unconnected Send request: priority/tick,
    timeout ticks, the embedded request's size and bytes (padded to even), then the route path
    (size in words, reserved byte, segments)."""
    if len(data) < 4:
        return b"", None
    size = u16le(data, 2)[0]
    inner = data[4:4 + size]
    off = 4 + size + (size & 1)
    route = None
    if off + 2 <= len(data):
        words = data[off]
        route = route_text(data[off + 2:off + 2 + 2 * words])
    return bytes(inner), route


# --- what a request does -----------------------------------------------------------------------

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
    pccc = pccc_command(msg.data) if cls == CLASS_PCCC and svc == EXECUTE_PCCC else None
    return _describe(svc, cls, msg.classes, msg.instance_id, msg.attribute_id, msg.symbol, msg.route, pccc)


@lru_cache(maxsize=8192)
def _describe(svc: int, cls: int | None, classes: tuple, instance_id: int | None, attribute_id: int | None,
              symbol: str | None, route: str | None, pccc: tuple | None) -> tuple[int, str, str, str]:
    """describe_request on the fields it reads (cached: a plant repeats the same requests)."""
    target = _target_text(cls, classes, instance_id, attribute_id)
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
    elif svc in TAG_SERVICES and (symbol or cls in (CLASS_SYMBOL, CLASS_TEMPLATE)):
        name, category = TAG_SERVICES[svc]
        why = f"tag {symbol}" if symbol else ""
    else:
        name, category, why = f"Service 0x{svc:02x}", "other", "vendor-specific service"
    detail = "; ".join(p for p in (target, why, f"routed via {route}" if route else "") if p)
    return svc, name, category, detail


def _target_text(class_id: int | None, classes: tuple, instance_id: int | None, attribute_id: int | None) -> str:
    parts = []
    if class_id is not None:
        cname = class_name(class_id)
        parts.append(f"class 0x{class_id:02x}" + (f" ({cname})" if cname else ""))
        for extra in classes[1:]:
            parts.append(f"class 0x{extra:02x}")
    if instance_id is not None:
        parts.append(f"instance 0x{instance_id:02x}")
    if attribute_id is not None:
        parts.append(f"attribute 0x{attribute_id:02x}")
    return " ".join(parts)
