"""OPC UA binary: Hello, OpenSecureChannel with SecurityPolicy None, GetEndpoints (which needs
no session), CloseSecureChannel. The GetEndpoints response names the server application (name,
application and product URIs) and every endpoint it offers with its security mode, policy and
user token types — what a defender wants to know, read without a session or a credential."""
from __future__ import annotations

import struct
import time

from plantguard.probe.query import Exchange, Query, Target
from plantguard.protocols._binary import Malformed
from plantguard.protocols.opcua.encoding import NONE_POLICY, UaReader, response_header

PORT = 4840
BUFFER = 65536
LIFETIME_MS = 60_000
HEADER = struct.Struct("<3scI")             # message type, chunk type, size
OPEN, GET_ENDPOINTS, CLOSE = 446, 428, 452  # request binary encoding ids
OPEN_RESPONSE = OPEN + 3
ISSUE, MODE_NONE = 0, 1
EPOCH_OFFSET = 11_644_473_600               # seconds from 1601-01-01 (UA DateTime) to 1970-01-01


# --- binary encoding (the reading side is protocols/opcua/encoding.py) ---------------------------

def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def string(s: str | None) -> bytes:
    if s is None:
        return struct.pack("<i", -1)
    raw = s.encode("utf-8")
    return struct.pack("<i", len(raw)) + raw


def type_id(numeric: int) -> bytes:
    return struct.pack("<BBH", 0x01, 0, numeric)          # four-byte NodeId, namespace 0


def request_header(handle: int) -> bytes:
    now = int((time.time() + EPOCH_OFFSET) * 10_000_000)
    return (b"\x00\x00" + struct.pack("<q", now) + u32(handle) + u32(0) + string(None)
            + u32(10_000) + b"\x00\x00\x00")            # null token, ..., timeout hint, no extra header


def chunk(kind: bytes, body: bytes) -> bytes:
    return HEADER.pack(kind, b"F", HEADER.size + len(body)) + body


def hello(url: str) -> bytes:
    return chunk(b"HEL", u32(0) + u32(BUFFER) + u32(BUFFER) + u32(0) + u32(0) + string(url))


def open_channel() -> bytes:
    security = u32(0) + string(NONE_POLICY) + struct.pack("<ii", -1, -1)   # channel 0, no certificates
    body = (type_id(OPEN) + request_header(1) + u32(0) + u32(ISSUE) + u32(MODE_NONE)
            + struct.pack("<i", 0) + u32(LIFETIME_MS))                     # empty client nonce
    return chunk(b"OPN", security + u32(1) + u32(1) + body)                  # sequence 1, request 1


def symmetric(kind: bytes, channel: int, token: int, seq: int, body: bytes) -> bytes:
    return chunk(kind, u32(channel) + u32(token) + u32(seq) + u32(seq) + body)   # request id = sequence


def get_endpoints(channel: int, token: int, url: str) -> bytes:
    body = type_id(GET_ENDPOINTS) + request_header(2) + string(url) + struct.pack("<ii", 0, 0)
    return symmetric(b"MSG", channel, token, 2, body)


def close_channel(channel: int, token: int) -> bytes:
    return symmetric(b"CLO", channel, token, 3, type_id(CLOSE) + request_header(3))


def channel_token(resp: bytes | None) -> tuple[int, int] | None:
    """(secure channel id, token id) of an OpenSecureChannel response, None for anything else."""
    if not resp or resp[:3] != b"OPN":
        return None
    try:
        r = UaReader(resp, HEADER.size + 4)
        r.string()                       # policy
        r.bytestring()
        r.bytestring()
        r.take(8)                        # sequence number, request id
        if r.numeric_node_id() != OPEN_RESPONSE:
            return None
        _, result = response_header(r)
        if result:
            return None
        r.u32()                          # server protocol version
        return r.u32(), r.u32()
    except Malformed:
        return None


def response_length(buf: bytes) -> int | None:
    return HEADER.unpack_from(buf)[2] if len(buf) >= HEADER.size else None


def no_reply(frame: bytes) -> bool:
    """CloseSecureChannel is answered by the server closing the connection (Part 6, 7.1.4)."""
    return frame[:3] == b"CLO"


# --- the query ---------------------------------------------------------------------------------

def endpoints(t: Target) -> Exchange:
    url = f"opc.tcp://{t.ip}:{PORT}"
    ack = yield hello(url)
    if ack is not None and ack[:3] != b"ACK":
        return                           # ERR: the server said no
    opened = yield open_channel()
    if opened is None:
        ids = (0, 0)                     # a dry run: show the frames with placeholder ids
    else:
        ids = channel_token(opened)
        if ids is None:
            return
    yield get_endpoints(*ids, url)
    yield close_channel(*ids)


QUERIES = (
    Query(protocol="opcua", name="endpoints",
          title="Hello, OpenSecureChannel (SecurityPolicy None), GetEndpoints, CloseSecureChannel",
          transport="tcp", port=PORT, exchange=endpoints, response_length=response_length, no_reply=no_reply,
          reads="application name, application and product URIs, endpoints (security mode, policy, user tokens)"),
)
