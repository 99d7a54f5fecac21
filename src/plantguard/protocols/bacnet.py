"""BACnet/IP (ANSI/ASHRAE 135 Annex J) on UDP 47808: discovery, device identity, and the
services that read, change or restart building controllers.

Layers: BVLC (0x81, function, length), NPDU (version, control, optional routing addresses,
network-layer messages), APDU (confirmed / unconfirmed requests, simple and complex ACKs,
segment ACKs, error / reject / abort). Service parameters are BACnet tagged values.

Observations: identity from I-Am (device instance, vendor id and name, max APDU, segmentation)
and from the device object's properties in ReadProperty / ReadPropertyMultiple ACKs (vendor,
model, firmware, application software, name); operation per request (category by service);
credential for the clear-text password of DeviceCommunicationControl / ReinitializeDevice with
the reply's verdict; error for Error / Reject / Abort PDUs; service for the answering device.
"""
from __future__ import annotations

import csv
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec

NAME = "bacnet"

MAX_VALUES = 512          # application values decoded from one property value
MAX_RESULTS = 256         # property results read from one ReadPropertyMultiple
MAX_SEGMENTED = 1 << 20   # reassembled size of one segmented message
MAX_PENDING = 64          # passwords waiting for their reply, per flow

BVLC_FUNCTIONS = {0x00: "BVLC_Result", 0x01: "Write_Broadcast_Distribution_Table",
                  0x02: "Read_Broadcast_Distribution_Table", 0x03: "Read_Broadcast_Distribution_Table_Ack",
                  0x04: "Forwarded_NPDU", 0x05: "Register_Foreign_Device",
                  0x06: "Read_Foreign_Device_Table", 0x07: "Read_Foreign_Device_Table_Ack",
                  0x08: "Delete_Foreign_Device_Table_Entry", 0x09: "Distribute_Broadcast_to_Network",
                  0x0A: "Original_Unicast_NPDU", 0x0B: "Original_Broadcast_NPDU", 0x0C: "Secure_BVLL"}
NPDU_FUNCTIONS = (0x04, 0x09, 0x0A, 0x0B)
NETWORK_MESSAGES = ["who_is_router_to_network", "i_am_router_to_network", "i_could_be_router_to_network",
                    "reject_message_to_network", "router_busy_to_network", "router_available_to_network",
                    "initialize_routing_table", "initialize_routing_table_ack",
                    "establish_connection_to_network", "disconnect_connection_to_network",
                    "challenge_request", "security_payload", "security_response", "request_key_update",
                    "update_key_set", "update_distribution_key", "request_master_key", "set_master_key",
                    "what_is_network_number", "network_number_is"]
PDU_TYPES = ["CONFIRMED_REQUEST", "UNCONFIRMED_REQUEST", "SIMPLE_ACK", "COMPLEX_ACK",
             "SEGMENT_ACK", "ERROR_PDU", "REJECT_PDU", "ABORT_PDU"]

# Confirmed services: code -> (name, category)
CONFIRMED = {
    0: ("acknowledge_alarm", "write"), 1: ("confirmed_cov_notification", "other"),
    2: ("confirmed_event_notification", "other"), 3: ("get_alarm_summary", "read"),
    4: ("get_enrollment_summary", "read"), 5: ("subscribe_cov", "read"),
    6: ("atomic_read_file", "file"), 7: ("atomic_write_file", "program"),
    8: ("add_list_element", "write"), 9: ("remove_list_element", "write"),
    10: ("create_object", "config"), 11: ("delete_object", "config"),
    12: ("read_property", "read"), 13: ("read_property_conditional", "read"),
    14: ("read_property_multiple", "read"), 15: ("write_property", "write"),
    16: ("write_property_multiple", "write"), 17: ("device_communication_control", "config"),
    18: ("confirmed_private_transfer", "other"), 19: ("confirmed_text_message", "other"),
    20: ("reinitialize_device", "control"), 21: ("vt_open", "other"), 22: ("vt_close", "other"),
    23: ("vt_data", "other"), 24: ("authenticate", "auth"), 25: ("request_key", "auth"),
    26: ("read_range", "read"), 27: ("life_safety_operation", "control"),
    28: ("subscribe_cov_property", "read"), 29: ("get_event_information", "read"),
    30: ("subscribe_cov_property_multiple", "read"), 31: ("confirmed_cov_notification_multiple", "other"),
    32: ("confirmed_audit_notification", "other"), 33: ("audit_log_query", "read"),
}
# Unconfirmed services: code -> (name, category or None when it is an announcement, not a request)
UNCONFIRMED = {
    0: ("i_am", None), 1: ("i_have", None), 2: ("unconfirmed_cov_notification", None),
    3: ("unconfirmed_event_notification", None), 4: ("unconfirmed_private_transfer", "other"),
    5: ("unconfirmed_text_message", "other"), 6: ("time_synchronization", "config"),
    7: ("who_has", "diagnostic"), 8: ("who_is", "diagnostic"), 9: ("utc_time_synchronization", "config"),
    10: ("write_group", "write"), 11: ("unconfirmed_cov_notification_multiple", None),
    12: ("unconfirmed_audit_notification", None), 13: ("who_am_i", "diagnostic"), 14: ("you_are", "config"),
}
SEGMENTATION = {0: "segmented-both", 1: "segmented-transmit", 2: "segmented-receive", 3: "no-segmentation"}
DCC_STATES = {0: "enable", 1: "disable", 2: "disable-initiation"}
REINIT_STATES = {0: "coldstart", 1: "warmstart", 2: "start-backup", 3: "end-backup", 4: "start-restore",
                 5: "end-restore", 6: "abort-restore", 7: "activate-changes"}
