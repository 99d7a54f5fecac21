"""Omron FINS over UDP 9600 and FINS/TCP (TCP 9600): who reads, writes, programs, starts or
stops which controller.

Observations: service (once per flow); operation per FINS command (category from the command
code: memory area read / write, parameter and program area, run / stop, controller data, clock,
access right, file memory, forced set/reset); error per response whose end code is not normal
completion and per FINS/TCP frame with an error code; identity (controller model and version)
from Controller Data Read responses. FINS has no authentication of its own.

One module per part: frame (header, FINS/TCP framing, plausibility), commands (code tables),
routine (array recogniser for memory area read polling)."""
from __future__ import annotations

import struct

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import tcp_pdus
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.base import cstr, once, printable
from plantguard.protocols.fins.commands import (
    COMMANDS,
    END_CODES,
    MEMORY_AREA_COMMANDS,
    MEMORY_AREAS,
    TCP_COMMANDS,
    TCP_FRAME,
    command_name,
    end_code,
)
from plantguard.protocols.fins.frame import (
    MAX_TCP,
    TCP_ERRORS,
    Frame,
    parse_fins,
    plausible_fins,
    plausible_tcp,
    tcp_frame_len,
    tcp_parts,
)
from plantguard.protocols.fins.routine import fins_read_routine

NAME = "fins"
FINS_PORT = 9600
MAX_PDUS_PER_SEGMENT = 64
MODES = {0x00: "Program", 0x01: "Debug", 0x02: "Monitor", 0x04: "Run"}

__all__ = ["COMMANDS", "END_CODES", "NAME", "SPEC", "Frame", "decode", "describe", "identity_from_controller_data",
           "parse_fins", "signature", "tcp_signature"]


def signature(payload: bytes) -> bool:
    """On port 9600: FINS/TCP frames, or one bare FINS frame (UDP)."""
    return plausible_tcp(payload) or plausible_fins(payload)


def tcp_signature(payload: bytes) -> bool:
    """On any other port only FINS/TCP, whose magic, length, command and error code leave
    little to chance; a bare FINS header is ten bytes of small numbers."""
    return plausible_tcp(payload)


def decode(pkt: Packet) -> list[Observation]:
    out: list[Observation] = []
    if pkt.l4 != "tcp":
        frame = parse_fins(pkt.payload)
        if frame is not None:
            out.extend(_observe(pkt, frame))
        return out
    for pdu in tcp_pdus(pkt, tcp_frame_len, MAX_TCP, MAX_PDUS_PER_SEGMENT):
        out.extend(_observe_tcp(pkt, pdu))
    return out


def prime(pkt: Packet) -> None:
    """The flow moved past a replayed packet as decode() moves it: the stream and the service."""
    if pkt.l4 == "tcp":
        pdus = tcp_pdus(pkt, tcp_frame_len, MAX_TCP, MAX_PDUS_PER_SEGMENT)
    else:
        pdus = [pkt.payload]
    if pdus:
        once(pkt, "service")


def _observe_tcp(pkt: Packet, pdu: bytes) -> list[Observation]:
    command, error, body = tcp_parts(pdu)
    out = _service(pkt, "dst" if pkt.from_client else "src")
    if error:
        out.append(pkt.observe("error", NAME, subject="src" if not pkt.from_client else "dst", code=error,
                               name=TCP_ERRORS.get(error, f"FINS/TCP error {error}"), command=command,
                               function_name=TCP_COMMANDS.get(command, f"FINS/TCP command {command}")))
        return out
    if command == TCP_FRAME:
        frame = parse_fins(body)
        if frame is not None:
            out.extend(_observe(pkt, frame))
    return out


def _service(pkt: Packet, subject: str) -> list[Observation]:
    return [pkt.observe("service", NAME, subject=subject, name=NAME)] if once(pkt, "service") else []


def _observe(pkt: Packet, frame: Frame) -> list[Observation]:
    """Observations of one FINS frame; the ICF says command or response, not the ports."""
    server = "src" if frame.response else "dst"
    out = _service(pkt, server)
    if not frame.response:
        name, category, detail = describe(frame.code, frame.data)
        out.append(pkt.observe("operation", NAME, subject="dst", category=category, code=frame.code,
                               name=name, detail=detail))
        return out
    if frame.mres is None:
        return out
    code = end_code(frame.mres, frame.sres)
    if code:
        out.append(pkt.observe("error", NAME, subject="src", code=code,
                               name=END_CODES.get(code, f"End code 0x{code:04X}"), function=frame.code,
                               function_name=command_name(frame.code)))
    elif frame.code == 0x0501:
        ident = identity_from_controller_data(frame.data)
        if ident:
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
    return out


