"""Siemens S7comm and S7comm-plus over ISO-on-TCP (TPKT + COTP, TCP 102).

Observations: service (once per flow and protocol, with the COTP TSAPs when the connection
request was seen); operation per S7 job and user-data request and per S7comm-plus request
(category from the function: read/write variables, block upload/download and PI services,
PLC stop, SZL reads, clock, password); error for rejected jobs and user-data replies; identity
from SZL 0x0011 (order number, firmware) and 0x001C (PLC name, module, serial, plant id,
copyright) replies, reassembled when the reply comes in several user-data fragments.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import BAD, NEED_MORE, tcp_pdus
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.base import cstr, printable
from plantguard.util.arrays import bytes_hash, col, hash_keys, u16

NAME = "s7comm"

S7_PORT = 102
MAX_TPKT = 0xFFFF
MAX_PDUS_PER_SEGMENT = 128
MAX_COTP_REASSEMBLY = 1 << 16   # one S7 PDU split over COTP DT fragments
MAX_SZL_REASSEMBLY = 1 << 16    # one SZL reply split over user-data fragments
MAX_ITEMS = 64

COTP_TYPES = {0x0E: "CR Connection Request", 0x0D: "CC Connection Confirm", 0x08: "DR Disconnect Request",
              0x0C: "DC Disconnect Confirm", 0x0F: "DT Data", 0x01: "ED Expedited Data",
              0x06: "AK Data Acknowledgement", 0x02: "EA Expedited Data Acknowledgement",
              0x05: "RJ Reject", 0x07: "ER TPDU Error"}
COTP_CR, COTP_CC, COTP_DT = 0x0E, 0x0D, 0x0F

ROSCTR = {1: "Job", 2: "Ack", 3: "Ack-Data", 7: "User-Data"}
JOB, ACK, ACK_DATA, USERDATA = 1, 2, 3, 7

# job functions: (name, category)
FUNCTIONS = {
    0x00: ("CPU Services", "other"),
    0x04: ("Read Variable", "read"),
    0x05: ("Write Variable", "write"),
    0x1A: ("Request Download", "program"),
    0x1B: ("Download Block", "program"),
    0x1C: ("Download Ended", "program"),
    0x1D: ("Start Upload", "program"),
    0x1E: ("Upload", "program"),
    0x1F: ("End Upload", "program"),
    0x28: ("PLC Control", "control"),
    0x29: ("PLC Stop", "control"),
    0xF0: ("Setup Communication", "other"),
}
# PI services started with PLC Control (0x28): name -> (description, category)
PI_SERVICES = {
    "_INSE": ("Activate downloaded block", "program"),
    "_DELE": ("Delete block", "program"),
    "P_PROGRAM": ("PLC Start / Stop", "control"),
    "_MODU": ("PLC Copy Ram to Rom", "program"),
    "_GARB": ("Compress PLC memory", "program"),
    "_N_LOGIN_": ("Login", "auth"),
    "_N_LOGOUT": ("Logout", "auth"),
}
ERROR_CLASSES = {0x00: "No error", 0x81: "Application relationship error", 0x82: "Object definition error",
                 0x83: "No resources available", 0x84: "Error on service processing",
                 0x85: "Error on supplies", 0x87: "Access error"}
AREAS = {0x03: "SYSINFO", 0x05: "SYSFLAGS", 0x06: "ANAIN", 0x07: "ANAOUT", 0x1C: "C", 0x1D: "T",
         0x1E: "IEC counter", 0x1F: "IEC timer", 0x80: "P", 0x81: "I", 0x82: "Q", 0x83: "M", 0x84: "DB",
         0x85: "DI", 0x86: "L", 0x87: "V"}
# block type in a block file name: (short name, long name)
BLOCK_TYPES = {"08": ("OB", "Organization Block"), "09": ("CMOD", "Configuration Module"),
               "0A": ("DB", "Data Block"), "0B": ("SDB", "System Data Block"), "0C": ("FC", "Function"),
               "0D": ("SFC", "System Function"), "0E": ("FB", "Function Block"),
               "0F": ("SFB", "System Function Block")}
FILESYSTEMS = {"A": "Active", "P": "Passive", "B": "Active/Passive"}

# user-data function groups and their sub-functions: (name, category)
UD_GROUPS = {0x0: "Mode-transition", 0x1: "Programmer Commands", 0x2: "Cyclic Data", 0x3: "Block Functions",
             0x4: "CPU Functions", 0x5: "Security", 0x6: "PBC BSEND/BRECV", 0x7: "Time Functions",
             0xF: "NC Programming"}
UD_SUBFUNCTIONS = {
    0x1: {0x01: ("Block status", "diagnostic"), 0x02: ("Variable status", "read"),
          0x03: ("Output ISTACK", "diagnostic"), 0x04: ("Output BSTACK", "diagnostic"),
          0x05: ("Output LSTACK", "diagnostic"), 0x06: ("Time measurement", "diagnostic"),
          0x07: ("Force selection", "diagnostic"), 0x08: ("Modify variable", "write"),
          0x09: ("Force", "write"), 0x0A: ("Breakpoint", "control"), 0x0B: ("Exit HOLD", "control"),
          0x0C: ("Memory reset", "program"), 0x0D: ("Disable job", "other"), 0x0E: ("Enable job", "other"),
          0x0F: ("Delete job", "other"), 0x10: ("Read job list", "diagnostic"), 0x11: ("Read job", "diagnostic"),
          0x12: ("Replace job", "other"), 0x13: ("Block status v2", "diagnostic"),
          0x16: ("Flash LED", "diagnostic")},
    0x2: {0x01: ("Cyclic transfer", "read"), 0x04: ("Unsubscribe", "other"),
          0x05: ("Change driven transfer", "read"), 0x07: ("Change driven transfer modify", "read"),
          0x08: ("RDREC", "read")},
    0x3: {0x01: ("List blocks", "diagnostic"), 0x02: ("List blocks of type", "diagnostic"),
          0x03: ("Get block info", "diagnostic")},
    0x4: {0x01: ("Read SZL", "diagnostic"), 0x02: ("Message service", "diagnostic"),
          0x03: ("Diagnostic message", "diagnostic"), 0x05: ("ALARM_8 indication", "diagnostic"),
          0x06: ("NOTIFY indication", "diagnostic"), 0x07: ("ALARM_8 lock", "config"),
          0x08: ("ALARM_8 unlock", "config"), 0x09: ("SCAN indication", "diagnostic"),
          0x0B: ("ALARM ack", "other"), 0x0C: ("ALARM ack indication", "diagnostic"),
          0x0D: ("ALARM lock indication", "diagnostic"), 0x0E: ("ALARM unlock indication", "diagnostic"),
          0x11: ("ALARM_SQ indication", "diagnostic"), 0x12: ("ALARM_S indication", "diagnostic"),
          0x13: ("ALARM query", "diagnostic"), 0x16: ("NOTIFY_8 indication", "diagnostic")},
    0x5: {0x01: ("PLC password", "auth")},
    0x6: {0x01: ("BSEND/BRECV", "write")},
    0x7: {0x01: ("Read clock", "diagnostic"), 0x02: ("Set clock", "config"),
          0x03: ("Read clock (following)", "diagnostic"), 0x04: ("Set clock", "config")},
    0xF: {0x01: ("NC request download", "program"), 0x02: ("NC download block", "program"),
          0x03: ("NC continue download", "program"), 0x04: ("NC download ended", "program"),
          0x06: ("NC start upload", "program"), 0x07: ("NC upload", "program"),
          0x08: ("NC continue upload", "program")},
}
UD_GROUP_CATEGORY = {0x0: "diagnostic", 0x5: "auth", 0xF: "program"}
SZL_RETURN = {0xFF: "Success", 0x0A: "Object does not exist", 0x05: "Invalid address", 0x01: "Hardware fault",
              0x03: "Accessing the object not allowed", 0x06: "Data type not supported",
              0x07: "Data type inconsistent"}

# S7comm-plus
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
class Cotp:
    code: int                  # PDU type (high nibble of the type byte)
    tsaps: dict = field(default_factory=dict)  # "calling" / "called" for CR and CC
    eot: bool = True
    payload: bytes = b""       # DT user data


@dataclass(slots=True)
class S7Pdu:
    rosctr: int
    pdu_ref: int
    param: bytes
    data: bytes
    err_class: int | None = None
    err_code: int | None = None
    # user-data parameter fields
    method: int | None = None      # 0x11 request, 0x12 response
    type_group: int | None = None  # high nibble 4 = request, 8 = response; low nibble = function group
    subfunction: int | None = None
    seq: int | None = None
    durn: int | None = None        # data unit reference (fragmented replies)
    last_unit: int | None = None   # 0 = last fragment
    ud_error: int | None = None

    @property
    def function(self) -> int | None:
        if self.rosctr == USERDATA:
            return self.type_group
        return self.param[0] if self.param else None


@dataclass(slots=True)
class S7PlusPdu:
    version: int
    opcode: int | None
    function: int | None
    seq: int | None
    session: int | None
    complete: bool             # trailer seen (the last fragment of a message)
    continuation: bool         # a later fragment: no header fields of its own


# --- framing and signature -----------------------------------------------------------------

def frame_len(buf: bytes, off: int) -> int:
    if len(buf) - off < 4:
        return NEED_MORE
    if buf[off] != 3 or buf[off + 1] != 0:
        return BAD
    length = struct.unpack_from(">H", buf, off + 2)[0]
    return length if length >= 7 else BAD


def signature(payload: bytes) -> bool:
    """TPKT + COTP whose user data is S7comm (0x32) or S7comm-plus (0x72), or a COTP
    connection request/confirm with S7 TSAPs (rack/slot style or 'SIMATIC-...')."""
    if len(payload) < 7 or payload[0] != 3 or payload[1] != 0:
        return False
    length = struct.unpack_from(">H", payload, 2)[0]
    if length < 7:
        return False
    cotp = parse_cotp(payload[4:length])
    if cotp is None:
        return False
    if cotp.code == COTP_DT:
        return bool(cotp.payload) and cotp.payload[0] in (0x32, 0x72)
    if cotp.code in (COTP_CR, COTP_CC):
        return any(_s7_tsap(t) for t in cotp.tsaps.values())
    return False


def _s7_tsap(t: bytes) -> bool:
    return (len(t) == 2 and t[0] in (0x01, 0x02, 0x03, 0x10)) or t.startswith(b"SIMATIC")


# --- decode ----------------------------------------------------------------------------------

def decode(pkt: Packet) -> list[Observation]:
    out: list[Observation] = []
    request = is_request(pkt)
    for raw in tcp_pdus(pkt, frame_len, MAX_TPKT, MAX_PDUS_PER_SEGMENT):
        cotp = parse_cotp(raw[4:])
        if cotp is not None:
            out.extend(_observe_cotp(pkt, cotp, request))
    return out


def is_request(pkt: Packet) -> bool:
    """Towards port 102 (the port decides over the engine's guess when only one side has it)."""
    if (pkt.dport == S7_PORT) != (pkt.sport == S7_PORT):
        return pkt.dport == S7_PORT
    return pkt.from_client


def _observe_cotp(pkt: Packet, cotp: Cotp, request: bool) -> list[Observation]:
    st = pkt.state
    if cotp.code == COTP_CR and request:
        st["tsaps"] = {k: _tsap_text(v) for k, v in cotp.tsaps.items()}
        return []
    if cotp.code != COTP_DT:
        return []
    # reassemble an S7 PDU sent in several DT fragments (EOT on the last)
    key = "cotp_c2s" if request else "cotp_s2c"
    if not cotp.eot:
        buf = st.get(key, b"") + cotp.payload
        st[key] = buf if len(buf) <= MAX_COTP_REASSEMBLY else b""
        return []
    payload = st.pop(key, b"") + cotp.payload
    if not payload:
        return []
    if payload[0] == 0x32:
        s7 = parse_s7(payload)
        return _observe_s7(pkt, s7, request) if s7 is not None else []
    if payload[0] == 0x72:
        plus = parse_s7plus(payload, st, request)
        return _observe_s7plus(pkt, plus, request) if plus is not None else []
    return []


def _service(pkt: Packet, request: bool, name: str, **extra) -> list[Observation]:
    done = pkt.state.setdefault("services", set())
    if name in done:
        return []
    done.add(name)
    data = {"name": name, **extra}
    for k, v in pkt.state.get("tsaps", {}).items():
        data[f"{k}_tsap"] = v
    return [pkt.observe("service", NAME, subject="dst" if request else "src", **data)]


def _observe_s7(pkt: Packet, s7: S7Pdu, request: bool) -> list[Observation]:
    out = _service(pkt, request, "s7comm")
    if s7.rosctr == JOB:
        code, name, category, detail = describe_job(s7)
        out.append(_operation(pkt, request, category=category, code=code, name=name, detail=detail))
    elif s7.rosctr in (ACK, ACK_DATA):
        if s7.err_class:
            fn = s7.function
            code = (s7.err_class << 8) | (s7.err_code or 0)
            out.append(pkt.observe("error", NAME, subject="src", code=code,
                                   name=ERROR_CLASSES.get(s7.err_class, f"Error 0x{code:04x}"),
                                   function=fn, function_name=FUNCTIONS.get(fn, ("",))[0] if fn is not None else None))
    elif s7.rosctr == USERDATA:
        out.extend(_observe_userdata(pkt, s7))
    return out


def _operation(pkt: Packet, request: bool, **data) -> Observation:
    """An operation from the client (engineering station, HMI) to the PLC. During a download
    the PLC itself sends the Download Block / Download Ended jobs to the station: the
    operation is still the station's, on the PLC."""
    if request:
        return pkt.observe("operation", NAME, subject="dst", **data)
    return Observation("operation", NAME, pkt.capture, pkt.frame, pkt.ts, pkt.dst, pkt.src, pkt.dst_mac,
                       pkt.src_mac, pkt.l4, pkt.dport, pkt.sport, pkt.vlan, "dst", data)


def _observe_userdata(pkt: Packet, s7: S7Pdu) -> list[Observation]:
    out: list[Observation] = []
    group = (s7.type_group or 0) & 0x0F
    if (s7.type_group or 0) >> 4 == 4:          # type nibble 4: request (the method byte varies)
        if s7.durn and len(s7.data) <= 4:       # "send the next fragment": no new operation
            return out
        code, name, category, detail = describe_userdata(s7)
        out.append(pkt.observe("operation", NAME, subject="dst", category=category, code=code, name=name,
                               detail=detail))
        return out
    if s7.ud_error:
        out.append(pkt.observe("error", NAME, subject="src", code=s7.ud_error,
                               name=f"User-data error 0x{s7.ud_error:04x}",
                               function=s7.type_group, function_name=userdata_name(group, s7.subfunction)))
        return out
    if group == 0x4 and s7.subfunction == 0x01:
        data = _szl_reassemble(pkt.state, s7)
        if data is not None:
            ident = identity_from_szl(data)
            if ident:
                out.append(pkt.observe("identity", NAME, subject="src", **ident))
    return out


def _szl_reassemble(st: dict, s7: S7Pdu) -> bytes | None:
    """The SZL reply's data (after the 4-byte data header) once its last fragment arrived."""
    body = s7.data[4:] if len(s7.data) >= 4 else b""
    frags = st.setdefault("szl_frags", {})
    if s7.durn and s7.last_unit:                     # more follows
        buf = frags.get(s7.durn, b"") + body
        frags[s7.durn] = buf if len(buf) <= MAX_SZL_REASSEMBLY else b""
        while len(frags) > 8:
            frags.pop(next(iter(frags)))
        return None
    if len(s7.data) >= 1 and s7.data[0] != 0xFF:     # return code: not a success
        frags.pop(s7.durn, None)
        return None
    return frags.pop(s7.durn, b"") + body if s7.durn else body


def _observe_s7plus(pkt: Packet, p: S7PlusPdu, request: bool) -> list[Observation]:
    out = _service(pkt, request, "s7comm-plus", version=str(p.version))
    if p.opcode == 0x31 and not p.continuation:
        name, category = S7P_FUNCTIONS.get(p.function, (f"Function 0x{p.function:04x}", "other")) \
            if p.function is not None else ("Request", "other")
        detail = f"S7comm-plus V{p.version}"
        if p.session:
            detail += f" session 0x{p.session:08x}"
        out.append(pkt.observe("operation", NAME, subject="dst", category=category,
                               code=p.function if p.function is not None else p.opcode, name=name, detail=detail))
    return out


# --- COTP ------------------------------------------------------------------------------------

def parse_cotp(b: bytes) -> Cotp | None:
    """A COTP TPDU (TPKT header already removed)."""
    if len(b) < 2:
        return None
    li = b[0]
    if li < 1 or li + 1 > len(b):
        return None
    code = b[1] >> 4
    if code not in COTP_TYPES:
        return None
    if code == COTP_DT:
        if li < 2:
            return None
        return Cotp(code, eot=bool(b[2] & 0x80), payload=bytes(b[li + 1:]))
    cotp = Cotp(code)
    if code in (COTP_CR, COTP_CC) and li >= 6:
        off, end = 7, li + 1
        while off + 2 <= end:
            pcode, plen = b[off], b[off + 1]
            value = bytes(b[off + 2:off + 2 + plen])
            if pcode == 0xC1:
                cotp.tsaps["calling"] = value
            elif pcode == 0xC2:
                cotp.tsaps["called"] = value
            off += 2 + plen
    return cotp


def _tsap_text(t: bytes) -> str:
    if t and all(0x20 <= c < 0x7F for c in t):
        return t.decode("ascii")
    if len(t) == 2 and t[0] in (0x01, 0x02, 0x03):
        kind = {1: "PG", 2: "OP", 3: "S7 basic"}[t[0]]
        return f"0x{t.hex()} ({kind}, rack {t[1] >> 5}, slot {t[1] & 0x1F})"
    return "0x" + t.hex()


# --- S7comm ----------------------------------------------------------------------------------

def parse_s7(b: bytes) -> S7Pdu | None:
    if len(b) < 10 or b[0] != 0x32:
        return None
    rosctr = b[1]
    if rosctr not in ROSCTR:
        return None
    pdu_ref, plen, dlen = struct.unpack_from(">HHH", b, 4)
    hl = 12 if rosctr in (ACK, ACK_DATA) else 10
    if len(b) < hl:
        return None
    s7 = S7Pdu(rosctr, pdu_ref, bytes(b[hl:hl + plen]), bytes(b[hl + plen:hl + plen + dlen]))
    if hl == 12:
        s7.err_class, s7.err_code = b[10], b[11]
    if rosctr == USERDATA and len(s7.param) >= 8:     # head is 00 01 12 except in some pushes
        p = s7.param
        s7.method, s7.type_group, s7.subfunction, s7.seq = p[4], p[5], p[6], p[7]
        if len(p) >= 12:
            s7.durn, s7.last_unit = p[8], p[9]
            s7.ud_error = struct.unpack_from(">H", p, 10)[0]
    return s7


def describe_job(s7: S7Pdu) -> tuple[int, str, str, str]:
    p = s7.param
    fn = p[0] if p else -1
    name, category = FUNCTIONS.get(fn, (f"Function 0x{fn & 0xFF:02x}", "other"))
    detail = ""
    if fn in (0x04, 0x05):
        detail = _items_text(p)
    elif fn in (0x1A, 0x1B, 0x1C, 0x1D):
        fname = block_filename(p)
        if fname:
            detail = _block_text(fname)
    elif fn == 0x28:
        pi, args = pi_service(p)
        if pi:
            desc, category = PI_SERVICES.get(pi, (f"PI service {pi}", "control"))
            name = f"PLC Control {pi}"
            detail = f"{desc}" + (f" ({args})" if args else "")
    elif fn == 0x29:
        pi = plc_stop_name(p)
        detail = f"PI service {pi}" if pi else ""
    elif fn == 0xF0 and len(p) >= 8:
        detail = f"PDU length {struct.unpack_from('>H', p, 6)[0]}"
    return fn & 0xFF, name, category, detail


def _items_text(p: bytes) -> str:
    """Read/Write Variable items: count and the first item's area/address."""
    if len(p) < 2:
        return ""
    count = p[1]
    first = ""
    if len(p) >= 14 and p[2] == 0x12 and p[4] == 0x10:
        _ts, length, db, area = struct.unpack_from(">BHHB", p, 5)
        address = int.from_bytes(p[11:14], "big")
        where = AREAS.get(area, f"area 0x{area:02x}")
        if area == 0x84:
            where = f"DB{db}"
        first = f"; first {where} byte {address >> 3} length {length}"
    return f"items={count}{first}"


def block_filename(p: bytes) -> str | None:
    """The block file name ('_0A00001P') of a download/upload request parameter."""
    if len(p) < 9:
        return None
    n = p[8]
    name = p[9:9 + n]
    return name.decode("ascii", "replace") if name else None


def _block_text(fname: str) -> str:
    if len(fname) >= 9 and fname[0] == "_":
        btype = BLOCK_TYPES.get(fname[1:3], (f"type {fname[1:3]}",))[0]
        fs = FILESYSTEMS.get(fname[8], fname[8])
        return f"block {btype} {int(fname[3:8]) if fname[3:8].isdigit() else fname[3:8]} ({fs}) file {fname}"
    return f"file {printable(fname.encode())}"


def upload_fields(s7: S7Pdu) -> dict:
    """Upload/download fields of a job or its ack: status, session id, file name, block type,
    number and file system, block length."""
    p, fn = s7.param, s7.function
    f: dict = {}
    if fn is None or not 0x1A <= fn <= 0x1F:
        return f
    if s7.rosctr == JOB:
        if len(p) >= 8:
            f["status"] = p[1]
            f["session_id"] = struct.unpack_from(">I", p, 4)[0]
        name = block_filename(p) if fn != 0x1E and fn != 0x1F else None
        if name:
            f["filename"] = name
            if len(name) >= 9 and name[0] == "_":
                f["block_type"] = BLOCK_TYPES.get(name[1:3], (name[1:3], name[1:3]))[1]
                f["block_number"] = name[3:8]
                f["filesystem"] = FILESYSTEMS.get(name[8], name[8])
    elif s7.rosctr == ACK_DATA:
        if len(p) >= 2:
            f["status"] = p[1]
        if fn == 0x1D and len(p) >= 9:
            f["session_id"] = struct.unpack_from(">I", p, 4)[0]
            n = p[8]
            text = p[9:9 + n].decode("ascii", "replace")
            if text.isdigit():
                f["blocklength"] = int(text)
        elif fn == 0x1E and len(s7.data) >= 2:
            f["blocklength"] = struct.unpack_from(">H", s7.data, 0)[0]
    return f


def pi_service(p: bytes) -> tuple[str | None, str]:
    """(PI service name, its argument text) from a PLC Control parameter."""
    if len(p) < 11:
        return None, ""
    blen = struct.unpack_from(">H", p, 8)[0]
    args = p[10:10 + blen]
    off = 10 + blen
    if off >= len(p):
        return None, ""
    n = p[off]
    name = p[off + 1:off + 1 + n]
    return (printable(name) or None), printable(args)


def plc_stop_name(p: bytes) -> str | None:
    if len(p) < 7:
        return None
    n = p[6]
    return printable(p[7:7 + n]) or None


def userdata_name(group: int, sub: int | None) -> str:
    entry = UD_SUBFUNCTIONS.get(group, {}).get(sub)
    return entry[0] if entry else f"{UD_GROUPS.get(group, f'Group {group}')} 0x{(sub or 0):02x}"


def describe_userdata(s7: S7Pdu) -> tuple[int, str, str, str]:
    group = (s7.type_group or 0) & 0x0F
    sub = s7.subfunction or 0
    entry = UD_SUBFUNCTIONS.get(group, {}).get(sub)
    if entry:
        name, category = entry
    else:
        name = userdata_name(group, sub)
        category = UD_GROUP_CATEGORY.get(group, "other")
    detail = UD_GROUPS.get(group, f"group {group}")
    if group == 0x4 and sub == 0x01:
        szl = szl_request(s7.data)
        if szl:
            detail += f"; SZL 0x{szl[0]:04x} index 0x{szl[1]:04x}"
    return (group << 8) | sub, name, category, detail


def szl_request(data: bytes) -> tuple[int, int] | None:
    if len(data) < 8:
        return None
    return struct.unpack_from(">HH", data, 4)


def szl_reply_header(data: bytes) -> tuple[int, int] | None:
    """(SZL id, index) of a reply's data (including its 4-byte data header)."""
    if len(data) < 8:
        return None
    return struct.unpack_from(">HH", data, 4)


def identity_from_szl(body: bytes) -> dict:
    """Identity keys from a reassembled SZL reply body: id, index, record length, count, records."""
    if len(body) < 8:
        return {}
    szl_id, _index, rec_len, count = struct.unpack_from(">HHHH", body, 0)
    records = []
    off = 8
    for _ in range(min(count, 64)):
        if rec_len == 0 or off + rec_len > len(body):
            break
        records.append(body[off:off + rec_len])
        off += rec_len
    part = szl_id & 0x00FF
    ident: dict = {}
    if part == 0x11 and rec_len >= 28:
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
    elif part == 0x1C and rec_len >= 34:
        keys = {1: "name", 2: "module", 3: "plant_id", 4: "copyright", 5: "serial", 7: "model"}
        for r in records:
            index = struct.unpack_from(">H", r, 0)[0]
            key = keys.get(index)
            if key:
                text = cstr(r[2:34])
                if text:
                    ident[key] = text
        if "model" in ident or "module" in ident:          # the CPU type, else the module's name
            ident["product"] = ident.get("model") or ident["module"]
    if ident:
        ident["vendor"] = "Siemens"
    return ident


# --- S7comm-plus -----------------------------------------------------------------------------

def parse_s7plus(b: bytes, st: dict | None = None, request: bool = True) -> S7PlusPdu | None:
    """Header fields of one S7comm-plus frame. A message longer than the PDU size comes in
    several frames; only the first carries opcode and function, only the last the trailer."""
    if len(b) < 4 or b[0] != 0x72:
        return None
    version = b[1]
    dlen = struct.unpack_from(">H", b, 2)[0]
    body = b[4:4 + dlen]
    trailer = b[4 + dlen:4 + dlen + 4]
    complete = len(trailer) == 4 and trailer[0] == 0x72 and trailer[2:] == b"\x00\x00"
    key = "s7p_more_c2s" if request else "s7p_more_s2c"
    continuation = bool(st and st.get(key))
    if st is not None:
        st[key] = not complete
    pdu = S7PlusPdu(version, None, None, None, None, complete, continuation)
    if continuation:
        return pdu
    off = 0
    if version in (2, 3) and len(body) >= 33 and body[0] == 0x20:
        off = 33                                       # integrity part: digest length + digest
    if off >= len(body):
        return pdu
    pdu.opcode = body[off]
    if pdu.opcode in (0x31, 0x32, 0x02) and off + 9 <= len(body):
        pdu.function = struct.unpack_from(">H", body, off + 3)[0]
        pdu.seq = struct.unpack_from(">H", body, off + 7)[0]
        if pdu.opcode == 0x31 and off + 13 <= len(body):
            pdu.session = struct.unpack_from(">I", body, off + 9)[0]
    return pdu


# Routine recognition (capture/routine.py calls these on whole chunks): the key must cover
# every field decode() reports for such a packet.
def s7_job_ack_routine(p, plen, from_client, l4, sport, dport):
    """One whole TPKT/COTP DT (last unit) S7 PDU: read/write-variable jobs, keyed on their
    parameter block (the items, not the data written); acks keyed on error class/code and the
    function echoed in the parameters."""
    w = p.shape[1]
    ok = (l4 == 6) & (plen >= 19) & (p[:, 0] == 3) & (p[:, 1] == 0) & (u16(p, 2) == plen)
    ok &= (p[:, 4] == 2) & (p[:, 5] == 0xF0) & ((p[:, 6] & 0x80) != 0) & (p[:, 7] == 0x32)
    ros = p[:, 8]
    par, dat = u16(p, 13), u16(p, 15)
    one = (dport == 102) != (sport == 102)
    request = np.where(one, dport == 102, from_client)
    job = ok & request & (ros == 1) & (plen == 17 + par + dat) & np.isin(p[:, 17], (0x04, 0x05)) \
        & (17 + par <= w)
    ack = ok & ~request & np.isin(ros, (2, 3)) & (plen == 19 + par + dat) & (plen >= 21) \
        & np.isin(p[:, 19], (0x04, 0x05))
    pos = np.arange(w)[None, :]
    keep = job[:, None] & (pos >= 17) & (pos < (17 + par)[:, None])
    key = hash_keys((col(request), col(ros), bytes_hash(p, keep),
                     col(np.where(ack, (p[:, 17].astype(np.int64) << 16) | (p[:, 18].astype(np.int64) << 8)
                                   | p[:, 19], 0))))
    return job | ack, key


SPEC = ProtocolSpec(
    name=NAME, title="S7comm, S7comm-plus", layer="industrial",
    decode=decode, signature=signature,
    tcp_ports=(102,),
    routine=(Routine(s7_job_ack_routine, 128),),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="plc",
    observes=("error", "identity", "operation", "service"),
)
