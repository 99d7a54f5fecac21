"""Mitsubishi Electric SLMP / MC protocol (binary 3E and 4E frames, ASCII-coded ones too) on
MELSEC Q, L, iQ-R and iQ-F Ethernet ports: who reads, writes, starts or stops which controller.

Observations: service (once per flow); operation per request (category by command, device and
head device number in the detail: "D100 x10 words"); error per response whose end code is not
0 (the error information in it names the refused command); identity (CPU model name and model
code) from Read CPU Model Name responses; credential for a Remote Password Unlock, whose
password crosses the network in clear, with the result from its response. SLMP has no
authentication besides that optional remote password. Responses do not repeat the command, so
the requests whose answers matter (model name, password) wait in the flow state for them
(bounded; 4E frames pair by serial number).

One module per part: frame (header layouts, binary and ASCII), commands (code tables), routine
(batch-read polling)."""
from __future__ import annotations

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import tcp_pdus
from plantguard.protocols._spec import Hold, ProtocolSpec, Routine
from plantguard.protocols.base import cstr, once, printable
from plantguard.protocols.melsec.commands import (
    BATCH,
    COMMANDS,
    CONTROL_MODES,
    DEVICES,
    END_CODES,
    PASSWORD_LOCK,
    PASSWORD_UNLOCK,
    RANDOM,
    READ_MODEL,
    command_name,
    end_code_name,
)
from plantguard.protocols.melsec.frame import (
    ASCII_SUBHEADERS,
    MAX_FRAME,
    Frame,
    frame_len,
    parse,
    parse_ascii,
    plausible,
    plausible_ascii,
)
from plantguard.protocols.melsec.routine import (
    WAITS,
    melsec_hold_rows,
    melsec_read_routine,
)

NAME = "melsec"
VENDOR = "Mitsubishi Electric"
MAX_PDUS_PER_SEGMENT = 64
MAX_PENDING = 32             # requests waiting for their response, per flow

__all__ = ["COMMANDS", "END_CODES", "NAME", "SPEC", "Frame", "decode", "describe", "device_spec",
           "identity_from_model_name", "parse", "signature", "strict_signature"]


def signature(payload: bytes) -> bool:
    """Whole binary 3E/4E frames (subheader, a length that ends at the payload's end, a known
    command with a subcommand of its form), or one whole ASCII-coded frame."""
    return plausible(payload) or plausible_ascii(payload)


def strict_signature(payload: bytes) -> bool:
    """On any other port: the same frames addressed the way SLMP clients address a CPU (PC
    number 0xFF, request destination I/O 0x03FF or a multi-CPU / redundant 0x03D0-0x03E3)."""
    if not signature(payload):
        return False
    frame = parse_ascii(payload) if bytes(payload[:4]) in ASCII_SUBHEADERS else parse(payload)
    return frame is not None and frame.pc == 0xFF and (frame.io == 0x03FF or 0x03D0 <= frame.io <= 0x03E3)


def decode(pkt: Packet) -> list[Observation]:
    if bytes(pkt.payload[:4]) in ASCII_SUBHEADERS:
        frame = parse_ascii(pkt.payload)
        return _observe(pkt, frame) if frame is not None else []
    out: list[Observation] = []
    for pdu in tcp_pdus(pkt, frame_len, MAX_FRAME, MAX_PDUS_PER_SEGMENT):
        frame = parse(pdu)
        if frame is not None:
            out.extend(_observe(pkt, frame))
    return out


def prime(pkt: Packet) -> None:
    """The flow moved past a replayed packet as decode() moves it: the stream and the service
    (replayed packets never leave a request waiting: Hold keeps those decoded)."""
    if pkt.l4 == "tcp" and bytes(pkt.payload[:4]) not in ASCII_SUBHEADERS:
        tcp_pdus(pkt, frame_len, MAX_FRAME, MAX_PDUS_PER_SEGMENT)
    once(pkt, "service")


def _has_pending(state: dict | None) -> bool:
    """A request waits for its response (None: the flow has no decoder state yet)."""
    return bool(state and state.get("pending"))


def _service(pkt: Packet, subject: str) -> list[Observation]:
    return [pkt.observe("service", NAME, subject=subject, name=NAME)] if once(pkt, "service") else []


def _observe(pkt: Packet, frame: Frame) -> list[Observation]:
    """Observations of one frame; the subheader says request or response, not the ports."""
    out = _service(pkt, "src" if frame.response else "dst")
    if not frame.response:
        name, category, detail = describe(frame)
        out.append(pkt.observe("operation", NAME, subject="dst", category=category, code=frame.command,
                               name=name, detail=detail))
        if frame.command in WAITS:
            pending = pkt.state.setdefault("pending", {})
            if len(pending) < MAX_PENDING or frame.serial in pending:
                pending[frame.serial] = (frame.command, _password(frame) if frame.command == PASSWORD_UNLOCK else None)
        return out
    waiting = pkt.state.get("pending")
    asked = waiting.pop(frame.serial, None) if waiting else None
    if frame.end_code is None:
        return out
    command = asked[0] if asked else None
    if command == PASSWORD_UNLOCK:
        out.append(_credential(pkt, asked[1], frame.end_code))
    if frame.end_code:
        failed, _sub = _error_info(frame.data)
        function = failed or command
        out.append(pkt.observe("error", NAME, subject="src", code=frame.end_code, name=end_code_name(frame.end_code),
                               function=function, function_name=command_name(function) if function else None))
    elif command == READ_MODEL and not frame.ascii:
        ident = identity_from_model_name(frame.data)
        if ident:
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
    return out