def identity_from_controller_data(data: bytes) -> dict:
    """Controller model and version from a Controller Data Read response (the data after the end
    code: model 20 bytes, version 20 bytes, then system and area data); {} when the response
    carries other data (CPU Bus Unit configuration)."""
    if len(data) < 40:
        return {}
    model, version = cstr(data[:20], "ascii"), cstr(data[20:40], "ascii")
    model, version = printable(model.encode("ascii", "replace")), printable(version.encode("ascii", "replace"))
    if len(model) < 2 or not model[0].isalnum():
        return {}
    ident = {"vendor": "OMRON", "model": model}
    if version:
        ident["firmware"] = version
    return ident


def describe(code: int, data: bytes) -> tuple[str, str, str]:
    """(name, category, detail) of a FINS command and its data."""
    entry = COMMANDS.get(code)
    if entry is None:
        return command_name(code), "other", f"unassigned command code 0x{code:04X}, {len(data)} data bytes"
    name, category = entry
    return name, category, _detail(code, data)


def _detail(code: int, data: bytes) -> str:
    n = len(data)
    if code in MEMORY_AREA_COMMANDS and n >= 6:
        area = data[0]
        word, bit, count = struct.unpack_from(">HBH", data, 1)
        return f"area={_area(area)} address={word}.{bit:02d} count={count}"
    if code == 0x0104 and n:
        areas = sorted({_area(data[i]) for i in range(0, n - 3, 4)})
        return f"items={n // 4} areas={', '.join(areas[:8])}"
    if code == 0x0105 and n >= 10:
        src_area, sw, sb, dst_area, dw, db, count = struct.unpack_from(">BHBBHBH", data, 0)
        return f"from {_area(src_area)} {sw}.{sb:02d} to {_area(dst_area)} {dw}.{db:02d} count={count}"
    if code in (0x0201, 0x0202, 0x0203) and n >= 4:
        area, word = struct.unpack_from(">HH", data, 0)
        return f"parameter area=0x{area:04X} word=0x{word:04X}"
    if code in (0x0306, 0x0307) and n >= 8:
        program, word, count = struct.unpack_from(">HIH", data, 0)
        return f"program={program} word={word} bytes={count & 0x7FFF}"
    if code == 0x0401 and n >= 3:
        return f"program={struct.unpack_from('>H', data, 0)[0]} mode={MODES.get(data[2], f'0x{data[2]:02X}')}"
    if code == 0x0501 and n:
        return f"data=0x{data[0]:02X}"
    if code == 0x0702 and n >= 5:
        return "clock=" + _bcd_clock(data)
    if code in (0x0C01, 0x0C02) and n >= 2:
        return f"program={struct.unpack_from('>H', data, 0)[0]}"
    files = _file_names(code, data)
    if files:
        return "file=" + ", ".join(files)
    return ""


def _area(area: int) -> str:
    name = MEMORY_AREAS.get(area)
    return f"{name} (0x{area:02X})" if name else f"0x{area:02X}"


def _bcd_clock(data: bytes) -> str:
    d = [f"{b >> 4}{b & 15}" for b in data[:6]]
    while len(d) < 6:
        d.append("00")
    return f"{d[0]}-{d[1]}-{d[2]} {d[3]}:{d[4]}:{d[5]}"


# where the 12-byte file names sit in the file memory commands' data
_FILE_NAME_AT = {0x2202: (2,), 0x2203: (4,), 0x2207: (2, 16), 0x2208: (2, 14), 0x2209: (2,), 0x220A: (10,),
                 0x220B: (10,), 0x220C: (14,)}


def _file_names(code: int, data: bytes) -> list[str]:
    if code == 0x2205 and len(data) >= 4:
        count = struct.unpack_from(">H", data, 2)[0]     # after the disk number
        offsets = [4 + 12 * i for i in range(min(count, 16))]
    elif code == 0x2206 and len(data) >= 16:
        offsets = [4]
    else:
        offsets = list(_FILE_NAME_AT.get(code, ()))
    names = []
    for off in offsets:
        if off + 12 <= len(data):
            name = printable(cstr(data[off:off + 12]).encode("latin-1"))
            if name:
                names.append(name)
    return names


SPEC = ProtocolSpec(
    name=NAME, title="Omron FINS, FINS/TCP", layer="industrial",
    decode=decode, signature=signature, any_port_signature=tcp_signature, prime=prime,
    tcp_ports=(FINS_PORT,), udp_ports=(FINS_PORT,),
    # FINS/TCP on any port (its magic, length, command and error code); bare FINS on 9600 only
    any_port=True,
    routine=(Routine(fins_read_routine, 64),),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="plc",
    observes=("error", "identity", "operation", "service"),
)