MAX_APDU = {0: 50, 1: 128, 2: 206, 3: 480, 4: 1024, 5: 1476}

DEVICE = 8
# Device-object property -> identity key
IDENTITY_PROPERTIES = {121: "vendor", 70: "model", 44: "firmware", 12: "software", 77: "name",
                       28: "description", 120: "vendor_id", 372: "serial", 58: "location"}


class Malformed(ValueError):
    pass


# --- name tables shipped as data -----------------------------------------------------------

@lru_cache(maxsize=1)
def vendor_names() -> dict[int, str]:
    return {int(r["vendor_id"]): r["name"] for r in _data_rows("bacnet_vendors.csv")}


@lru_cache(maxsize=1)
def _names() -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = {}
    for r in _data_rows("bacnet_names.csv"):
        out.setdefault(r["kind"], {})[int(r["code"])] = r["name"]
    return out


def name_of(kind: str, code: int | None) -> str:
    if code is None:
        return "-"
    name = _names().get(kind, {}).get(code)
    if name:
        return name
    if kind == "property" and code >= 512:
        return f"Vendor Specific ({code})"
    return f"{kind.replace('_', '-')} {code}"


def _data_rows(filename: str) -> list[dict[str, str]]:
    text = resources.files("plantguard.data").joinpath(filename).read_text(encoding="utf-8")
    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))


# --- tagged values --------------------------------------------------------------------------

@dataclass(slots=True)
class Tag:
    number: int
    context: bool
    opening: bool
    closing: bool
    length: int       # value length (or the boolean value of an application boolean)
    start: int        # offset of the value
    end: int          # offset after the value


def read_tag(b: bytes, off: int) -> Tag:
    if off >= len(b):
        raise Malformed("tag past end")
    first = b[off]
    number, context, lvt = first >> 4, bool(first & 0x08), first & 0x07
    off += 1
    if number == 15:
        if off >= len(b):
            raise Malformed("short extended tag")
        number = b[off]
        off += 1
    if context and lvt in (6, 7):
        return Tag(number, True, lvt == 6, lvt == 7, 0, off, off)
    if not context and number == 1:           # application boolean: the value is in the tag
        return Tag(1, False, False, False, lvt, off, off)
    length = lvt
    if lvt == 5:
        if off >= len(b):
            raise Malformed("short length")
        length = b[off]
        off += 1
        if length == 254:
            length = struct.unpack_from(">H", b, off)[0] if off + 2 <= len(b) else -1
            off += 2
        elif length == 255:
            length = struct.unpack_from(">I", b, off)[0] if off + 4 <= len(b) else -1
            off += 4
    if length < 0 or off + length > len(b):
        raise Malformed("value past end")
    return Tag(number, context, False, False, length, off, off + length)


def _uint(b: bytes, t: Tag) -> int:
    return int.from_bytes(b[t.start:t.end], "big") if t.length else 0


def _object_id(b: bytes, t: Tag) -> tuple[int, int]:
    if t.length != 4:
        raise Malformed("object id length")
    v = int.from_bytes(b[t.start:t.end], "big")
    return v >> 22, v & 0x3FFFFF