def _credential(pkt: Packet, password: str | None, end_code: int) -> Observation:
    """The remote password of an unlock, client -> controller, at the response's frame."""
    return Observation("credential", NAME, pkt.capture, pkt.frame, pkt.ts, pkt.dst, pkt.src, pkt.dst_mac,
                       pkt.src_mac, pkt.l4, pkt.dport, pkt.sport, pkt.vlan, "dst",
                       {"user": None, "password": password, "secret_type": "password", "cleartext": True,
                        "result": "success" if end_code == 0 else "failure", "reply_code": end_code})


def _password(frame: Frame) -> str | None:
    """The remote password of an unlock: length u16 LE then the characters (binary frames)."""
    d = frame.data
    if frame.ascii or len(d) < 2:
        return None
    n = int.from_bytes(d[:2], "little")
    if not 0 < n <= 32 or len(d) < 2 + n:
        return None
    return printable(bytes(d[2:2 + n]), 32)


def _error_info(data: bytes) -> tuple[int | None, int | None]:
    """(command, subcommand) of the error information an error response carries (network, PC,
    I/O, station, then command and subcommand)."""
    if len(data) < 9:
        return None, None
    return int.from_bytes(data[5:7], "little"), int.from_bytes(data[7:9], "little")


def identity_from_model_name(data: bytes) -> dict:
    """CPU model name (16 ASCII characters, space padded) and model code (u16 LE) from a Read
    CPU Model Name response; {} when the data does not look like one."""
    if len(data) < 18:
        return {}
    model = printable(cstr(data[:16], "ascii").encode("ascii", "replace"))
    if len(model) < 2 or not model[0].isalnum():
        return {}
    return {"vendor": VENDOR, "model": model, "product_code": int.from_bytes(data[16:18], "little")}


def describe(frame: Frame) -> tuple[str, str, str]:
    """(name, category, detail) of a request."""
    code, sub = frame.command, frame.subcommand
    name, category = COMMANDS.get(code, (command_name(code), "other"))
    parts = [f"subcommand 0x{sub:04X}"]
    if code in CONTROL_MODES:
        parts.insert(0, f"mode {CONTROL_MODES[code]}")
    elif frame.ascii:
        parts.append("ASCII-coded (devices not decoded)")
    elif code in BATCH:
        spec = device_spec(frame.data, sub)
        if spec:
            parts.insert(0, spec)
    elif code in RANDOM:
        parts.insert(0, _random(frame.data, sub, code))
    elif code in (PASSWORD_UNLOCK, PASSWORD_LOCK):
        parts.insert(0, "remote password")
    if code not in COMMANDS:
        parts.append(f"unknown command 0x{code:04X}")
    if frame.four_e:
        parts.append(f"4E serial {frame.serial}")
    return name, category, ", ".join(parts)


def _long(sub: int) -> bool:
    """iQ-R device form (subcommand 0x0002/0x0003): 4-byte device number, 2-byte device code."""
    return bool(sub & 0x0002)


def _device(data: bytes, at: int, sub: int) -> tuple[str, int] | None:
    """(device text, bytes used) of one device reference at `at`."""
    width = 6 if _long(sub) else 4
    if at + width > len(data):
        return None
    if _long(sub):
        number, code = int.from_bytes(data[at:at + 4], "little"), int.from_bytes(data[at + 4:at + 6], "little")
    else:
        number, code = int.from_bytes(data[at:at + 3], "little"), data[at + 3]
    dev, hexa = DEVICES.get(code, (f"device 0x{code:02X} ", False))
    return (f"{dev}{number:X}" if hexa else f"{dev}{number}"), width


def device_spec(data: bytes, sub: int) -> str:
    """Head device and count of a batch read/write ("D100 x10 words", "M0 x16 bits")."""
    dev = _device(data, 0, sub)
    if dev is None:
        return ""
    text, width = dev
    if width + 2 > len(data):
        return text
    count = int.from_bytes(data[width:width + 2], "little")
    return f"{text} x{count} {'bits' if sub & 1 else 'words'}"


def _random(data: bytes, sub: int, code: int) -> str:
    """Random read / write: the device counts and the first device."""
    if len(data) < 2:
        return "random access"
    if code == 0x1402 and sub & 1:        # bit units: one count, then device + value
        first = _device(data, 1, sub)
        return f"{data[0]} bits" + (f" from {first[0]}" if first else "")
    words, dwords = data[0], data[1]
    first = _device(data, 2, sub)
    return f"{words} words, {dwords} double words" + (f", first {first[0]}" if first else "")


SPEC = ProtocolSpec(
    name=NAME, title="MELSEC SLMP/MC protocol", layer="industrial",
    decode=decode, signature=signature, any_port_signature=strict_signature, prime=prime,
    # SLMP ports are set per module; 5000 and 5002 are the settings plants and the manuals' examples
    # use (5001 is left alone: engineering tools use it as a client port), any port by signature
    tcp_ports=(5000, 5002), udp_ports=(5000, 5002),
    any_port=True,
    routine=(Routine(melsec_read_routine, 32),),
    hold=Hold(melsec_hold_rows, 24, _has_pending),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="plc",
    observes=("credential", "error", "identity", "operation", "service"),
)
