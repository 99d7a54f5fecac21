"""Modbus/TCP (MBAP over TCP 502): who reads, writes, programs or restarts which unit.

Observations: service (once per flow), operation per request (category from the function code,
or from the sub-function for Diagnostics, Encapsulated Interface Transport and Schneider UMAS),
error per exception response, identity from Read Device Identification (43/14) and from the
text of Report Server ID (17) responses.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from plantguard.model import Observation, Packet
from plantguard.protocols._header import header
from plantguard.protocols._pdustream import BAD, NEED_MORE, tcp_pdus
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.base import once, printable
from plantguard.util.rowhash import at, kept_hash, kernel, mix, recogniser, seed

NAME = "modbus"

MAX_ADU_LENGTH = 260        # MBAP length field: unit id + PDU; 254 by the spec, a little slack
MAX_PDUS_PER_SEGMENT = 256
MAX_VALUES = 2000           # coils/registers decoded from one PDU (the spec allows 2000 coils)

# The MBAP header (`length` counts unit id + PDU: an ADU is FRAMING.size + length bytes); every
# ADU starts with ADU_HEAD, the MBAP header and the PDU's function code.
MBAP = header("MBAP", ">", ("transaction", "H"), ("protocol", "H"), ("length", "H"), ("unit", "B"))
ADU_HEAD = MBAP.extend("AduHead", ("function", "B"))
FRAMING = MBAP.through("MbapFraming", "length")

# code: (name, category)
FUNCTIONS: dict[int, tuple[str, str]] = {
    1: ("Read Coils", "read"),
    2: ("Read Discrete Inputs", "read"),
    3: ("Read Holding Registers", "read"),
    4: ("Read Input Registers", "read"),
    5: ("Write Single Coil", "write"),
    6: ("Write Single Register", "write"),
    7: ("Read Exception Status", "diagnostic"),
    8: ("Diagnostics", "diagnostic"),
    9: ("Program (484)", "program"),
    10: ("Poll (484)", "diagnostic"),
    11: ("Get Comm Event Counter", "diagnostic"),
    12: ("Get Comm Event Log", "diagnostic"),
    13: ("Program (584/984)", "program"),
    14: ("Poll (584/984)", "diagnostic"),
    15: ("Write Multiple Coils", "write"),
    16: ("Write Multiple Registers", "write"),
    17: ("Report Server ID", "diagnostic"),
    18: ("Program (884/U84)", "program"),
    19: ("Reset Comm Link (884/U84)", "control"),
    20: ("Read File Record", "read"),
    21: ("Write File Record", "write"),
    22: ("Mask Write Register", "write"),
    23: ("Read/Write Multiple Registers", "write"),
    24: ("Read FIFO Queue", "read"),
    40: ("Program (Concept)", "program"),
    43: ("Encapsulated Interface Transport", "other"),
    90: ("UMAS", "other"),
    125: ("Firmware Replacement", "firmware"),
    126: ("Program (584/984-2)", "program"),
    127: ("Report Local Address", "diagnostic"),
}

EXCEPTIONS = {
    1: "Illegal Function", 2: "Illegal Data Address", 3: "Illegal Data Value",
    4: "Server Device Failure", 5: "Acknowledge", 6: "Server Device Busy",
    7: "Negative Acknowledge", 8: "Memory Parity Error", 10: "Gateway Path Unavailable",
    11: "Gateway Target Device Failed to Respond",
}

# Diagnostics (FC 8) sub-functions: (name, category). The rest only read counters.
DIAGNOSTICS = {
    0: ("Return Query Data", "diagnostic"),
    1: ("Restart Communications Option", "control"),
    2: ("Return Diagnostic Register", "diagnostic"),
    3: ("Change ASCII Input Delimiter", "config"),
    4: ("Force Listen Only Mode", "control"),
    10: ("Clear Counters and Diagnostic Register", "config"),
    11: ("Return Bus Message Count", "diagnostic"),
    12: ("Return Bus Communication Error Count", "diagnostic"),
    13: ("Return Bus Exception Error Count", "diagnostic"),
    14: ("Return Server Message Count", "diagnostic"),
    15: ("Return Server No Response Count", "diagnostic"),
    16: ("Return Server NAK Count", "diagnostic"),
    17: ("Return Server Busy Count", "diagnostic"),
    18: ("Return Bus Character Overrun Count", "diagnostic"),
    20: ("Clear Overrun Counter and Flag", "config"),
}

MEI_TYPES = {13: ("CANopen General Reference", "other"), 14: ("Read Device Identification", "diagnostic")}

# Read Device Identification object ids -> identity keys
DEVICE_ID_OBJECTS = {0: "vendor", 1: "product_code", 2: "firmware", 3: "vendor_url",
                     4: "product", 5: "model", 6: "name"}

# Schneider Electric UMAS (FC 90) function codes, as published in public protocol research.
UMAS = {
    0x01: ("Init Comm", "other"),
    0x02: ("Read ID", "diagnostic"),
    0x03: ("Read Project Info", "diagnostic"),
    0x04: ("Read PLC Info", "diagnostic"),
    0x06: ("Read Card Info", "diagnostic"),
    0x0A: ("Repeat", "diagnostic"),
    0x10: ("Take PLC Reservation", "auth"),
    0x11: ("Release PLC Reservation", "auth"),
    0x12: ("Keep Alive", "other"),
    0x20: ("Read Memory Block", "read"),
    0x22: ("Read Variables", "read"),
    0x23: ("Write Variables", "write"),
    0x24: ("Read Coils Registers", "read"),
    0x25: ("Write Coils Registers", "write"),
    0x30: ("Initialize Upload", "program"),
    0x31: ("Upload Block", "program"),
    0x32: ("End Strategy Upload", "program"),
    0x33: ("Initialize Download", "program"),
    0x34: ("Download Block", "program"),
    0x35: ("End Strategy Download", "program"),
    0x39: ("Read Ethernet Master Data", "read"),
    0x40: ("Start PLC", "control"),
    0x41: ("Stop PLC", "control"),
    0x50: ("Monitor PLC", "read"),
    0x58: ("Check PLC", "diagnostic"),
    0x70: ("Read IO Object", "read"),
    0x71: ("Write IO Object", "write"),
    0x73: ("Get Status Module", "diagnostic"),
}
UMAS_OK, UMAS_ERROR = 0xFE, 0xFD


@dataclass(slots=True)
class ADU:
    """One Modbus/TCP application data unit."""
    tid: int
    unit: int
    fc: int            # the function code byte as sent (0x80 set on exception responses)
    data: bytes        # the PDU after the function code
    request: bool      # client -> server

    @property
    def exception(self) -> int | None:
        if self.request or not self.fc & 0x80:
            return None
        return self.data[0] if self.data else None


# --- framing and signature -------------------------------------------------------------------

def frame_len(buf: bytes, off: int) -> int:
    if len(buf) - off < FRAMING.size:
        return NEED_MORE
    _tid, pid, length = FRAMING.struct.unpack_from(buf, off)
    if pid != 0 or not 2 <= length <= MAX_ADU_LENGTH:
        return BAD
    return FRAMING.size + length


def signature(payload: bytes) -> bool:
    """Whole MBAP ADUs filling the payload, each with a plausible PDU."""
    off, n, seen = 0, len(payload), 0
    while off < n and seen < 16:
        if n - off < ADU_HEAD.size:
            return False
        _tid, pid, length, _unit, fc = ADU_HEAD.struct.unpack_from(payload, off)
        end = off + FRAMING.size + length
        if pid != 0 or not 2 <= length <= 254 or end > n:
            return False
        if not _plausible(fc, payload[off + ADU_HEAD.size:end]):
            return False
        off = end
        seen += 1
    return off == n and seen > 0


def _plausible(fc: int, data: bytes) -> bool:
    """Could `data` follow function code `fc`? Only sizes no request or response of that code
    can have are refused: malformed writes, invalid codes (0 included: a device still got the
    request, and answers it with exception 0x80) and exceptions on port 502 are still Modbus."""
    if fc & 0x80:
        return len(data) >= 1
    if fc == 43:
        return len(data) >= 1 and data[0] in MEI_TYPES
    return len(data) >= _MIN_DATA.get(fc, 0)


# The shortest request or response body (after the function code) of each public code.
_MIN_DATA = {1: 2, 2: 2, 3: 3, 4: 3, 5: 4, 6: 4, 8: 2, 15: 4, 16: 4, 20: 1, 21: 1, 22: 6, 23: 1, 24: 2}


# --- decode ----------------------------------------------------------------------------------

def decode(pkt: Packet) -> list[Observation]:
    out: list[Observation] = []
    request = is_request(pkt)
    for raw in tcp_pdus(pkt, frame_len, FRAMING.size + MAX_ADU_LENGTH, MAX_PDUS_PER_SEGMENT,
                        header_len=ADU_HEAD.size):
        adu = parse_adu(raw, request)
        if adu is not None:
            out.extend(_observe(pkt, adu))
    return out



def prime(pkt: Packet) -> None:
    """The flow's state moved past a packet the engine replayed, as decode() moves it (the
    stream, the service seen), with no output."""
    for raw in tcp_pdus(pkt, frame_len, FRAMING.size + MAX_ADU_LENGTH, MAX_PDUS_PER_SEGMENT,
                        header_len=ADU_HEAD.size):
        if len(raw) >= ADU_HEAD.size:      # parse_adu gives an ADU, whose _observe asks once()
            once(pkt, "service")

def is_request(pkt: Packet) -> bool:
    """Client -> server. Port 502 on one side only decides (the engine's SYN-based guess can be
    fooled by odd flags); otherwise the flow's direction."""
    if (pkt.dport == 502) != (pkt.sport == 502):
        return pkt.dport == 502
    return pkt.from_client


