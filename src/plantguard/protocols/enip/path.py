"""CIP paths: the padded EPATH of a request (class / instance / attribute logical segments, the
ANSI extended symbolic segment that names a Logix tag, port and data segments skipped), cached
by its bytes because a plant repeats the same few paths; and the port segments of an Unconnected
Send route path, as text."""
from __future__ import annotations

from plantguard.protocols.base import printable, u16le, u32le

SYMBOLIC = 0x91            # ANSI extended symbolic segment
SIMPLE_DATA = 0x80         # simple data segment
LOGICAL_SIZES = {0: 1, 1: 2, 2: 4}   # logical segment format -> value bytes after the segment byte

_PATHS: dict[bytes, tuple] = {}   # request path -> what _parse_path found (paths repeat a lot)
_PATHS_MAX = 4096


def path_fields(path: bytes) -> tuple:
    """(class, instance, attribute, symbol, classes) of a request path, cached by its bytes;
    `classes` is every class segment (some paths name two objects), `symbol` the tag name."""
    path = bytes(path)
    found = _PATHS.get(path)
    if found is None:
        found = _parse_path(path)
        if len(_PATHS) >= _PATHS_MAX:
            _PATHS.clear()
        _PATHS[path] = found
    return found


def _parse_path(path: bytes) -> tuple:
    off, classes = 0, []
    class_id = instance_id = attribute_id = symbol = None
    while off < len(path):
        seg = path[off]
        if seg == SYMBOLIC:
            if off + 2 > len(path):
                break
            size = path[off + 1]
            name = printable(path[off + 2:off + 2 + size], 128)
            symbol = name if symbol is None else f"{symbol}.{name}"
            off += 2 + size + (size & 1)
            continue
        if seg & 0xE0 == 0x20:                # logical segment: type in bits 2-4, format in 0-1
            found = _logical_value(path, off, seg & 0x03)
            if found is None:
                break
            value, off = found
            kind = (seg >> 2) & 0x07
            if kind == 0:
                classes.append(value)
                if class_id is None:
                    class_id = value
            elif kind == 1 and instance_id is None:
                instance_id = value
            elif kind == 4 and attribute_id is None:
                attribute_id = value
            continue
        if seg & 0xE0 == 0x00:                # port segment (in a routed request path)
            off += 2 if not seg & 0x10 else 2 + (path[off + 1] if off + 1 < len(path) else 0)
            continue
        if seg == SIMPLE_DATA and off + 1 < len(path):
            off += 2 + 2 * path[off + 1]
            continue
        break
    return class_id, instance_id, attribute_id, symbol, tuple(classes)


def _logical_value(path: bytes, off: int, fmt: int) -> tuple[int, int] | None:
    """(value, offset after the segment) of a logical segment of format `fmt` (8, 16 or 32-bit
    value; the wider ones after a pad byte), None when it does not fit or has another format."""
    size = LOGICAL_SIZES.get(fmt)
    if size is None:
        return None
    if size == 1:
        if off + 2 > len(path):
            return None
        return path[off + 1], off + 2
    if off + 2 + size > len(path):
        return None
    return (u16le if size == 2 else u32le)(path, off + 2)[0], off + 2 + size


def route_text(path: bytes) -> str | None:
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