def character_string(raw: bytes) -> str:
    """A BACnet character string: the first octet names the character set."""
    if not raw:
        return ""
    charset, body = raw[0], raw[1:]
    try:
        if charset == 0:
            return body.decode("utf-8")
        if charset == 1 and len(body) >= 2:     # IBM/Microsoft DBCS: a code page comes first
            return body[2:].decode(f"cp{int.from_bytes(body[:2], 'big')}")
        if charset == 3:
            return body.decode("utf-32-be")
        if charset == 4:
            return body.decode("utf-16-be")
    except (UnicodeDecodeError, LookupError):
        pass
    return body.decode("latin-1")


def application_value(b: bytes, t: Tag):
    """A Python value for an application-tagged value."""
    n, raw = t.number, b[t.start:t.end]
    if n == 0:
        return None
    if n == 1:
        return bool(t.length)
    if n == 2:
        return int.from_bytes(raw, "big") if raw else 0
    if n == 3:
        return int.from_bytes(raw, "big", signed=True) if raw else 0
    if n == 4 and len(raw) == 4:
        return struct.unpack(">f", raw)[0]
    if n == 5 and len(raw) == 8:
        return struct.unpack(">d", raw)[0]
    if n == 7:
        return character_string(raw)
    if n == 9:
        return int.from_bytes(raw, "big") if raw else 0
    if n == 12 and len(raw) == 4:
        v = int.from_bytes(raw, "big")
        return (v >> 22, v & 0x3FFFFF)
    return bytes(raw)   # octet / bit strings, dates, times: kept raw


def value_text(v) -> str:
    if isinstance(v, tuple):
        return f"{name_of('object_type', v[0])}: {v[1]}"
    if isinstance(v, float):
        return f"{v:f}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def _values_until_close(b: bytes, off: int, closing: int) -> tuple[list, int]:
    """Application values up to the closing tag `closing`; nested constructed values are skipped
    over. Returns (values, offset after the closing tag)."""
    values: list = []
    depth = 0
    for _ in range(MAX_VALUES * 4):
        t = read_tag(b, off)
        off = t.end
        if t.opening:
            depth += 1
        elif t.closing:
            if depth == 0:
                if t.number != closing:
                    raise Malformed("unbalanced constructed value")
                return values, off
            depth -= 1
        elif not t.context and depth == 0 and len(values) < MAX_VALUES:
            values.append(application_value(b, t))
    raise Malformed("value list too long")


# --- messages -------------------------------------------------------------------------------

@dataclass
class PropertyRef:
    object_type: int
    instance: int
    property: int
    array_index: int | None = None
    values: list | None = None      # decoded values (ACKs and writes)
    error: bool = False

    @property
    def value(self):
        return self.values[0] if self.values else None


@dataclass
class Message:
    bvlc_function: str
    network_message: str | None = None
    pdu_type: str | None = None
    service: str | None = None          # snake_case service name
    service_code: int | None = None
    invoke_id: int | None = None
    segmented: bool = False
    more_follows: bool = False
    segment_seq: int | None = None
    result_code: str | None = None      # error code / reject / abort reason name
    error_class: str | None = None
    iam: dict | None = None             # device_instance, max_apdu, segmentation, vendor_id
    who_is_range: tuple | None = None
    who_has: dict | None = None
    i_have: dict | None = None
    properties: list[PropertyRef] = field(default_factory=list)
    object_id: tuple | None = None      # object of file / create / delete services
    device_state: str | None = None     # DCC enable/disable, reinitialize state
    time_duration: int | None = None
    password: str | None = None
    apdu: bytes = b""


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


def _npdu_start(payload: bytes) -> int:
    return 10 if payload[1] == 0x04 else 4


