"""A minimal, bounded ASN.1 BER reader (definite lengths only), enough for SNMP (read_tlv) and
ISO 9506 MMS (read_element, which also reads multi-byte tags).
Every function raises BerError on malformed input; nothing loops without a cap."""
from __future__ import annotations

MAX_OID_ARCS = 128          # longer OIDs are treated as malformed
MAX_SUBID_BYTES = 10        # a sub-identifier wider than 64 bits + slack is malformed


class BerError(ValueError):
    pass


def read_tlv(buf: bytes, off: int, end: int | None = None) -> tuple[int, int, int]:
    """(tag, value_start, value_end) of the element at `off`; the next element starts at
    value_end. Only single-byte tags and definite lengths (SNMP uses nothing else)."""
    if end is None:
        end = len(buf)
    if off + 2 > end:
        raise BerError("truncated header")
    tag = buf[off]
    if tag & 0x1F == 0x1F:
        raise BerError("multi-byte tag")
    n = buf[off + 1]
    off += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or off + k > end:
            raise BerError("bad length")
        n = int.from_bytes(buf[off:off + k], "big")
        off += k
    if off + n > end:
        raise BerError("length beyond buffer")
    return tag, off, off + n


def expect(buf: bytes, off: int, end: int, tag: int) -> tuple[int, int]:
    t, s, e = read_tlv(buf, off, end)
    if t != tag:
        raise BerError(f"expected tag 0x{tag:02x}, got 0x{t:02x}")
    return s, e


def to_int(b: bytes) -> int:
    if not b or len(b) > 9:
        raise BerError("bad integer")
    return int.from_bytes(b, "big", signed=True)


def to_uint(b: bytes) -> int:
    if not b or len(b) > 9:
        raise BerError("bad unsigned")
    return int.from_bytes(b, "big", signed=False)


def to_oid(b: bytes) -> str:
    if not b:
        raise BerError("empty oid")
    arcs: list[int] = []
    val = 0
    width = 0
    for i, byte in enumerate(b):
        val = (val << 7) | (byte & 0x7F)
        width += 1
        if width > MAX_SUBID_BYTES:
            raise BerError("oid sub-identifier too long")
        if byte & 0x80:
            if i == len(b) - 1:
                raise BerError("oid ends inside a sub-identifier")
            continue
        if not arcs:
            first = min(val // 40, 2)
            arcs += [first, val - 40 * first]
        else:
            arcs.append(val)
        if len(arcs) > MAX_OID_ARCS:
            raise BerError("oid too long")
        val = 0
        width = 0
    return ".".join(map(str, arcs))


def children(buf: bytes, start: int, end: int, limit: int = 256):
    """The elements inside a constructed value, at most `limit` of them."""
    off = start
    for _ in range(limit):
        if off >= end:
            return
        tag, s, e = read_tlv(buf, off, end)
        yield tag, s, e
        off = e


MAX_TAG_BYTES = 3           # tag numbers up to 2**14 - 1 (MMS services go to 79)


def read_element(buf: bytes, off: int, end: int | None = None) -> tuple[int, bool, int, int, int]:
    """(class, constructed, tag number, value_start, value_end) of the element at `off`, with
    multi-byte tag numbers (ISO 9506 numbers its services past 30: [44] kill is 0xBF 0x2C).
    Class is the top two bits of the first byte (0x80 context, 0x40 application, 0xC0
    private, 0 universal). Definite lengths only, as read_tlv."""
    if end is None:
        end = len(buf)
    if off + 2 > end:
        raise BerError("truncated header")
    first = buf[off]
    number = first & 0x1F
    off += 1
    if number == 0x1F:
        number = 0
        for i in range(MAX_TAG_BYTES):
            if off >= end:
                raise BerError("truncated tag")
            b = buf[off]
            off += 1
            number = (number << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        else:
            raise BerError("tag number too long")
    if off >= end:
        raise BerError("truncated header")
    n = buf[off]
    off += 1
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or off + k > end:
            raise BerError("bad length")
        n = int.from_bytes(buf[off:off + k], "big")
        off += k
    if off + n > end:
        raise BerError("length beyond buffer")
    return first & 0xC0, bool(first & 0x20), number, off, off + n


def elements(buf: bytes, start: int, end: int, limit: int = 256):
    """read_element over the elements inside a constructed value, at most `limit` of them."""
    off = start
    for _ in range(limit):
        if off >= end:
            return
        el = read_element(buf, off, end)
        yield el
        off = el[4]
