"""HART-IP messages: the 8-byte header (version, message type, message id, status, sequence
number, byte count), the session initiate body, the token-passing HART PDU inside a message of
id 3 and the list of commands of a direct PDU (id 4), and HART packed ASCII.

Offsets and bit layouts are the HART-IP and HART data link specifications' (as tshark's
`hart_ip` dissector and the icsnpp-hart-ip analyzer read them)."""
from __future__ import annotations

from dataclasses import dataclass

from plantguard.protocols._header import header
from plantguard.protocols._pdustream import BAD, NEED_MORE

# byte_count counts the whole message, header included
HEADER = header("HartIpHeader", ">", ("version", "B"), ("msg_type", "B"), ("msg_id", "B"), ("status", "B"),
                ("sequence", "H"), ("byte_count", "H"))
SESSION_INITIATE = header("HartIpSessionInitiate", ">", ("master_type", "B"), ("inactivity_timer", "I"))
AUDIT_REQUEST = header("HartIpAuditRequest", ">", ("start_record", "B"), ("records", "B"))
VERSIONS = frozenset({1, 2})
MSG_REQUEST, MSG_RESPONSE, MSG_PUBLISH, MSG_ERROR, MSG_NAK = 0, 1, 2, 3, 15
MESSAGE_TYPES = {MSG_REQUEST: "Request", MSG_RESPONSE: "Response", MSG_PUBLISH: "Publish", MSG_ERROR: "Error",
                 MSG_NAK: "NAK"}
# message id 5 is Read Audit Log (HART-IP 1.1; the icsnpp traces carry it as 5)
ID_SESSION_INITIATE, ID_SESSION_CLOSE, ID_KEEP_ALIVE, ID_TOKEN_PASSING, ID_DIRECT, ID_AUDIT = 0, 1, 2, 3, 4, 5
MESSAGE_IDS = {ID_SESSION_INITIATE: "Session Initiate", ID_SESSION_CLOSE: "Session Close",
               ID_KEEP_ALIVE: "Keep Alive", ID_TOKEN_PASSING: "Token-Passing PDU", ID_DIRECT: "Direct PDU",
               ID_AUDIT: "Read Audit Log"}
MASTER_TYPES = {0: "secondary host", 1: "primary host"}
MAX_MESSAGE = 8 + 2048        # a HART-IP message: the header and at most a few PDUs' worth of data

# HART PDU delimiter: bit 7 unique (long, 5-byte) address, bits 5-6 expansion bytes, bits 3-4
# physical layer (0 asynchronous, 1 synchronous), bits 0-2 frame type
DELIM_LONG = 0x80
FRAME_TYPES = {1: "burst (BACK)", 2: "master to field (STX)", 6: "field to master (ACK)"}
FRAME_BACK, FRAME_STX, FRAME_ACK = 1, 2, 6
EXTENDED_COMMAND = 31         # its first two data bytes carry a 16-bit command number


@dataclass(slots=True)
class Message:
    version: int
    msg_type: int
    msg_id: int
    status: int
    sequence: int
    byte_count: int
    body: bytes

    @property
    def from_server(self) -> bool:
        return self.msg_type != MSG_REQUEST


@dataclass(slots=True)
class Pdu:
    """One HART command: a token-passing frame or one command of a direct PDU."""
    command: int
    byte_count: int
    data: bytes                     # after the response code and status (replies), or all (requests)
    reply: bool
    response_code: int | None = None
    device_status: int | None = None
    delimiter: int | None = None    # token-passing only
    address: bytes = b""            # 1 byte (polling) or 5 bytes (unique)
    expansion: bytes = b""
    check: int | None = None
    wire_command: int | None = None  # the command byte on the wire (31 for an extended command)

    @property
    def frame_type(self) -> int | None:
        return None if self.delimiter is None else self.delimiter & 7

    @property
    def long_address(self) -> bool:
        return bool((self.delimiter or 0) & DELIM_LONG)

    def address_text(self) -> str:
        """The addressed device as HART names it: a polling address 0..63 or the 38-bit unique
        address (the master and burst bits of the first byte masked)."""
        if not self.address:
            return ""
        if len(self.address) == 1:
            return f"polling address {self.address[0] & 0x3F}"
        return "unique address " + bytes([self.address[0] & 0x3F]).hex() + self.address[1:].hex()


