"""SZL (System-Zustandsliste, the S7 system status list) read through the user-data "Read SZL"
function: which list a request asks for, the reply reassembled from its user-data fragments,
and the identity it gives (SZL 0x0011: order number and firmware; 0x001C: PLC name, module,
plant designation, copyright, serial, model, memory-card serial, location designation)."""
from __future__ import annotations

import struct

from plantguard.protocols._header import header
from plantguard.protocols.base import cstr

MAX_SZL_REASSEMBLY = 1 << 16    # one SZL reply split over user-data fragments
SZL_FRAGMENTS = 8               # replies being reassembled per flow

# The data part of a user-data PDU starts with a return code, a transport size and a length;
# for Read SZL the SZL id and index follow (requests and the first reply fragment).
UD_DATA = header("UserDataData", ">", ("return_code", "B"), ("transport_size", "B"), ("length", "H"))
SZL_ID = header("SzlId", ">", ("szl_id", "H"), ("index", "H"))
# A whole reply body (after UD_DATA): the list's id and index, record length and count, records.
SZL_HEADER = SZL_ID.extend("SzlHeader", ("record_length", "H"), ("count", "H"))
RETURN_SUCCESS = 0xFF
SZL_RETURN = {0xFF: "Success", 0x0A: "Object does not exist", 0x05: "Invalid address", 0x01: "Hardware fault",
              0x03: "Accessing the object not allowed", 0x06: "Data type not supported",
              0x07: "Data type inconsistent"}
# SZL 0x001C ("component identification") record index -> identity key: 1 name of the PLC,
# 2 name of the module, 3 plant designation of the module, 4 copyright, 5 serial number of the
# module, 7 module type name, 8 serial number of the memory card, 0x0B location designation of
# the module (Siemens' SZL list; Wireshark's s7comm.szl.001c.* fields)
COMPONENT_KEYS = {1: "name", 2: "module", 3: "plant_id", 4: "copyright", 5: "serial", 7: "model",
                  8: "memory_card_serial", 0x0B: "location"}


def szl_request(data: bytes) -> tuple[int, int] | None:
    """(SZL id, index) a Read SZL request's data asks for."""
    if len(data) < UD_DATA.size + SZL_ID.size:
        return None
    return SZL_ID.struct.unpack_from(data, UD_DATA.size)


def szl_reply_header(data: bytes) -> tuple[int, int] | None:
    """(SZL id, index) of a reply's data (including its 4-byte data header)."""
    if len(data) < UD_DATA.size + SZL_ID.size:
        return None
    return SZL_ID.struct.unpack_from(data, UD_DATA.size)


def reassemble(st: dict, s7) -> bytes | None:
    """The SZL reply's data (after the 4-byte data header) once its last fragment arrived;
    `s7` is the user-data reply (an S7Pdu), `st` the flow's state."""
    body = s7.data[UD_DATA.size:] if len(s7.data) >= UD_DATA.size else b""
    frags = st.setdefault("szl_frags", {})
    if s7.durn and s7.last_unit:                     # more follows
        buf = frags.get(s7.durn, b"") + body
        frags[s7.durn] = buf if len(buf) <= MAX_SZL_REASSEMBLY else b""
        while len(frags) > SZL_FRAGMENTS:
            frags.pop(next(iter(frags)))
        return None
    if len(s7.data) >= 1 and s7.data[UD_DATA.offset.return_code] != RETURN_SUCCESS:
        frags.pop(s7.durn, None)
        return None
    return frags.pop(s7.durn, b"") + body if s7.durn else body


def identity_from_szl(body: bytes) -> dict:
    """Identity keys from a reassembled SZL reply body: id, index, record length, count, records."""
    if len(body) < SZL_HEADER.size:
        return {}
    h = SZL_HEADER.unpack_from(body)
    rec_len = h.record_length
    records = []
    off = SZL_HEADER.size
    for _ in range(min(h.count, 64)):
        if rec_len == 0 or off + rec_len > len(body):
            break
        records.append(body[off:off + rec_len])
        off += rec_len
    part = h.szl_id & 0x00FF
    ident: dict = {}
    if part == 0x11 and rec_len >= 28:
        ident.update(_module_identification(records))
    elif part == 0x1C and rec_len >= 34:
        for r in records:
            key = COMPONENT_KEYS.get(struct.unpack_from(">H", r, 0)[0])
            if key:
                text = cstr(r[2:34])
                if text:
                    ident[key] = text
        if "model" in ident or "module" in ident:          # the CPU type, else the module's name
            ident["product"] = ident.get("model") or ident["module"]
    if ident:
        ident["vendor"] = "Siemens"
    return ident


def _module_identification(records: list[bytes]) -> dict:
    """SZL 0x0011 records (index, 20-byte order number, then ausbg / ausbe version words)."""
    ident: dict = {}
    for r in records:
        index = struct.unpack_from(">H", r, 0)[0]
        if index == 0x0001:
            order = cstr(r[2:22])
            if order:
                ident["order_number"] = order
        elif index == 0x0007:
            ausbg, ausbe = r[24:26], r[26:28]
            if ausbg[0] == 0x56:          # 'V' + major, then minor and patch
                ident["firmware"] = f"V{ausbg[1]}.{ausbe[0]}.{ausbe[1]}"
    return ident
