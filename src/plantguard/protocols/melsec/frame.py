"""SLMP / MC protocol frames (Mitsubishi Electric's message protocol of MELSEC Q, L, iQ-R and
iQ-F Ethernet ports), binary 3E and 4E, as the SLMP reference manual lays them out:

  3E request   50 00 | network u8 | PC u8 | dest I/O u16 | station u8 | length u16 | timer u16 |
               command u16 | subcommand u16 | data
  3E response  D0 00 | network | PC | I/O | station | length u16 | end code u16 | data
  4E           54 00 / D4 00 | serial u16 | 00 00 | the 3E fields from the network number on

All numbers little-endian; `length` counts the bytes after itself (timer onwards in requests,
end code onwards in responses). ASCII-coded frames carry the same fields as upper-case hex text
("5000" "00" "FF" "03FF" "00" "0018" "0010" "0401" "0000"), which parse_ascii turns into a
binary frame for the header and command (the ASCII device fields are not decoded)."""
from __future__ import annotations

from dataclasses import dataclass

from plantguard.protocols._header import header
from plantguard.protocols._pdustream import BAD, NEED_MORE

ROUTE = header("SlmpRoute", "<", ("network", "B"), ("pc", "B"), ("io", "H"), ("station", "B"),
               ("length", "H"))
REQUEST = ROUTE.extend("SlmpRequest", ("timer", "H"), ("command", "H"), ("subcommand", "H"))
RESPONSE = ROUTE.extend("SlmpResponse", ("end_code", "H"))
SUB_3E_REQUEST, SUB_3E_RESPONSE = b"\x50\x00", b"\xd0\x00"
SUB_4E_REQUEST, SUB_4E_RESPONSE = b"\x54\x00", b"\xd4\x00"
SUBHEADERS = {SUB_3E_REQUEST: (False, False), SUB_3E_RESPONSE: (True, False),
              SUB_4E_REQUEST: (False, True), SUB_4E_RESPONSE: (True, True)}
ASCII_SUBHEADERS = {b"5000": (False, False), b"D000": (True, False), b"5400": (False, True),
                    b"D400": (True, True)}
MAX_DATA = 8192          # the longest request data (960 words of batch write and headroom)
MAX_FRAME = 6 + ROUTE.size + MAX_DATA


@dataclass(slots=True)
class Frame:
    """One SLMP request or response."""
    response: bool
    four_e: bool             # 4E frame (with a serial number)
    serial: int | None
    network: int
    pc: int
    io: int
    station: int
    length: int
    command: int | None      # requests
    subcommand: int | None
    end_code: int | None     # responses (None when cut short)
    data: bytes
    ascii: bool = False


def _prefix(b: bytes) -> int:
    """Bytes before the route fields: 2 (3E) or 6 (4E); 0 when not a binary subheader."""
    kind = SUBHEADERS.get(bytes(b[:2]))
    if kind is None:
        return 0
    return 6 if kind[1] else 2


def frame_len(buf: bytes, off: int) -> int:
    """Bytes of the binary frame at `off` (NEED_MORE / BAD for _pdustream.split)."""
    view = buf[off:off + 6 + ROUTE.size]
    pre = _prefix(view)
    if not pre:
        return NEED_MORE if len(view) < 2 else BAD
    if len(view) < pre + ROUTE.size:
        return NEED_MORE
    length = ROUTE.unpack_from(view, pre).length
    if length < 2 or length > MAX_DATA + 6:
        return BAD
    return pre + ROUTE.size + length


def parse(b: bytes) -> Frame | None:
    """A binary frame from its first byte; None when shorter than its header."""
    pre = _prefix(b)
    if not pre:
        return None
    response, four_e = SUBHEADERS[bytes(b[:2])]
    serial = int.from_bytes(b[2:4], "little") if four_e and len(b) >= 4 else None
    if response:
        if len(b) < pre + ROUTE.size:
            return None
        r = ROUTE.unpack_from(b, pre)
        end = int.from_bytes(b[pre + ROUTE.size:pre + RESPONSE.size], "little") \
            if len(b) >= pre + RESPONSE.size else None
        return Frame(True, four_e, serial, r.network, r.pc, r.io, r.station, r.length, None, None, end,
                     bytes(b[pre + RESPONSE.size:]))
    if len(b) < pre + REQUEST.size:
        return None
    h = REQUEST.unpack_from(b, pre)
    return Frame(False, four_e, serial, h.network, h.pc, h.io, h.station, h.length, h.command, h.subcommand,
                 None, bytes(b[pre + REQUEST.size:]))


def plausible(b: bytes) -> bool:
    """Whole binary frames filling the payload: a subheader, 4E's zero bytes, a length that ends
    exactly at the payload's end, and (requests) a command the table knows with a subcommand of
    its form; (responses) room for the end code."""
    from plantguard.protocols.melsec.commands import COMMANDS
    off, n, seen = 0, len(b), 0
    while off < n and seen < 8:
        chunk = b[off:]
        pre = _prefix(chunk)
        if not pre or len(chunk) < pre + ROUTE.size + 2:
            return False
        response, four_e = SUBHEADERS[bytes(chunk[:2])]
        if four_e and chunk[4:6] != b"\x00\x00":
            return False
        size = frame_len(chunk, 0)
        if size <= 0 or size > len(chunk):
            return False
        if not response:
            if size < pre + REQUEST.size:
                return False
            h = REQUEST.unpack_from(chunk, pre)
            if h.command not in COMMANDS or h.subcommand & 0xFF00 not in (0x0000, 0x0080):
                return False
        off, seen = off + size, seen + 1
    return seen > 0 and off == n


def parse_ascii(b: bytes) -> Frame | None:
    """An ASCII-coded frame (hex text): the same fields as binary, each as big-endian hex digits;
    None when the text is not a whole ASCII frame."""
    kind = ASCII_SUBHEADERS.get(bytes(b[:4]))
    if kind is None:
        return None
    response, four_e = kind
    text = bytes(b).decode("ascii", "replace")
    at = 4
    serial = None
    if four_e:
        if text[8:12] != "0000":
            return None
        serial, at = _hex(text, 4, 4), 12
    fields = (("network", 2), ("pc", 2), ("io", 4), ("station", 2), ("length", 4))
    vals = {}
    for name, width in fields:
        v = _hex(text, at, width)
        if v is None:
            return None
        vals[name] = v
        at += width
    if at + vals["length"] != len(text):
        return None
    if response:
        end = _hex(text, at, 4)
        if end is None:
            return None
        return Frame(True, four_e, serial, vals["network"], vals["pc"], vals["io"], vals["station"], vals["length"],
                     None, None, end, bytes(b[at + 4:]), ascii=True)
    timer, command, sub = _hex(text, at, 4), _hex(text, at + 4, 4), _hex(text, at + 8, 4)
    if None in (timer, command, sub):
        return None
    return Frame(False, four_e, serial, vals["network"], vals["pc"], vals["io"], vals["station"], vals["length"],
                 command, sub, None, bytes(b[at + 12:]), ascii=True)


def plausible_ascii(b: bytes) -> bool:
    from plantguard.protocols.melsec.commands import COMMANDS
    f = parse_ascii(b) if len(b) <= 2 * MAX_FRAME else None
    return f is not None and (f.response or f.command in COMMANDS)


def _hex(text: str, at: int, width: int) -> int | None:
    part = text[at:at + width]
    if len(part) != width or any(c not in "0123456789ABCDEF" for c in part):
        return None
    return int(part, 16)