def parse(payload: bytes) -> Message:
    """Decode one BACnet/IP datagram (raises Malformed on what cannot be read)."""
    if len(payload) < 4 or payload[0] != 0x81:
        raise Malformed("not BVLC")
    msg = Message(BVLC_FUNCTIONS.get(payload[1], f"BVLC_0x{payload[1]:02x}"))
    if payload[1] not in NPDU_FUNCTIONS:
        return msg
    b = payload   # the whole datagram: some senders write a BVLC length shorter than the data
    off = _npdu_start(payload)
    if off + 2 > len(b) or b[off] != 0x01:
        raise Malformed("bad NPDU version")
    control = b[off + 1]
    off += 2
    if control & 0x20:                               # destination network, address
        if off + 3 > len(b):
            raise Malformed("short DNET")
        off += 3 + b[off + 2]
    if control & 0x08:                               # source network, address
        if off + 3 > len(b):
            raise Malformed("short SNET")
        off += 3 + b[off + 2]
    if control & 0x20:
        off += 1                                     # hop count
    if off >= len(b):
        raise Malformed("short NPDU")
    if control & 0x80:                               # network-layer message
        mtype = b[off]
        msg.pdu_type = "NPDU"
        msg.network_message = (NETWORK_MESSAGES[mtype] if mtype < len(NETWORK_MESSAGES)
                               else f"network_message_0x{mtype:02x}")
        msg.service = msg.network_message
        return msg
    msg.apdu = bytes(b[off:])
    _apdu(msg, msg.apdu)
    return msg


def _apdu(msg: Message, a: bytes) -> None:
    ptype = a[0] >> 4
    if ptype >= len(PDU_TYPES):
        raise Malformed("unknown PDU type")
    msg.pdu_type = PDU_TYPES[ptype]
    if ptype == 0:                                   # confirmed request
        if len(a) < 4:
            raise Malformed("short confirmed request")
        msg.segmented, msg.more_follows = bool(a[0] & 0x08), bool(a[0] & 0x04)
        msg.invoke_id = a[2]
        off = 3
        if msg.segmented:
            msg.segment_seq = a[3]
            off = 5
        if off >= len(a):
            raise Malformed("no service choice")
        msg.service_code = a[off]
        msg.service = CONFIRMED.get(a[off], (f"confirmed_service_{a[off]}", "other"))[0]
        if not msg.segmented:
            _confirmed_request(msg, a, off + 1)
    elif ptype == 1:                                 # unconfirmed request
        if len(a) < 2:
            raise Malformed("short unconfirmed request")
        msg.service_code = a[1]
        msg.service = UNCONFIRMED.get(a[1], (f"unconfirmed_service_{a[1]}", None))[0]
        _unconfirmed_request(msg, a, 2)
    elif ptype in (2, 3):                            # simple / complex ACK
        if len(a) < 3:
            raise Malformed("short ACK")
        msg.invoke_id = a[1]
        off = 2
        if ptype == 3:
            msg.segmented, msg.more_follows = bool(a[0] & 0x08), bool(a[0] & 0x04)
            if msg.segmented:
                if len(a) < 5:
                    raise Malformed("short segmented ACK")
                msg.segment_seq = a[2]
                off = 4
        msg.service_code = a[off]
        msg.service = CONFIRMED.get(a[off], (f"confirmed_service_{a[off]}", "other"))[0]
        if ptype == 3 and not msg.segmented:
            _complex_ack(msg, a, off + 1)
    elif ptype == 4:                                 # segment ACK
        if len(a) < 4:
            raise Malformed("short segment ACK")
        msg.invoke_id, msg.segment_seq = a[1], a[2]
    elif ptype == 5:                                 # error
        if len(a) < 3:
            raise Malformed("short error")
        msg.invoke_id, msg.service_code = a[1], a[2]
        msg.service = CONFIRMED.get(a[2], (f"confirmed_service_{a[2]}", "other"))[0]
        _error(msg, a, 3)
    else:                                            # reject / abort
        if len(a) < 3:
            raise Malformed("short reject/abort")
        msg.invoke_id = a[1]
        msg.service = "reject" if ptype == 6 else "abort"
        msg.result_code = name_of("reject_reason" if ptype == 6 else "abort_reason", a[2])


def _error(msg: Message, a: bytes, off: int) -> None:
    """Error class and code: the first two enumerated values, whether application tagged or
    wrapped in a context tag (some services nest them)."""
    enums = []
    for _ in range(16):
        if off >= len(a) or len(enums) == 2:
            break
        t = read_tag(a, off)
        off = t.end
        if not t.context and t.number == 9:
            enums.append(_uint(a, t))
    if len(enums) == 2:
        msg.error_class = name_of("error_class", enums[0])
        msg.result_code = name_of("error_code", enums[1])