def parse_adu(raw: bytes, request: bool) -> ADU | None:
    if len(raw) < ADU_HEAD.size:
        return None
    tid, _pid, _length, unit, fc = ADU_HEAD.struct.unpack_from(raw, 0)
    return ADU(tid, unit, fc, bytes(raw[ADU_HEAD.size:]), request)


def _observe(pkt: Packet, adu: ADU) -> list[Observation]:
    out: list[Observation] = []
    if once(pkt, "service"):
        out.append(pkt.observe("service", NAME, subject="dst" if adu.request else "src", name=NAME))
    if adu.request:
        code, name, category, detail = describe_request(adu.fc, adu.data)
        out.append(pkt.observe("operation", NAME, subject="dst", category=category, code=code,
                               name=name, detail=detail, unit=adu.unit))
        return out
    exc = adu.exception
    if exc is not None:
        fc = adu.fc & 0x7F
        out.append(pkt.observe("error", NAME, subject="src", code=exc,
                               name=EXCEPTIONS.get(exc, f"Exception {exc}"), function=fc,
                               function_name=function_name(fc), unit=adu.unit))
        return out
    if adu.fc == 43:
        ident = parse_device_identification(adu.data)
        if ident:
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
    elif adu.fc == 17:
        text = _longest_text(adu.data[1:])
        if text:
            out.append(pkt.observe("identity", NAME, subject="src", description=text))
    elif adu.fc == 90 and len(adu.data) >= 2 and adu.data[1] == UMAS_ERROR:
        out.append(pkt.observe("error", NAME, subject="src", code=adu.data[2] if len(adu.data) > 2 else None,
                               name="UMAS error response", function=90, function_name="UMAS",
                               unit=adu.unit))
    return out


