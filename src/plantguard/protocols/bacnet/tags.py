"""BACnet tagged values (ANSI/ASHRAE 135 clause 20.2): tag headers (application or context,
opening and closing tags, extended numbers and lengths), the primitive values they carry, and
the lists of values inside a constructed value."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from plantguard.protocols.bacnet.names import name_of

MAX_VALUES = 512          # application values decoded from one property value


class Malformed(ValueError):
    pass


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
    n = len(b)
    if off >= n:
        raise Malformed("tag past end")
    first = b[off]
    number, context, lvt = first >> 4, bool(first & 0x08), first & 0x07
    off += 1
    if number == 15:
        if off >= n:
            raise Malformed("short extended tag")
        number = b[off]
        off += 1
    if context and lvt in (6, 7):
        return Tag(number, True, lvt == 6, lvt == 7, 0, off, off)
    if not context and number == 1:           # application boolean: the value is in the tag
        return Tag(1, False, False, False, lvt, off, off)
    length = lvt
    if lvt == 5:
        if off >= n:
            raise Malformed("short length")
        length = b[off]
        off += 1
        if length == 254:
            length = struct.unpack_from(">H", b, off)[0] if off + 2 <= n else -1
            off += 2
        elif length == 255:
            length = struct.unpack_from(">I", b, off)[0] if off + 4 <= n else -1
            off += 4
    if length < 0 or off + length > n:
        raise Malformed("value past end")
    return Tag(number, context, False, False, length, off, off + length)


def _context(a: bytes, off: int, number: int) -> Tag | None:
    """The context tag `number` at off, or None when another tag (or the end) is there."""
    if off >= len(a):
        return None
    t = read_tag(a, off)
    return t if t.context and t.number == number and not t.closing else None


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
