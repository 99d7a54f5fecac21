"""Mitsubishi Electric MELSOFT, the engineering protocol GX Works / GX Developer speak with
MELSEC iQ-R, iQ-F (FX5) and Q controllers (TCP/UDP 5007; iQ-F direct connection UDP 5560 and
TCP 5562): who logs in to, reads, writes, programs, starts or stops which controller.

Observations: service (once per flow); operation per request (category by command code, see
commands.py), with the user name, target mode, file name or token use in its detail; error per
response whose status is not 0; identity (CPU model name and model code) from Open Initial
responses; credential per Username Login and Password Login answered (the user name is in clear,
the password only as a salted SHA-256, so never a visible secret), result from the status, which
is how a CVE-2021-20594 user name brute force shows up: a run of failed logins. Direction comes
from the frame's magic (0x57 request, 0xD7 response), not the ports.

One module per part: frame (headers and footer), commands (code table), routine (the watch
window's cyclic device read)."""
from __future__ import annotations

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import tcp_pdus
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.base import cstr, once, printable
from plantguard.protocols.melsoft.commands import (
    ACCESS_LEVELS,
    COMMANDS,
    CONTROL_MODES,
    DISCOVERY,
    LOGIN_PASSWORD,
    LOGIN_USER,
    OPEN_INITIAL,
    USER_REGISTRATION,
    command_name,
)
from plantguard.protocols.melsoft.frame import (
    MAX_FRAME,
    Frame,
    footer_parameters,
    frame_len,
    parse,
    plausible,
    plausible_discovery,
)
from plantguard.protocols.melsoft.routine import melsoft_read_routine

NAME = "melsoft"
VENDOR = "Mitsubishi Electric"
MAX_PDUS_PER_SEGMENT = 32
USER_FIELD = 0x28            # a user name: 20 UTF-16LE characters, NUL padded
USER_RECORD = 0x4A           # user name, SHA-256 of the password, access level

__all__ = ["COMMANDS", "NAME", "SPEC", "Frame", "decode", "describe", "identity_from_open_initial", "parse",
           "signature", "strict_signature"]


def signature(payload: bytes) -> bool:
    """On MELSOFT's ports: whole MELSOFT frames, or a discovery datagram."""
    return plausible(payload) or plausible_discovery(payload)


def strict_signature(payload: bytes) -> bool:
    """On any other port only whole frames (magic, route bytes, size, command header type); a
    discovery datagram is four bytes of little meaning."""
    return plausible(payload)


def decode(pkt: Packet) -> list[Observation]:
    out: list[Observation] = []
    for pdu in tcp_pdus(pkt, frame_len, MAX_FRAME, MAX_PDUS_PER_SEGMENT):
        if pdu[:1] in (b"\x5a", b"\xda"):
            # discovery (UDP, or the first bytes of a TCP session before the frames)
            out.extend(_discovery(pkt, pdu))
            continue
        frame = parse(pdu)
        if frame is not None:
            out.extend(_observe(pkt, frame))
    return out


def prime(pkt: Packet) -> None:
    """The flow moved past a replayed packet as decode() moves it: the stream and the service."""
    tcp_pdus(pkt, frame_len, MAX_FRAME, MAX_PDUS_PER_SEGMENT)
    once(pkt, "service")


def _service(pkt: Packet, subject: str) -> list[Observation]:
    return [pkt.observe("service", NAME, subject=subject, name=NAME)] if once(pkt, "service") else []


def _discovery(pkt: Packet, pdu: bytes) -> list[Observation]:
    response = pdu[0] == 0xDA
    out = _service(pkt, "src" if response else "dst")
    if not response:
        kind = pdu[3]
        out.append(pkt.observe("operation", NAME, subject="dst", category="diagnostic", code=0x5A00 | kind,
                               name=f"Discovery {DISCOVERY.get(kind, f'0x{kind:02X}')}",
                               detail=f"discovery request kind 0x{kind:02X}"))
    return out


def _observe(pkt: Packet, frame: Frame) -> list[Observation]:
    """Observations of one frame; the magic says request or response, not the ports."""
    server = "src" if frame.response else "dst"
    out = _service(pkt, server)
    if frame.code is None:
        return out
    if not frame.response:
        name, category, detail = describe(frame)
        out.append(pkt.observe("operation", NAME, subject="dst", category=category, code=frame.code,
                               name=name, detail=detail))
        if frame.code == LOGIN_USER:
            user = _user(frame.data[:USER_FIELD])
            pkt.state["login"] = user        # one pending login per flow: bounded
        return out
    if frame.code in (LOGIN_USER, LOGIN_PASSWORD):
        out.append(_credential(pkt, frame))
    if frame.status:
        out.append(pkt.observe("error", NAME, subject="src", code=frame.status,
                               name=_status_name(frame), function=frame.code,
                               function_name=command_name(frame.code)))
    elif frame.code == OPEN_INITIAL:
        ident = identity_from_open_initial(frame.data)
        if ident:
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
    return out