def function_name(fc: int) -> str:
    entry = FUNCTIONS.get(fc)
    return entry[0] if entry else f"Function {fc}"


def describe_request(fc: int, data: bytes) -> tuple[int, str, str, str]:
    """(code, name, category, detail) for a request PDU."""
    entry = FUNCTIONS.get(fc)
    if entry is None:
        return fc, f"Function {fc}", "other", f"unassigned function code {fc}, {len(data)} data bytes"
    name, category = entry
    f = request_fields(fc, data)
    detail = ""
    if "start" in f and "quantity" in f:
        detail = f"start={f['start']} quantity={f['quantity']}"
        if "write_start" in f:
            detail += f"; write start={f['write_start']} quantity={f['write_quantity']}"
    elif "address" in f:
        detail = f"address={f['address']}"
        if fc == 5 and "value" in f:
            detail += " value=" + ("ON" if f["value"] == 0xFF00 else "OFF" if f["value"] == 0 else hex(f["value"]))
    elif fc == 8 and "sub_function" in f:
        sub = f["sub_function"]
        sub_name, category = DIAGNOSTICS.get(sub, (f"Sub-function {sub}", "diagnostic"))
        name = f"Diagnostics: {sub_name}"
        detail = f"sub-function={sub}"
    elif fc == 43 and "mei_type" in f:
        mei = f["mei_type"]
        mei_name, category = MEI_TYPES.get(mei, (f"MEI type {mei}", "other"))
        name = mei_name
        detail = f"MEI type={mei}"
        if mei == 14 and "read_code" in f:
            detail += f" read device id code={f['read_code']} object={f['object_id']}"
    elif fc == 90 and "umas" in f:
        umas = f["umas"]
        umas_name, category = UMAS.get(umas, (f"UMAS function 0x{umas:02x}", "other"))
        name = f"UMAS {umas_name}"
        detail = f"UMAS function=0x{umas:02x}"
    elif fc in (20, 21) and "records" in f:
        detail = f"file records={f['records']}"
    return fc, name, category, detail


