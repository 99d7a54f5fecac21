"""FINS frames: the 10-byte FINS header, the command code and (in responses) the end code, and
the FINS/TCP framing around them ("FINS", length, command, error code)."""
from __future__ import annotations

from dataclasses import dataclass

from plantguard.protocols._header import header
from plantguard.protocols._pdustream import BAD, NEED_MORE

# ICF: bit 7 gateway used, bit 6 data type (1 = response), bit 0 response not required
FINS = header("FinsHeader", ">", ("icf", "B"), ("rsv", "B"), ("gct", "B"), ("dna", "B"), ("da1", "B"),
              ("da2", "B"), ("sna", "B"), ("sa1", "B"), ("sa2", "B"), ("sid", "B"))
COMMAND = FINS.extend("FinsCommand", ("mrc", "B"), ("src", "B"))
RESPONSE = COMMAND.extend("FinsResponse", ("mres", "B"), ("sres", "B"))
# FINS/TCP: `length` counts the bytes after itself (command, error code and the data)
FINS_TCP = header("FinsTcp", ">", ("magic", "4s"), ("length", "I"), ("command", "I"), ("error", "I"))
TCP_FRAMING = FINS_TCP.through("FinsTcpFraming", "length")
MAGIC = b"FINS"

ICF_GATEWAY, ICF_RESPONSE, ICF_NO_REPLY = 0x80, 0x40, 0x01
ICF_RESERVED = 0x3E              # bits 1-5, zero by the specification
MAX_FINS = 2012                  # the longest FINS frame (2000 data bytes after header and codes)
MAX_TCP = TCP_FRAMING.size + 8 + MAX_FINS

TCP_ERRORS = {
    0x00: "Normal", 0x01: "The header is not 'FINS'", 0x02: "The data length is too long",
    0x03: "The command is not supported", 0x20: "All connections are in use",
    0x21: "The specified node is already connected",
    0x22: "Attempt to access a protected node from an unspecified IP address",
    0x23: "The client FINS node address is out of range",
    0x24: "The same FINS node address is being used by the client and server",
    0x25: "All the node addresses available for allocation have been used",
}


@dataclass(slots=True)
class Frame:
    """One FINS command or response (the FINS/TCP fields when it came in a FINS/TCP frame)."""
    icf: int
    rsv: int
    gct: int
    dna: int
    da1: int
    da2: int
    sna: int
    sa1: int
    sa2: int
    sid: int
    code: int                 # MRC << 8 | SRC
    mres: int | None          # responses: the end code bytes (None when cut short)
    sres: int | None
    data: bytes               # after the command code (commands) or end code (responses)

    @property
    def response(self) -> bool:
        return bool(self.icf & ICF_RESPONSE)


def parse_fins(b: bytes) -> Frame | None:
    """A FINS frame from its first byte; None when shorter than header + command code."""
    if len(b) < COMMAND.size:
        return None
    h = COMMAND.unpack_from(b, 0)
    code = h.mrc << 8 | h.src
    if h.icf & ICF_RESPONSE:
        if len(b) < RESPONSE.size:
            return Frame(*h[:10], code, None, None, b"")
        return Frame(*h[:10], code, b[COMMAND.size], b[COMMAND.size + 1], bytes(b[RESPONSE.size:]))
    return Frame(*h[:10], code, None, None, bytes(b[COMMAND.size:]))


def plausible_fins(b: bytes) -> bool:
    """A FINS header as controllers send it: reserved byte and ICF bits 1-5 zero, gateway count
    0..7 (2 by the specification), a command code of the command table's
    main request codes, a length within the maximum frame."""
    if not COMMAND.size <= len(b) <= MAX_FINS:
        return False
    icf, rsv, gct = b[0], b[1], b[2]
    if icf & ICF_RESERVED or rsv != 0 or gct > 7:
        return False
    return b[10] in _MRCS and (not icf & ICF_RESPONSE or len(b) >= RESPONSE.size)


def tcp_frame_len(buf: bytes, off: int) -> int:
    """Bytes of the FINS/TCP frame starting at `off` (NEED_MORE / BAD for _pdustream.split)."""
    if len(buf) - off < TCP_FRAMING.size:
        return NEED_MORE
    magic, length = TCP_FRAMING.unpack_from(buf, off)
    if magic != MAGIC or not 8 <= length <= MAX_TCP - TCP_FRAMING.size:
        return BAD
    return TCP_FRAMING.size + length


def plausible_tcp(payload: bytes) -> bool:
    """Whole FINS/TCP frames filling the payload: the magic, a length that fits, a known command,
    an error code of the specification's, and a plausible FINS header in Frame Send."""
    off, n, seen = 0, len(payload), 0
    while off < n and seen < 8:
        if n - off < FINS_TCP.size:
            return False
        magic, length, command, error = FINS_TCP.unpack_from(payload, off)
        end = off + TCP_FRAMING.size + length
        if magic != MAGIC or length < 8 or end > n or command not in _TCP_COMMANDS or error not in TCP_ERRORS:
            return False
        if command == 2 and error == 0 and not plausible_fins(payload[off + FINS_TCP.size:end]):
            return False
        off, seen = end, seen + 1
    return seen > 0 and off == n


def tcp_parts(pdu: bytes):
    """(command, error code, body) of one whole FINS/TCP frame."""
    _magic, _length, command, error = FINS_TCP.unpack_from(pdu, 0)
    return command, error, bytes(pdu[FINS_TCP.size:])


_TCP_COMMANDS = frozenset({0, 1, 2, 3, 6})
_MRCS = frozenset({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0C, 0x21, 0x22, 0x23, 0x26})