def _context(a: bytes, off: int, number: int) -> Tag | None:
    """The context tag `number` at off, or None when another tag (or the end) is there."""
    if off >= len(a):
        return None
    t = read_tag(a, off)
    return t if t.context and t.number == number and not t.closing else None


def _confirmed_request(msg: Message, a: bytes, off: int) -> None:
    code = msg.service_code
    if code in (12, 15):                             # ReadProperty / WriteProperty
        t0 = _context(a, off, 0)
        t1 = _context(a, t0.end, 1) if t0 else None
        if t1 is None:
            raise Malformed("property request")
        otype, inst = _object_id(a, t0)
        ref = PropertyRef(otype, inst, _uint(a, t1))
        off = t1.end
        t2 = _context(a, off, 2)
        if t2:
            ref.array_index, off = _uint(a, t2), t2.end
        if code == 15:
            t3 = _context(a, off, 3)
            if t3 and t3.opening:
                ref.values, off = _values_until_close(a, t3.end, 3)
        msg.properties.append(ref)
    elif code in (14, 16):                           # ReadPropertyMultiple / WritePropertyMultiple
        for _ in range(MAX_RESULTS):
            t0 = _context(a, off, 0)
            if t0 is None:
                break
            otype, inst = _object_id(a, t0)
            t1 = _context(a, t0.end, 1)
            if t1 is None or not t1.opening:
                raise Malformed("property list")
            off = t1.end
            for _ in range(MAX_RESULTS):
                t = read_tag(a, off)
                if t.closing:
                    off = t.end
                    break
                if not (t.context and t.number == 0):
                    raise Malformed("property reference")
                ref = PropertyRef(otype, inst, _uint(a, t))
                off = t.end
                t1i = _context(a, off, 1)
                if t1i and not t1i.opening:
                    ref.array_index, off = _uint(a, t1i), t1i.end
                if code == 16:
                    t2 = _context(a, off, 2)
                    if t2 and t2.opening:
                        ref.values, off = _values_until_close(a, t2.end, 2)
                    t3 = _context(a, off, 3)
                    if t3:
                        off = t3.end
                msg.properties.append(ref)
    elif code == 17:                                 # DeviceCommunicationControl
        t = _context(a, off, 0)
        if t:
            msg.time_duration, off = _uint(a, t), t.end
        t = _context(a, off, 1)
        if t:
            msg.device_state, off = DCC_STATES.get(_uint(a, t), str(_uint(a, t))), t.end
        t = _context(a, off, 2)
        if t:
            msg.password = character_string(a[t.start:t.end])
    elif code == 20:                                 # ReinitializeDevice
        t = _context(a, off, 0)
        if t:
            msg.device_state, off = REINIT_STATES.get(_uint(a, t), str(_uint(a, t))), t.end
        t = _context(a, off, 1)
        if t:
            msg.password = character_string(a[t.start:t.end])
    elif code in (6, 7, 11):                         # file services, DeleteObject: object first
        t = read_tag(a, off)
        if not t.context and t.number == 12:
            msg.object_id = _object_id(a, t)


def _complex_ack(msg: Message, a: bytes, off: int) -> None:
    code = msg.service_code
    if code == 12:                                   # ReadProperty-ACK
        t0 = _context(a, off, 0)
        t1 = _context(a, t0.end, 1) if t0 else None
        if t1 is None:
            raise Malformed("ReadProperty-ACK")
        otype, inst = _object_id(a, t0)
        ref = PropertyRef(otype, inst, _uint(a, t1))
        off = t1.end
        t2 = _context(a, off, 2)
        if t2:
            ref.array_index, off = _uint(a, t2), t2.end
        t3 = _context(a, off, 3)
        if t3 is None or not t3.opening:
            raise Malformed("ReadProperty-ACK value")
        ref.values, _ = _values_until_close(a, t3.end, 3)
        msg.properties.append(ref)
    elif code == 14:                                 # ReadPropertyMultiple-ACK
        for _ in range(MAX_RESULTS):
            t0 = _context(a, off, 0)
            if t0 is None:
                break
            otype, inst = _object_id(a, t0)
            t1 = _context(a, t0.end, 1)
            if t1 is None or not t1.opening:
                raise Malformed("result list")
            off = t1.end
            for _ in range(MAX_RESULTS):
                t = read_tag(a, off)
                if t.closing:
                    off = t.end
                    break
                if not (t.context and t.number == 2):
                    raise Malformed("property result")
                ref = PropertyRef(otype, inst, _uint(a, t))
                off = t.end
                t3 = _context(a, off, 3)
                if t3 and not t3.opening:
                    ref.array_index, off = _uint(a, t3), t3.end
                tv = read_tag(a, off)
                if tv.context and tv.opening and tv.number == 4:
                    ref.values, off = _values_until_close(a, tv.end, 4)
                elif tv.context and tv.opening and tv.number == 5:
                    ref.error = True
                    _vals, off = _values_until_close(a, tv.end, 5)
                else:
                    raise Malformed("property access result")
                msg.properties.append(ref)
        if len(msg.properties) > MAX_RESULTS:
            del msg.properties[MAX_RESULTS:]


