"""BACnet/IP (UDP 47808): a unicast Who-Is limited to the device already known (else the whole
instance range), then, for the device instance the I-Am names (or the known one; on a dry run or
with no I-Am, the "this device" instance 4194303), ReadProperty of the device object's identity
properties, one request at a time. An Error, Reject or Abort for one property goes on to the
next; invoke ids increase."""
from __future__ import annotations

import struct

from plantguard.probe.query import Exchange, Query, Target
from plantguard.protocols.bacnet import Malformed, parse

BVLC_UNICAST = bytes([0x81, 0x0A])
NPDU_NO_REPLY, NPDU_EXPECTS_REPLY = bytes([0x01, 0x00]), bytes([0x01, 0x04])
UNCONFIRMED, CONFIRMED = 0x10, 0x00
WHO_IS, READ_PROPERTY = 0x08, 0x0C
MAX_INSTANCE = 4194303            # also the device object's "myself" instance in ReadProperty
DEVICE_TYPE = 8
MAX_APDU_1476 = 0x05              # no segmented reply accepted: identity strings fit in one APDU
# device-object properties: object-name, vendor-name, vendor-identifier, model-name,
# firmware-revision, application-software-version, description, location
PROPERTIES = (77, 121, 120, 70, 44, 12, 28, 58)


def _bvlc(npdu: bytes, apdu: bytes) -> bytes:
    body = npdu + apdu
    return BVLC_UNICAST + struct.pack(">H", 4 + len(body)) + body


def _context_unsigned(tag: int, value: int) -> bytes:
    n = max(1, (value.bit_length() + 7) // 8)
    return bytes([(tag << 4) | 0x08 | n]) + value.to_bytes(n, "big")


def who_is(low: int, high: int) -> bytes:
    return _bvlc(NPDU_NO_REPLY, bytes([UNCONFIRMED, WHO_IS]) + _context_unsigned(0, low)
                 + _context_unsigned(1, high))


def read_property(invoke_id: int, instance: int, prop: int) -> bytes:
    object_id = struct.pack(">I", (DEVICE_TYPE << 22) | instance)
    return _bvlc(NPDU_EXPECTS_REPLY, bytes([CONFIRMED, MAX_APDU_1476, invoke_id & 0xFF, READ_PROPERTY])
                 + b"\x0c" + object_id + _context_unsigned(1, prop))


def _known_instance(t: Target) -> int | None:
    v = t.hints.get("bacnet_device")
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_INSTANCE else None


def _i_am_instance(resp: bytes | None) -> int | None:
    if not resp:
        return None
    try:
        msg = parse(resp)
    except (Malformed, struct.error, IndexError, ValueError):
        return None
    inst = (msg.iam or {}).get("device_instance")
    return inst if isinstance(inst, int) and 0 <= inst < MAX_INSTANCE else None


def identity(t: Target) -> Exchange:
    known = _known_instance(t)
    low, high = (known, known) if known is not None else (0, MAX_INSTANCE)
    resp = yield who_is(low, high)
    instance = _i_am_instance(resp)
    if instance is None:
        instance = known if known is not None else MAX_INSTANCE
    for invoke_id, prop in enumerate(PROPERTIES, 1):
        yield read_property(invoke_id, instance, prop)      # whatever the answer, the next property


QUERIES = (
    Query(protocol="bacnet", name="device-identity",
          title="Who-Is (unicast), ReadProperty of the device object's name, vendor, model, firmware",
          transport="udp", port=47808, exchange=identity,
          reads="device instance, object name, vendor name and id, model, firmware, software, description, "
                "location"),
)
