"""BACnet property access: the one property of ReadProperty / WriteProperty and of the
ReadProperty-ACK, and the property lists of ReadPropertyMultiple / WritePropertyMultiple
requests and ReadPropertyMultiple-ACKs, which share one shape and one walker (property_list)."""
from __future__ import annotations

from dataclasses import dataclass

from plantguard.protocols.bacnet.tags import (
    Malformed,
    _context,
    _object_id,
    _uint,
    _values_until_close,
    read_tag,
)

MAX_RESULTS = 256         # property results read from one ReadPropertyMultiple


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


def single_property(a: bytes, off: int, what: str) -> tuple[PropertyRef, int]:
    """Object [0], property [1] and the optional array index [2] (ReadProperty, WriteProperty,
    ReadProperty-ACK); returns the reference and the offset after it."""
    t0 = _context(a, off, 0)
    t1 = _context(a, t0.end, 1) if t0 else None
    if t1 is None:
        raise Malformed(what)
    otype, inst = _object_id(a, t0)
    ref = PropertyRef(otype, inst, _uint(a, t1))
    off = t1.end
    t2 = _context(a, off, 2)
    if t2:
        ref.array_index, off = _uint(a, t2), t2.end
    return ref, off


def property_list(a: bytes, off: int, out: list[PropertyRef], property_tag: int, entry=None) -> int:
    """The lists of ReadPropertyMultiple / WritePropertyMultiple requests and of the
    ReadPropertyMultiple-ACK. Per object: its id [0], then [1] ... [/1] holding entries of a
    property id [property_tag] (0 in requests, 2 in ACKs), an optional array index
    [property_tag + 1] and, for writes and results, what entry(a, off, ref) reads (it returns
    the offset after it). Appends one PropertyRef per entry to `out` and returns the offset
    after the last object; MAX_RESULTS objects and entries per object at most."""
    index_tag = property_tag + 1
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
            if not (t.context and t.number == property_tag):
                raise Malformed("property list entry")
            ref = PropertyRef(otype, inst, _uint(a, t))
            off = t.end
            ti = _context(a, off, index_tag)
            if ti and not ti.opening:
                ref.array_index, off = _uint(a, ti), ti.end
            if entry is not None:
                off = entry(a, off, ref)
            out.append(ref)
    return off


def write_value(a: bytes, off: int, ref: PropertyRef) -> int:
    """A WritePropertyMultiple entry's value [2] ... [/2] and optional priority [3]."""
    t2 = _context(a, off, 2)
    if t2 and t2.opening:
        ref.values, off = _values_until_close(a, t2.end, 2)
    t3 = _context(a, off, 3)
    if t3:
        off = t3.end
    return off


def read_result(a: bytes, off: int, ref: PropertyRef) -> int:
    """A ReadPropertyMultiple-ACK entry's value [4] ... [/4] or error [5] ... [/5]."""
    tv = read_tag(a, off)
    if tv.context and tv.opening and tv.number == 4:
        ref.values, off = _values_until_close(a, tv.end, 4)
    elif tv.context and tv.opening and tv.number == 5:
        ref.error = True
        _vals, off = _values_until_close(a, tv.end, 5)
    else:
        raise Malformed("property access result")
    return off
