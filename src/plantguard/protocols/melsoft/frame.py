"""MELSOFT frames (the engineering protocol of GX Works / GX Developer with MELSEC iQ-R, iQ-F
and Q controllers, TCP/UDP 5007 and the iQ-F direct ports 5560/5562): a 21-byte Ethernet header,
a command header, the command data, and (on CPUs with user authentication) a footer of typed
parameters (CRC32s, an authorisation token).

Offsets as the published MELSOFT Lua dissector (Nozomi Networks, Black Hat MEA 2023) reads them,
checked on every frame of the shared captures: the header's size field counts every byte after
the header; the command header is 24 bytes in requests, 26 in responses (a status word at +4);
the command data starts with the command code (big-endian), a packet reference and a data size
(little-endian). Frames without a footer (FX5 / older CPUs) leave the data size 0 and run their
data to the end of the frame."""
from __future__ import annotations

from dataclasses import dataclass

from plantguard.protocols._header import header
from plantguard.protocols._pdustream import BAD, NEED_MORE

# magic (0x57 request / 0xD7 response, second byte 00 on TCP, 01 on UDP and iQ-R), sequence,
# routing to the CPU (network, unit, I/O number as in MC protocol), then the size of the rest
ETHERNET = header("MelsoftEthernet", "<", ("magic", "2s"), ("sequence", "B"), ("r3", "6s"),
                  ("network", "B"), ("unit", "B"), ("io", "H"), ("r13", "6s"), ("size", "H"))
# the command code is written big-endian (0x1002 Remote Stop as 10 02), the rest little-endian
COMMAND_DATA = header("MelsoftCommandData", "<", ("code", "2s"), ("reference", "H"), ("data_size", "H"))
REQUEST_HEADER = 24      # command header bytes in a request (type 0x1C)
RESPONSE_HEADER = 26     # in a response (type 0x9C), the status word at +4
STATUS_AT = 4
REQUEST_MAGICS = frozenset({b"\x57\x00", b"\x57\x01"})
RESPONSE_MAGICS = frozenset({b"\xd7\x00", b"\xd7\x01"})
MAGICS = REQUEST_MAGICS | RESPONSE_MAGICS
ROUTE = b"\x11\x11"      # bytes 5-6 of every header seen (both directions, every CPU family)
REQUEST_TYPE, RESPONSE_TYPE = 0x1C, 0x9C
MAX_FRAME = ETHERNET.size + 0xFFFF
# discovery datagrams (UDP 5560, and ahead of a session on TCP 5007): 5A 00 00 kind (4 bytes),
# answered by DA 00 00 kind + data
DISCOVERY_REQUEST, DISCOVERY_RESPONSE = 0x5A, 0xDA


@dataclass(slots=True)
class Frame:
    """One MELSOFT frame."""
    response: bool
    sequence: int
    network: int
    unit: int
    io: int
    size: int
    header_type: int
    status: int | None       # responses: the command header's status (0 = normal)
    code: int | None         # None when the frame ends inside the command data header
    reference: int | None
    data_size: int | None
    data: bytes              # the command data after code/reference/size
    footer: bytes            # the typed parameters after the data (b"" when none)


def frame_len(buf: bytes, off: int) -> int:
    """Bytes of the MELSOFT frame at `off` (NEED_MORE / BAD for _pdustream.split)."""
    if buf[off:off + 1] in (b"\x5a", b"\xda"):
        # a discovery frame: the request is 4 bytes; the response has no length field and
        # comes alone in its segment or datagram, so it takes the rest
        if len(buf) - off < 4:
            return NEED_MORE
        if buf[off + 1] or buf[off + 2]:
            return BAD
        return 4 if buf[off] == DISCOVERY_REQUEST else min(len(buf) - off, 68)
    if len(buf) - off < ETHERNET.size:
        if bytes(buf[off:off + 2]) in MAGICS or len(buf) - off < 2:
            return NEED_MORE
        return BAD
    if bytes(buf[off:off + 2]) not in MAGICS:
        return BAD
    return ETHERNET.size + ETHERNET.unpack_from(buf, off).size