def plausible(b: bytes) -> bool:
    """Whole HART-IP messages filling the payload: version 1 or 2, a known message type and id,
    a byte count that covers at least the header and ends inside the payload, the last one
    exactly at its end."""
    off, n, seen = 0, len(b), 0
    while off < n and seen < 16:
        if n - off < HEADER.size:
            return False
        h = HEADER.unpack_from(b, off)
        if (h.version not in VERSIONS or h.msg_type not in MESSAGE_TYPES or h.msg_id not in MESSAGE_IDS
                or not HEADER.size <= h.byte_count <= MAX_MESSAGE or off + h.byte_count > n):
            return False
        if h.msg_id == ID_SESSION_INITIATE and h.msg_type in (MSG_REQUEST, MSG_RESPONSE) \
                and h.byte_count != HEADER.size + SESSION_INITIATE.size and h.status == 0:
            return False
        off, seen = off + h.byte_count, seen + 1
    return seen > 0 and off == n


def message_len(buf: bytes, off: int) -> int:
    """Bytes of the HART-IP message at `off` (NEED_MORE / BAD for _pdustream)."""
    if len(buf) - off < HEADER.size:
        return NEED_MORE
    h = HEADER.unpack_from(buf, off)
    if h.version not in VERSIONS or not HEADER.size <= h.byte_count <= MAX_MESSAGE:
        return BAD
    return h.byte_count


def parse_message(b: bytes) -> Message | None:
    if len(b) < HEADER.size:
        return None
    h = HEADER.unpack_from(b, 0)
    return Message(*h, bytes(b[HEADER.size:h.byte_count]))


def parse_token_passing(body: bytes) -> Pdu | None:
    """The HART frame of a token-passing PDU message: delimiter, address, expansion bytes,
    command, byte count, [response code, device status], data, check byte. None when cut short
    before the byte count."""
    if not body:
        return None
    delim = body[0]
    alen = 5 if delim & DELIM_LONG else 1
    exp = (delim >> 5) & 3
    at = 1 + alen + exp
    if len(body) < at + 2:
        return None
    command, count = body[at], body[at + 1]
    data = body[at + 2:at + 2 + count]
    check = body[at + 2 + count] if len(body) > at + 2 + count else None
    reply = delim & 7 in (FRAME_ACK, FRAME_BACK)
    pdu = Pdu(command, count, data, reply, delimiter=delim, address=bytes(body[1:1 + alen]),
              expansion=bytes(body[1 + alen:at]), check=check)
    if reply:
        _split_status(pdu)
    return _extended(pdu)


def parse_direct(body: bytes, reply: bool, limit: int = 64) -> tuple[int | None, int | None, list[Pdu]]:
    """(device status, extended status, commands) of a direct PDU: two status bytes, then per
    command a 16-bit command number, a byte count and the data (a reply's starts with its
    response code). At most `limit` commands."""
    if len(body) < 2:
        return None, None, []
    status, ext = body[0], body[1]
    out, at = [], 2
    while at + 3 <= len(body) and len(out) < limit:
        command = body[at] << 8 | body[at + 1]
        count = body[at + 2]
        data = body[at + 3:at + 3 + count]
        pdu = Pdu(command, count, data, reply, wire_command=command)
        if reply:
            pdu.response_code = data[0] if data else None
            pdu.data = data[1:]
        out.append(pdu)
        at += 3 + count
    return status, ext, out


def _split_status(pdu: Pdu) -> None:
    if len(pdu.data) >= 2:
        pdu.response_code, pdu.device_status, pdu.data = pdu.data[0], pdu.data[1], pdu.data[2:]
    elif pdu.data:
        pdu.response_code, pdu.data = pdu.data[0], b""


def _extended(pdu: Pdu) -> Pdu:
    """Command 31 carries the real (16-bit) command number in its first two data bytes."""
    pdu.wire_command = pdu.command
    if pdu.command == EXTENDED_COMMAND and len(pdu.data) >= 2:
        pdu.command = pdu.data[0] << 8 | pdu.data[1]
        pdu.data = pdu.data[2:]
    return pdu


def packed_ascii(b: bytes) -> str:
    """HART packed ASCII: every 3 bytes hold four 6-bit characters; codes 0x00-0x1F stand for
    '@'..'_' and 0x20-0x3F for ' '..'?'."""
    out = []
    for i in range(0, len(b) - 2, 3):
        v = b[i] << 16 | b[i + 1] << 8 | b[i + 2]
        for shift in (18, 12, 6, 0):
            c = (v >> shift) & 0x3F
            out.append(chr(c + 64 if c < 32 else c))
    return "".join(out)
