"""S7comm classic (protocol id 0x32): the S7 header (job, ack, ack-data, user-data) and the
user-data parameter, what a job does (read/write variables, block upload/download, PLC control
and its PI services, PLC stop), what a user-data request does (function group and
sub-function), and the observations for one PDU: operations, errors, SZL identity."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from plantguard.model import Observation, Packet
from plantguard.protocols._header import header
from plantguard.protocols.base import printable
from plantguard.protocols.s7comm.cotp import NAME, service
from plantguard.protocols.s7comm.szl import identity_from_szl, reassemble, szl_request

S7_PROTOCOL = 0x32
S7_HEADER = header("S7Header", ">", ("protocol", "B"), ("rosctr", "B"), ("redundancy", "H"), ("pdu_ref", "H"),
                   ("param_length", "H"), ("data_length", "H"))
S7_ACK_HEADER = S7_HEADER.extend("S7AckHeader", ("error_class", "B"), ("error_code", "B"))   # ack, ack-data
# The user-data parameter: head (00 01 12 except in some pushes) and its length, method (0x11
# request, 0x12 response), type (high nibble 4 request, 8 response) and function group (low
# nibble), sub-function, sequence; replies and follow-up requests go on with the data unit
# reference (fragmented replies), last-unit flag (0 = last fragment) and error code.
UD_PARAM = header("UserDataParam", ">", ("head", "3s"), ("param_length", "B"), ("method", "B"),
                  ("type_group", "B"), ("subfunction", "B"), ("seq", "B"))
UD_PARAM_EXT = UD_PARAM.extend("UserDataParamExt", ("durn", "B"), ("last_unit", "B"), ("error", "H"))
# parse_s7 runs per PDU: it unpacks the compiled Structs into fields in declaration order
_HEAD, _ACK_HEAD = S7_HEADER.size, S7_ACK_HEADER.size
_unpack_head = S7_HEADER.struct.unpack_from
_unpack_ud, _unpack_ud_ext = UD_PARAM.struct.unpack_from, UD_PARAM_EXT.struct.unpack_from

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


def parse_s7(b: bytes) -> S7Pdu | None:
    if len(b) < _HEAD:
        return None
    protocol, rosctr, _redundancy, pdu_ref, plen, dlen = _unpack_head(b)
    if protocol != S7_PROTOCOL or rosctr not in ROSCTR:
        return None
    ack = rosctr in (ACK, ACK_DATA)
    hl = _ACK_HEAD if ack else _HEAD
    if len(b) < hl:
        return None
    s7 = S7Pdu(rosctr, pdu_ref, bytes(b[hl:hl + plen]), bytes(b[hl + plen:hl + plen + dlen]))
    if ack:
        s7.err_class, s7.err_code = b[_HEAD:_ACK_HEAD]     # what the ack header adds
    p = s7.param
    if rosctr == USERDATA and len(p) >= UD_PARAM.size:
        if len(p) >= UD_PARAM_EXT.size:
            (_head, _len, s7.method, s7.type_group, s7.subfunction, s7.seq,
             s7.durn, s7.last_unit, s7.ud_error) = _unpack_ud_ext(p)
        else:
            _head, _len, s7.method, s7.type_group, s7.subfunction, s7.seq = _unpack_ud(p)
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


# --- observations ----------------------------------------------------------------------------

def _observe_s7(pkt: Packet, s7: S7Pdu, request: bool) -> list[Observation]:
    out = service(pkt, request, "s7comm")
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
        data = reassemble(pkt.state, s7)
        if data is not None:
            ident = identity_from_szl(data)
            if ident:
                out.append(pkt.observe("identity", NAME, subject="src", **ident))
    return out
