"""Modbus/TCP: Read Device Identification (function 43, MEI type 14), regular objects, with the
unit ids passive traffic saw (0xFF, the Modbus/TCP "no unit" value, when none was seen)."""
from __future__ import annotations

import struct

from plantguard.probe.query import Exchange, Query, Target

MEI_DEVICE_ID = 0x0E
READ_REGULAR, READ_BASIC = 2, 1
MAX_MORE = 8          # "more follows" rounds per unit: a device that never stops is not followed
MAX_UNITS = 4


def request(transaction: int, unit: int, read_code: int, object_id: int) -> bytes:
    pdu = bytes([0x2B, MEI_DEVICE_ID, read_code, object_id])
    return struct.pack(">HHHB", transaction & 0xFFFF, 0, len(pdu) + 1, unit) + pdu


def response_length(buf: bytes) -> int | None:
    return 6 + struct.unpack_from(">H", buf, 4)[0] if len(buf) >= 6 else None


def _units(t: Target) -> list[int]:
    units = [u for u in t.hints.get("modbus_units") or () if isinstance(u, int) and 0 <= u <= 255]
    return sorted(set(units))[:MAX_UNITS] or [0xFF]


def device_identification(t: Target) -> Exchange:
    transaction = 1
    for unit in _units(t):
        read_code, object_id = READ_REGULAR, 0
        for _ in range(MAX_MORE):
            resp = yield request(transaction, unit, read_code, object_id)
            transaction += 1
            if not resp or len(resp) < 9:
                break
            if resp[7] & 0x80:                       # exception: try the basic objects once
                if read_code == READ_BASIC:
                    break
                read_code, object_id = READ_BASIC, 0
                continue
            more, next_object = (resp[11], resp[12]) if len(resp) >= 13 else (0, 0)
            if more != 0xFF or next_object <= object_id:
                break
            object_id = next_object


QUERIES = (
    Query(protocol="modbus", name="device-id", title="Read Device Identification (43/14), regular objects",
          transport="tcp", port=502, exchange=device_identification, response_length=response_length,
          reads="vendor, product code, revision, product and model name"),
)