def plausible(b: bytes) -> bool:
    """Whole MELSOFT frames filling the payload: magic, the route bytes, a size that ends at the
    payload's end (or at the next frame) and a command header of the matching type."""
    off, n, seen = 0, len(b), 0
    while off < n and seen < 8:
        if n - off < ETHERNET.size + REQUEST_HEADER + COMMAND_DATA.size:
            return False
        magic = bytes(b[off:off + 2])
        if magic not in MAGICS or b[off + 5:off + 7] != ROUTE:
            return False
        end = off + ETHERNET.size + ETHERNET.unpack_from(b, off).size
        want = RESPONSE_TYPE if magic in RESPONSE_MAGICS else REQUEST_TYPE
        head = RESPONSE_HEADER if magic in RESPONSE_MAGICS else REQUEST_HEADER
        if end > n or end < off + ETHERNET.size + head + COMMAND_DATA.size or b[off + ETHERNET.size] != want:
            return False
        off, seen = end, seen + 1
    return seen > 0 and off == n


def plausible_discovery(b: bytes) -> bool:
    """A discovery datagram: 5A 00 00 kind (exactly 4 bytes) or DA 00 00 kind + up to 64 bytes."""
    if len(b) < 4 or b[1] != 0 or b[2] != 0:
        return False
    return (b[0] == DISCOVERY_REQUEST and len(b) == 4) or (b[0] == DISCOVERY_RESPONSE and len(b) <= 68)


def parse(b: bytes) -> Frame | None:
    """One frame from its first byte; None when shorter than the Ethernet and command headers."""
    magic = bytes(b[:2])
    if magic not in MAGICS or len(b) < ETHERNET.size:
        return None
    response = magic in RESPONSE_MAGICS
    h = ETHERNET.unpack_from(b, 0)
    ch = ETHERNET.size
    cd = ch + (RESPONSE_HEADER if response else REQUEST_HEADER)
    if len(b) < cd:
        return None
    status = int.from_bytes(b[ch + STATUS_AT:ch + STATUS_AT + 2], "big") if response else None
    if len(b) < cd + COMMAND_DATA.size:
        return Frame(response, h.sequence, h.network, h.unit, h.io, h.size, b[ch], status, None, None, None,
                     b"", b"")
    code_be, reference, data_size = COMMAND_DATA.unpack_from(b, cd)
    code = int.from_bytes(code_be, "big")
    start = cd + COMMAND_DATA.size
    data, footer = _split_footer(b, start, data_size)
    return Frame(response, h.sequence, h.network, h.unit, h.io, h.size, b[ch], status, code, reference,
                 data_size, data, footer)


def _split_footer(b: bytes, start: int, data_size: int) -> tuple[bytes, bytes]:
    """(data, footer): a footer follows a data size > 0 when its own size word counts exactly the
    bytes after it; otherwise the data runs to the end (frames of CPUs without authentication)."""
    end = start + data_size
    if data_size and end + 3 <= len(b) and int.from_bytes(b[end:end + 2], "little") == len(b) - end - 2:
        return bytes(b[start:end]), bytes(b[end:])
    return bytes(b[start:]), b""


def footer_parameters(footer: bytes) -> list[tuple[int, bytes]]:
    """(type, value) of the footer's parameters: size u16, count u8, count (type, size) pairs,
    then the values in order (0x42 authorisation token, 0x81/0x82 CRC32s)."""
    if len(footer) < 3:
        return []
    count = footer[2]
    pairs = footer[3:3 + 2 * count]
    at = 3 + 2 * count
    out = []
    for i in range(0, len(pairs) - 1, 2):
        ptype, size = pairs[i], pairs[i + 1]
        out.append((ptype, bytes(footer[at:at + size])))
        at += size
    return out

