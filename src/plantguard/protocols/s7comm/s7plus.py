"""S7comm-plus (protocol id 0x72; S7-1200 / S7-1500 with TIA Portal): the frame header and
trailer, the opcode / function / sequence / session of a message's first frame (after the
integrity part of V2 and V3), one operation per request, and the PLC's identity from its Create
Object response (the session's version string "1;6ES7 214-1HE30-0XB0 ;V2.2": order number and
firmware, in clear before any session is set up)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from plantguard.model import Observation, Packet
from plantguard.protocols._header import header
from plantguard.protocols.s7comm.cotp import NAME, service

S7P_PROTOCOL = 0x72
# A frame is header, data, then a trailer of the same layout with data length 0 (on the last
# frame of a message only).
S7P_HEADER = header("S7pHeader", ">", ("protocol", "B"), ("version", "B"), ("data_length", "H"))
# The start of a message's data (after the integrity part, when there is one); requests go on
# with the session id.
S7P_FRAME = header("S7pFrame", ">", ("opcode", "B"), ("reserved", "H"), ("function", "H"), ("reserved2", "H"),
                   ("seq", "H"))
S7P_REQUEST = S7P_FRAME.extend("S7pRequest", ("session", "I"))
INTEGRITY_DIGEST = 0x20         # V2/V3: digest length byte, then the 32-byte digest
INTEGRITY_SIZE = 1 + INTEGRITY_DIGEST
REQUEST = 0x31
NOTIFICATION = 0x33

CREATE_OBJECT = 0x04CA
# The server session's version string in a Create Object response: "<n>;<order number> ;V<firmware>"
_SESSION_VERSION = re.compile(rb"\d;(6[A-Z]{2}\d ?\d{3}-[0-9A-Z]{5}-[0-9A-Z]{4}) ?;V(\d{1,3}(?:\.\d{1,3}){1,2})")

S7P_OPCODES = {0x31: "Request", 0x32: "Response", 0x33: "Notification", 0x02: "Response2"}
S7P_FUNCTIONS = {
    0x04BB: ("Explore", "read"), 0x04CA: ("Create Object", "other"), 0x04D4: ("Delete Object", "other"),
    0x04F2: ("Set Variable", "write"), 0x04FC: ("Get Variable", "read"), 0x0506: ("Add Link", "other"),
    0x051A: ("Remove Link", "other"), 0x0524: ("Get Link", "read"), 0x0542: ("Set Multi Variables", "write"),
    0x054C: ("Get Multi Variables", "read"), 0x0556: ("Begin Sequence", "other"),
    0x0560: ("End Sequence", "other"), 0x056B: ("Invoke", "other"),
    0x057C: ("Set Var Sub Streamed", "write"), 0x0586: ("Get Var Sub Streamed", "read"),
    0x0590: ("Get Variables Address", "read"), 0x059A: ("Abort", "other"), 0x05A9: ("Error", "other"),
    0x05B3: ("Init SSL", "auth"),
}


@dataclass(slots=True)
class S7PlusPdu:
    version: int
    opcode: int | None
    function: int | None
    seq: int | None
    session: int | None
    complete: bool             # trailer seen (the last fragment of a message)
    continuation: bool         # a later fragment: no header fields of its own
    identity: dict | None = None   # order number / firmware a Create Object response names


def parse_s7plus(b: bytes, st: dict | None = None, request: bool = True) -> S7PlusPdu | None:
    """Header fields of one S7comm-plus frame. A message longer than the PDU size comes in
    several frames; only the first carries opcode and function, only the last the trailer."""
    if len(b) < S7P_HEADER.size or b[0] != S7P_PROTOCOL:
        return None
    h = S7P_HEADER.unpack_from(b)
    end = S7P_HEADER.size + h.data_length
    body = b[S7P_HEADER.size:end]
    trailer = b[end:end + S7P_HEADER.size]
    complete = False
    if len(trailer) == S7P_HEADER.size:
        t = S7P_HEADER.unpack_from(trailer)
        complete = t.protocol == S7P_PROTOCOL and t.data_length == 0
    key = "s7p_more_c2s" if request else "s7p_more_s2c"
    continuation = bool(st and st.get(key))
    if st is not None:
        st[key] = not complete
    pdu = S7PlusPdu(h.version, None, None, None, None, complete, continuation)
    if continuation:
        return pdu
    off = 0
    if h.version in (2, 3) and len(body) >= INTEGRITY_SIZE and body[0] == INTEGRITY_DIGEST:
        off = INTEGRITY_SIZE
    if off >= len(body):
        return pdu
    pdu.opcode = body[off]
    if pdu.opcode in (0x31, 0x32, 0x02) and off + S7P_FRAME.size <= len(body):
        f = S7P_FRAME.unpack_from(body, off)
        pdu.function, pdu.seq = f.function, f.seq
        if pdu.opcode == REQUEST and off + S7P_REQUEST.size <= len(body):
            pdu.session = S7P_REQUEST.unpack_from(body, off).session
        elif pdu.function == CREATE_OBJECT:
            m = _SESSION_VERSION.search(body)
            if m:
                pdu.identity = {"order_number": m.group(1).decode(), "firmware": "V" + m.group(2).decode(),
                                "vendor": "Siemens"}
    return pdu


def _observe_s7plus(pkt: Packet, p: S7PlusPdu, request: bool) -> list[Observation]:
    out = service(pkt, request, "s7comm-plus", version=str(p.version))
    if p.opcode == REQUEST and not p.continuation:
        name, category = S7P_FUNCTIONS.get(p.function, (f"Function 0x{p.function:04x}", "other")) \
            if p.function is not None else ("Request", "other")
        detail = f"S7comm-plus V{p.version}"
        if p.session:
            detail += f" session 0x{p.session:08x}"
        out.append(pkt.observe("operation", NAME, subject="dst", category=category,
                               code=p.function if p.function is not None else p.opcode, name=name, detail=detail))
    elif p.identity and not request:
        out.append(pkt.observe("identity", NAME, subject="src", **p.identity))
    return out