def request_fields(fc: int, data: bytes) -> dict:
    """Addresses, quantities and sub-functions of a request PDU (what fits in `data`)."""
    n = len(data)
    f: dict = {}
    if fc in (1, 2, 3, 4, 15, 16) and n >= 4:
        f["start"], f["quantity"] = struct.unpack_from(">HH", data, 0)
        if fc in (15, 16) and n >= 5:
            if fc == 15:
                f["coils"] = unpack_bits(data[5:], f["quantity"])
            else:
                f["registers"] = unpack_registers(data[5:5 + 2 * f["quantity"]])
    elif fc in (5, 6) and n >= 4:
        f["address"], f["value"] = struct.unpack_from(">HH", data, 0)
    elif fc == 22 and n >= 6:
        f["address"], f["and_mask"], f["or_mask"] = struct.unpack_from(">HHH", data, 0)
    elif fc == 23 and n >= 8:
        f["start"], f["quantity"], f["write_start"], f["write_quantity"] = struct.unpack_from(">HHHH", data, 0)
        if n >= 9:
            f["registers"] = unpack_registers(data[9:9 + 2 * f["write_quantity"]])
    elif fc == 24 and n >= 2:
        f["address"] = struct.unpack_from(">H", data, 0)[0]
    elif fc == 8 and n >= 2:
        f["sub_function"] = struct.unpack_from(">H", data, 0)[0]
        f["sub_data"] = bytes(data[2:])
    elif fc == 43 and n >= 1:
        f["mei_type"] = data[0]
        if data[0] == 14 and n >= 3:
            f["read_code"], f["object_id"] = data[1], data[2]
    elif fc == 90 and n >= 2:
        f["umas"] = data[1]
    elif fc in (20, 21) and n >= 1:
        f["records"] = _count_file_records(data[1:1 + data[0]], fc)
    return f


def response_values(fc: int, data: bytes, quantity: int | None = None) -> list | None:
    """Coil (bool) or register (int) values of a normal read response; None when the byte
    count does not fit the PDU (an odd count for registers, more bytes than were sent).
    `quantity` (from the request) trims the padding bits of a coil response."""
    if fc not in (1, 2, 3, 4, 23) or not data:
        return None
    bc = data[0]
    if len(data) < 1 + bc or (fc in (3, 4, 23) and bc % 2):
        return None
    if fc in (1, 2):
        bits = unpack_bits(data[1:1 + bc], 8 * bc)
        return bits[:quantity] if quantity is not None else bits
    return unpack_registers(data[1:1 + bc])


def unpack_bits(b: bytes, count: int) -> list[bool]:
    count = min(count, 8 * len(b), MAX_VALUES)
    return [bool(b[i >> 3] >> (i & 7) & 1) for i in range(count)]


