"""BACnet/IP datagrams: BVLC header, NPDU (version, control, routing addresses,
network-layer messages) and APDU (confirmed / unconfirmed requests, simple and complex ACKs,
segment ACKs, error / reject / abort), decoded into a Message with the service parameters
plantguard reports; segmented complex ACKs are joined per sender and invoke id (reassemble)."""
from __future__ import annotations

from dataclasses import dataclass, field

from plantguard.protocols.bacnet.names import (
    BVLC_FUNCTIONS,
    CONFIRMED,
    DCC_STATES,
    NETWORK_MESSAGES,
    NPDU_FUNCTIONS,
    PDU_TYPES,
    REINIT_STATES,
    SEGMENTATION,
    UNCONFIRMED,
    name_of,
)
from plantguard.protocols.bacnet.properties import (
    MAX_RESULTS,
    PropertyRef,
    property_list,
    read_result,
    single_property,
    write_value,
)
from plantguard.protocols.bacnet.tags import (
    Malformed,
    _context,
    _object_id,
    _uint,
    _values_until_close,
    character_string,
    read_tag,
)

MAX_SEGMENTED = 1 << 20   # reassembled size of one segmented message


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
    source_network: int | None = None   # NPDU SNET: the sender is on that network, behind a router
    source_address: str | None = None   # NPDU SADR (hex): its MAC address on that network
    apdu: bytes = b""


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
        msg.source_network = (b[off] << 8) | b[off + 1]
        msg.source_address = bytes(b[off + 3:off + 3 + b[off + 2]]).hex()
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
    msg.apdu = a = bytes(b[off:])
    ptype = a[0] >> 4
    if ptype >= len(PDU_TYPES):
        raise Malformed("unknown PDU type")
    msg.pdu_type = PDU_TYPES[ptype]
    _PDU_READERS[ptype](msg, a)
    return msg


def _confirmed_pdu(msg: Message, a: bytes) -> None:
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
        read = _REQUEST_PARAMETERS.get(msg.service_code)   # the service's parameters
        if read is not None:
            read(msg, a, off + 1)


def _unconfirmed_pdu(msg: Message, a: bytes) -> None:
    if len(a) < 2:
        raise Malformed("short unconfirmed request")
    msg.service_code = a[1]
    msg.service = UNCONFIRMED.get(a[1], (f"unconfirmed_service_{a[1]}", None))[0]
    _unconfirmed_request(msg, a, 2)


def _ack_pdu(msg: Message, a: bytes) -> None:
    """Simple ACK (type 2) or complex ACK (type 3, possibly segmented)."""
    if len(a) < 3:
        raise Malformed("short ACK")
    complex_ack = a[0] >> 4 == 3
    msg.invoke_id = a[1]
    off = 2
    if complex_ack:
        msg.segmented, msg.more_follows = bool(a[0] & 0x08), bool(a[0] & 0x04)
        if msg.segmented:
            if len(a) < 5:
                raise Malformed("short segmented ACK")
            msg.segment_seq = a[2]
            off = 4
    msg.service_code = a[off]
    msg.service = CONFIRMED.get(a[off], (f"confirmed_service_{a[off]}", "other"))[0]
    if complex_ack and not msg.segmented:
        _complex_ack(msg, a, off + 1)


def _segment_ack_pdu(msg: Message, a: bytes) -> None:
    if len(a) < 4:
        raise Malformed("short segment ACK")
    msg.invoke_id, msg.segment_seq = a[1], a[2]


def _error_pdu(msg: Message, a: bytes) -> None:
    if len(a) < 3:
        raise Malformed("short error")
    msg.invoke_id, msg.service_code = a[1], a[2]
    msg.service = CONFIRMED.get(a[2], (f"confirmed_service_{a[2]}", "other"))[0]
    _error(msg, a, 3)


def _reject_abort_pdu(msg: Message, a: bytes) -> None:
    if len(a) < 3:
        raise Malformed("short reject/abort")
    reject = a[0] >> 4 == 6
    msg.invoke_id = a[1]
    msg.service = "reject" if reject else "abort"
    msg.result_code = name_of("reject_reason" if reject else "abort_reason", a[2])


# by PDU type: confirmed, unconfirmed, simple ACK, complex ACK, segment ACK, error, reject, abort
_PDU_READERS = (_confirmed_pdu, _unconfirmed_pdu, _ack_pdu, _ack_pdu, _segment_ack_pdu, _error_pdu,
                _reject_abort_pdu, _reject_abort_pdu)


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


# --- service parameters -----------------------------------------------------------------------

def _property_request(msg: Message, a: bytes, off: int) -> None:
    """ReadProperty / WriteProperty (with the value written)."""
    ref, off = single_property(a, off, "property request")
    if msg.service_code == 15:
        t3 = _context(a, off, 3)
        if t3 and t3.opening:
            ref.values, off = _values_until_close(a, t3.end, 3)
    msg.properties.append(ref)


def _property_list_request(msg: Message, a: bytes, off: int) -> None:
    """ReadPropertyMultiple / WritePropertyMultiple (with the values written)."""
    property_list(a, off, msg.properties, 0, write_value if msg.service_code == 16 else None)


def _communication_control(msg: Message, a: bytes, off: int) -> None:
    """DeviceCommunicationControl: duration, enable / disable, password."""
    t = _context(a, off, 0)
    if t:
        msg.time_duration, off = _uint(a, t), t.end
    t = _context(a, off, 1)
    if t:
        msg.device_state, off = DCC_STATES.get(_uint(a, t), str(_uint(a, t))), t.end
    t = _context(a, off, 2)
    if t:
        msg.password = character_string(a[t.start:t.end])


def _reinitialize(msg: Message, a: bytes, off: int) -> None:
    """ReinitializeDevice: the state asked for and the password."""
    t = _context(a, off, 0)
    if t:
        msg.device_state, off = REINIT_STATES.get(_uint(a, t), str(_uint(a, t))), t.end
    t = _context(a, off, 1)
    if t:
        msg.password = character_string(a[t.start:t.end])


def _object_first(msg: Message, a: bytes, off: int) -> None:
    """File services and DeleteObject: the object comes first."""
    t = read_tag(a, off)
    if not t.context and t.number == 12:
        msg.object_id = _object_id(a, t)


_REQUEST_PARAMETERS = {12: _property_request, 15: _property_request,
                       14: _property_list_request, 16: _property_list_request,
                       17: _communication_control, 20: _reinitialize,
                       6: _object_first, 7: _object_first, 11: _object_first}


def _complex_ack(msg: Message, a: bytes, off: int) -> None:
    code = msg.service_code
    if code == 12:                                   # ReadProperty-ACK
        ref, off = single_property(a, off, "ReadProperty-ACK")
        t3 = _context(a, off, 3)
        if t3 is None or not t3.opening:
            raise Malformed("ReadProperty-ACK value")
        ref.values, _ = _values_until_close(a, t3.end, 3)
        msg.properties.append(ref)
    elif code == 14:                                 # ReadPropertyMultiple-ACK
        property_list(a, off, msg.properties, 2, read_result)
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
    key = (src, msg.source_network, msg.source_address, msg.invoke_id)
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
                   service_code=msg.service_code, invoke_id=msg.invoke_id, segmented=True,
                   source_network=msg.source_network, source_address=msg.source_address)
    _complex_ack(done, whole, 0)
    return done