def _credential(pkt: Packet, frame: Frame) -> Observation:
    """A login step answered: the user name of this flow's last Username Login (None when that
    request was not seen); the password never travels in clear."""
    user = pkt.state.get("login")
    if frame.code == LOGIN_USER:
        pkt.state.pop("login", None)
        pkt.state["user"] = user
    else:
        user = pkt.state.get("user")
    # oriented as the login went, client -> controller, at the response's frame and time
    return Observation("credential", NAME, pkt.capture, pkt.frame, pkt.ts, pkt.dst, pkt.src, pkt.dst_mac,
                       pkt.src_mac, pkt.l4, pkt.dport, pkt.sport, pkt.vlan, "dst",
                       {"user": user or None, "password": None, "secret_type": "password", "cleartext": False,
                        "result": "success" if frame.status == 0 else "failure", "reply_code": frame.status})


def _status_name(frame: Frame) -> str:
    if frame.code == LOGIN_USER:
        return f"Username Login refused (status 0x{frame.status:04X}): unknown user name"
    if frame.code == LOGIN_PASSWORD:
        return f"Password Login refused (status 0x{frame.status:04X})"
    return f"Status 0x{frame.status:04X}"


def identity_from_open_initial(data: bytes) -> dict:
    """CPU model name (16 ASCII characters, space or NUL padded) and model code (u16 LE) from an
    Open Initial response; {} when the data does not start with a model name."""
    if len(data) < 18:
        return {}
    model = printable(cstr(data[:16], "ascii").encode("ascii", "replace"))
    if len(model) < 2 or not model[0].isalnum():
        return {}
    return {"vendor": VENDOR, "model": model, "product_code": int.from_bytes(data[16:18], "little")}


def describe(frame: Frame) -> tuple[str, str, str]:
    """(name, category, detail) of a request."""
    code = frame.code
    name, category = COMMANDS.get(code, (command_name(code), "other"))
    parts = []
    if code in CONTROL_MODES:
        parts.append(f"mode {CONTROL_MODES[code]}")
    elif code == LOGIN_USER:
        parts.append(f"user {_user(frame.data[:USER_FIELD])!r}")
    elif code == USER_REGISTRATION:
        parts.append(_registration(frame.data))
    elif 0x1850 <= code <= 0x18AF:
        path = _utf16_path(frame.data)
        if path:
            parts.append(f"file {path!r}")
    if code not in COMMANDS:
        parts.append(f"unknown command code 0x{code:04X}")
    parts.append(f"{len(frame.data)} data bytes")
    if any(t == 0x42 for t, _v in footer_parameters(frame.footer)):
        parts.append("with authorisation token")
    return name, category, ", ".join(parts)


def _user(b: bytes) -> str:
    """A UTF-16LE user name up to its NUL, as safe text."""
    b = bytes(b[:len(b) & ~1])
    for i in range(0, len(b) - 1, 2):
        if b[i] == 0 and b[i + 1] == 0:
            b = b[:i]
            break
    return printable(b.decode("utf-16-le", "replace").encode("utf-8"), 64)


def _registration(data: bytes) -> str:
    """User Information Registration: user count (u16 LE at +2) then records of user name,
    SHA-256 of the password and access level."""
    if len(data) < 4:
        return "user registration"
    count = int.from_bytes(data[2:4], "little")
    users = []
    for i in range(min(count, 16)):
        at = 4 + i * USER_RECORD
        if at + USER_RECORD > len(data):
            break
        level = int.from_bytes(data[at + 0x48:at + 0x4A], "big")
        users.append(f"{_user(data[at:at + USER_FIELD])!r} ({ACCESS_LEVELS.get(level, f'level 0x{level:04X}')})")
    return f"registers {count} user(s): {', '.join(users)}" if users else f"registers {count} user(s)"


def _utf16_path(data: bytes) -> str:
    """The first UTF-16LE path ("$MELPRJ$\\...") in file command data."""
    at = data.find(b"$\x00M\x00E\x00L\x00")
    if at < 0:
        return ""
    return _user(data[at:at + 512])


SPEC = ProtocolSpec(
    name=NAME, title="MELSOFT (GX Works engineering)", layer="industrial",
    decode=decode, signature=signature, any_port_signature=strict_signature, prime=prime,
    tcp_ports=(5007, 5562), udp_ports=(5007, 5560),
    any_port=True,
    routine=(Routine(melsoft_read_routine, 96),),
    traits=frozenset({"industrial", "controller-server"}),
    server_role="plc",
    observes=("credential", "error", "identity", "operation", "service"),
)
