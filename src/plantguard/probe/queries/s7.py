"""S7comm (ISO-on-TCP, TCP 102): a COTP connection to the CPU in rack 0 slot 2 (slot 1 when the
CPU refuses slot 2: a new connection, the first closed before), Setup Communication, then Read
SZL 0x0011 (module identification: order number, firmware) and 0x001C (component
identification: names, serial, plant id). A reply in several user-data fragments is followed
fragment by fragment, as the passive decoder reassembles them."""
from __future__ import annotations

import struct

from plantguard.probe.query import NEW_CONNECTION, Exchange, Query, Target

TPKT = struct.Struct(">BBH")              # version 3, reserved, length of the whole TPKT
COTP_DT = bytes([0x02, 0xF0, 0x80])       # LI 2, DT, last data unit
COTP_CR, COTP_CC = 0xE0, 0xD0
CALLING_TSAP = 0x0100                     # PG connection, rack 0 slot 0
CALLED_TSAPS = (0x0102, 0x0101)           # rack 0 slot 2 (S7-300/400), then slot 1 (S7-1200/1500 and others)
TPDU_SIZE_1024 = 0x0A
PDU_LENGTH = 480                          # what we propose; the SZL lists asked fit in it
S7_JOB, S7_ACK_DATA, S7_USERDATA = 0x01, 0x03, 0x07
SZL_LISTS = ((0x0011, 0x0000), (0x001C, 0x0000))
MAX_FOLLOW_UPS = 8                        # fragments followed per list: a device that never ends is not


def _tpkt(body: bytes) -> bytes:
    return TPKT.pack(3, 0, TPKT.size + len(body)) + body


def connection_request(called: int) -> bytes:
    params = (bytes([0xC0, 1, TPDU_SIZE_1024]) + bytes([0xC1, 2]) + CALLING_TSAP.to_bytes(2, "big")
              + bytes([0xC2, 2]) + called.to_bytes(2, "big"))
    fixed = bytes([COTP_CR]) + struct.pack(">HHB", 0, 1, 0)    # dst ref, src ref, class 0
    return _tpkt(bytes([len(fixed) + len(params)]) + fixed + params)


def _s7(rosctr: int, ref: int, param: bytes, data: bytes = b"") -> bytes:
    header = struct.pack(">BBHHHH", 0x32, rosctr, 0, ref & 0xFFFF, len(param), len(data))
    return _tpkt(COTP_DT + header + param + data)


def setup_communication(ref: int) -> bytes:
    # function 0xF0, reserved, max AmQ calling and called 1, PDU length
    return _s7(S7_JOB, ref, struct.pack(">BBHHH", 0xF0, 0, 1, 1, PDU_LENGTH))


def read_szl(ref: int, szl_id: int, index: int) -> bytes:
    # user-data head 00 01 12, 4 bytes follow: method request, type request + group CPU (4), Read SZL, sequence 0
    param = bytes([0x00, 0x01, 0x12, 0x04, 0x11, 0x44, 0x01, 0x00])
    return _s7(S7_USERDATA, ref, param, struct.pack(">BBHHH", 0xFF, 0x09, 4, szl_id, index))


def read_szl_next(ref: int, seq: int, durn: int) -> bytes:
    """The request for the next fragment of a reply: its sequence and data unit reference, no SZL."""
    param = bytes([0x00, 0x01, 0x12, 0x08, 0x12, 0x44, 0x01, seq, durn, 0, 0, 0])
    return _s7(S7_USERDATA, ref, param, bytes([0x0A, 0, 0, 0]))


def response_length(buf: bytes) -> int | None:
    return TPKT.unpack_from(buf)[2] if len(buf) >= TPKT.size else None


def _confirmed(resp: bytes | None) -> bool:
    """The reply to a connection request is a connection confirm (not a disconnect or nothing)."""
    return resp is not None and len(resp) >= 6 and resp[5] & 0xF0 == COTP_CC


def _s7_reply(resp: bytes | None) -> tuple[int, bytes] | None:
    """(ROSCTR, parameter) of an S7 reply in a COTP DT, or None."""
    if resp is None or len(resp) < 17 or resp[5] != 0xF0 or resp[7] != 0x32:
        return None
    rosctr, plen = resp[8], struct.unpack_from(">H", resp, 13)[0]
    head = 7 + (12 if rosctr in (2, S7_ACK_DATA) else 10)
    return rosctr, resp[head:head + plen]


def _setup_ok(resp: bytes | None) -> bool:
    if resp is None:               # a dry run: go on as if accepted
        return True
    reply = _s7_reply(resp)
    return reply is not None and reply[0] == S7_ACK_DATA and resp[17:19] == b"\x00\x00"


def _more_fragments(resp: bytes | None) -> tuple[int, int] | None:
    """(sequence, data unit reference) when a user-data reply says more fragments follow."""
    reply = _s7_reply(resp)
    if reply is None or reply[0] != S7_USERDATA or len(reply[1]) < 12:
        return None
    seq, durn, last_unit = reply[1][7], reply[1][8], reply[1][9]
    return (seq, durn) if durn and last_unit else None


def identity(t: Target) -> Exchange:
    ref = 1
    for attempt, called in enumerate(CALLED_TSAPS):
        if attempt:
            yield NEW_CONNECTION
        resp = yield connection_request(called)
        if resp is None or _confirmed(resp):     # None: a dry run, shown as if confirmed
            break
    else:
        return                                   # neither slot: no S7 session to ask in
    resp = yield setup_communication(ref)
    if not _setup_ok(resp):
        return
    for szl_id, index in SZL_LISTS:
        ref += 1
        resp = yield read_szl(ref, szl_id, index)
        for _ in range(MAX_FOLLOW_UPS):
            more = _more_fragments(resp)
            if more is None:
                break
            ref += 1
            resp = yield read_szl_next(ref, *more)


QUERIES = (
    Query(protocol="s7comm", name="szl-identity",
          title="COTP connect (rack 0 slot 2, else slot 1), Setup Communication, Read SZL 0x0011 and 0x001C",
          transport="tcp", port=102, exchange=identity, response_length=response_length,
          reads="order number, firmware, PLC and module name, serial, plant id, copyright"),
)