def unpack_registers(b: bytes) -> list[int]:
    n = min(len(b) // 2, MAX_VALUES)
    return list(struct.unpack_from(f">{n}H", b, 0)) if n else []


def _count_file_records(b: bytes, fc: int) -> int:
    """Sub-requests in a Read/Write File Record request (7 bytes each, plus data for writes)."""
    off = count = 0
    while off + 7 <= len(b) and count < 64:
        length = struct.unpack_from(">H", b, off + 5)[0]
        off += 7 + (2 * length if fc == 21 else 0)
        count += 1
    return count


def parse_device_identification(data: bytes) -> dict:
    """Identity keys from a Read Device Identification (43/14) response PDU (after the FC)."""
    if len(data) < 6 or data[0] != 14:
        return {}
    count = data[5]
    off = 6
    ident: dict = {}
    for _ in range(min(count, 256)):
        if off + 2 > len(data):
            break
        obj, length = data[off], data[off + 1]
        value = data[off + 2:off + 2 + length]
        if len(value) < length:
            break
        off += 2 + length
        key = DEVICE_ID_OBJECTS.get(obj)
        text = printable(value)
        if key and text:
            ident[key] = text
    return ident


def _longest_text(b: bytes, minimum: int = 4) -> str:
    """The longest run of printable ASCII in a Report Server ID response (device description)."""
    best = cur = b""
    for ch in b[:256]:
        if 0x20 <= ch < 0x7F:
            cur += bytes([ch])
            if len(cur) > len(best):
                best = cur
        else:
            cur = b""
    text = best.decode("ascii").strip()
    return text if len(text) >= minimum else ""


# Routine recognition (capture/routine.py calls these on whole chunks): the key must cover
# every field decode() reports for such a packet.
MAX_ROUTINE_ADUS = 8       # whole ADUs in one segment a routine key covers (pipelined polling)
WIDE = 1024                # a second pass, on the rows the first left, for segments past 128 bytes
_REQ_CODES = (1, 2, 3, 4, 5, 6, 15, 16, 23)


@recogniser
def modbus_routine(buf, base, width, plen, from_client, l4, sport, dport):
    """Segments of up to MAX_ROUTINE_ADUS whole ADUs (masters pipeline their polls). Requests of
    the read/write codes the module describes from the first PDU bytes (start/address, quantity
    or value); any normal (non-exception) response except the codes whose responses it reads
    (17, 43, 90). The key covers every ADU's unit, function, length (requests) and described
    bytes, not the transaction ids."""
    ok = np.empty(len(base), bool)
    key = np.empty(len(base), np.uint64)
    _modbus_rows(buf, np.asarray(base, np.int64), width, np.asarray(plen, np.int64), np.asarray(from_client, np.bool_),
                 np.asarray(l4, np.int64), ok, key)
    return ok, key


_HEAD, _FRAMING = ADU_HEAD.size, FRAMING.size
_AT_LEN, _AT_FN, _AT_UNIT, _AT_PROTO = (ADU_HEAD.offset.length, ADU_HEAD.offset.function,
                                        ADU_HEAD.offset.unit, ADU_HEAD.offset.protocol)


@kernel
def _modbus_rows(buf, base, w, plen, from_client, l4, ok_out, key_out):
    """modbus_routine one row at a time: each ADU in turn, while the segment has more."""
    for i in range(len(base)):
        o = base[i]
        client = from_client[i]
        key = np.uint64(client)
        ok = l4[i] == 6 and plen[i] >= _HEAD
        done = False
        off = 0
        for _ in range(MAX_ROUTINE_ADUS):
            if not ok or done:
                break
            mlen = (at(buf, o, w, off + _AT_LEN) << 8) | at(buf, o, w, off + _AT_LEN + 1)
            fc = at(buf, o, w, off + _AT_FN)
            width = 8 if fc == 23 else 4
            req = client and (fc == 1 or fc == 2 or fc == 3 or fc == 4 or fc == 5 or fc == 6 or fc == 15
                              or fc == 16 or fc == 23) \
                and mlen >= 6 and _HEAD + width <= _FRAMING + mlen and off + _HEAD + width <= w
            rsp = (not client) and fc >= 1 and fc < 0x80 and fc != 17 and fc != 43 and fc != 90
            end = off + _FRAMING + mlen
            proto = (at(buf, o, w, off + _AT_PROTO) << 8) | at(buf, o, w, off + _AT_PROTO + 1)
            if not (off + _HEAD <= w and proto == 0 and (req or rsp) and end <= plen[i]):
                ok = False
                break
            h = mix(mix(mix(mix(seed(), key), at(buf, o, w, off + _AT_UNIT)), fc), mlen if req else 0)
            described = kept_hash(buf, o, w, off, 16, _HEAD, _HEAD + width) if req else kept_hash(buf, o, w, off, 16, 0, 0)
            key = mix(h, described)
            off = end
            done = off == plen[i]
        ok_out[i] = ok and done
        key_out[i] = key


SPEC = ProtocolSpec(
    name=NAME, title="Modbus/TCP", layer="industrial",
    decode=decode, signature=signature, prime=prime,
    tcp_ports=(502,),
    # The signature needs exact MBAP framing: protocol id 0 and length fields that cut the payload
    # into whole ADUs with nothing left over (about 1 in 2^24 for arbitrary bytes) and a body no
    # shorter than the function code allows. That is strict enough for
    # gateways and simulators on other ports (5020, 503, ...); on ports another module claims, that
    # module is asked first.
    any_port=True,
    routine=(Routine(modbus_routine, 128, transport=6), Routine(modbus_routine, WIDE, transport=6)),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="plc",
    observes=("error", "identity", "operation", "service"),
)