def _unconfirmed_request(msg: Message, a: bytes, off: int) -> None:
    code = msg.service_code
    if code == 0:                                    # I-Am
        tags = []
        for _ in range(4):
            t = read_tag(a, off)
            tags.append(t)
            off = t.end
        if tags[0].number != 12 or tags[0].context:
            raise Malformed("I-Am without a device id")
        _otype, inst = _object_id(a, tags[0])
        msg.iam = {"device_instance": inst, "max_apdu": _uint(a, tags[1]),
                   "segmentation": SEGMENTATION.get(_uint(a, tags[2]), str(_uint(a, tags[2]))),
                   "vendor_id": _uint(a, tags[3])}
    elif code == 8:                                  # Who-Is
        t0 = _context(a, off, 0)
        t1 = _context(a, t0.end, 1) if t0 else None
        msg.who_is_range = (_uint(a, t0), _uint(a, t1)) if t0 and t1 else None
    elif code == 7:                                  # Who-Has: optional range, then object id or name
        info: dict = {}
        t = _context(a, off, 0)
        if t:
            t1 = _context(a, t.end, 1)
            info["range"] = (_uint(a, t), _uint(a, t1) if t1 else None)
            off = t1.end if t1 else t.end
        t = read_tag(a, off)
        if t.context and t.number == 2:
            info["object"] = _object_id(a, t)
        elif t.context and t.number == 3:
            info["name"] = character_string(a[t.start:t.end])
        msg.who_has = info
    elif code == 1:                                  # I-Have: device id, object id, object name
        t0 = read_tag(a, off)
        t1 = read_tag(a, t0.end)
        t2 = read_tag(a, t1.end)
        msg.i_have = {"device": _object_id(a, t0), "object": _object_id(a, t1),
                      "name": character_string(a[t2.start:t2.end]) if t2.number == 7 else None}


# --- segmentation ---------------------------------------------------------------------------

def reassemble(state: dict, src, msg: Message) -> Message | None:
    """Join the segments of a segmented complex ACK (by sender and invoke id). Returns the
    complete message once the last segment is in, None while segments are still missing."""
    if not (msg.pdu_type == "COMPLEX_ACK" and msg.segmented):
        return msg
    segs = state.setdefault("segments", {})
    key = (src, msg.invoke_id)
    a = msg.apdu
    body = a[5:]                                     # type, invoke, seq, window, service
    if msg.segment_seq == 0 or key not in segs:
        if msg.segment_seq != 0:
            return None
        if len(segs) >= 16:
            segs.pop(next(iter(segs)))
        segs[key] = bytearray()
    segs[key] += body
    if len(segs[key]) > MAX_SEGMENTED:
        del segs[key]
        return None
    if msg.more_follows:
        return None
    whole = bytes(segs.pop(key))
    done = Message(msg.bvlc_function, pdu_type="COMPLEX_ACK", service=msg.service,
                   service_code=msg.service_code, invoke_id=msg.invoke_id, segmented=True)
    _complex_ack(done, whole, 0)
    return done


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
            out.append(pkt.observe("identity", NAME, subject="src", **data))
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


def _device_identity(pkt: Packet, msg: Message) -> list[Observation]:
    data: dict = {}
    for ref in msg.properties:
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
    if not data:
        return []
    return [pkt.observe("identity", NAME, subject="src", **data)]


SPEC = ProtocolSpec(
    name=NAME, title="BACnet/IP", layer="industrial",
    decode=decode, signature=signature,
    # 0xBAC0-0xBACF, the ports BACnet/IP networks use
    udp_ports=tuple(range(47808, 47824)),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="plc",
    observes=("credential", "error", "identity", "operation", "service"),
)
