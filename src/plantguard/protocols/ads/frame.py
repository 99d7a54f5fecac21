"""AMS/TCP frames: the 6-byte AMS/TCP header (reserved / AMS-TCP command, length) and the 32-byte
AMS header (target and source NetId and port, command id, state flags, data length, error code,
invoke id), all little-endian, then the ADS data."""
from __future__ import annotations

from dataclasses import dataclass

from plantguard.protocols._header import header
from plantguard.protocols._pdustream import BAD, NEED_MORE

# `length` counts the bytes after the AMS/TCP header: the AMS header and the data
AMS_TCP = header("AmsTcpHeader", "<", ("reserved", "H"), ("length", "I"))
AMS = AMS_TCP.extend("AmsHeader", ("target_net", "6s"), ("target_port", "H"), ("source_net", "6s"),
                     ("source_port", "H"), ("command", "H"), ("flags", "H"), ("data_length", "I"),
                     ("error", "I"), ("invoke", "I"))
AMS_HEADER = AMS.size - AMS_TCP.size          # 32
ADS_PORT = 48898

# state flags (tshark ams.state_*): bit 0 response, bit 2 ADS command, bit 6 AMS over UDP
RESPONSE, NO_RETURN, ADS_COMMAND, SYSTEM_COMMAND = 0x0001, 0x0002, 0x0004, 0x0008
UDP_FLAG, BROADCAST = 0x0040, 0x8000
KNOWN_FLAGS = 0x80FF
# AMS/TCP "reserved" field: 0 for AMS frames; a local ADS router's own commands otherwise
# (port close, port connect, router notification, get local NetId)
ROUTER_COMMANDS = frozenset({0x0001, 0x1000, 0x1001, 0x1002})
MAX_PDU = 1 << 20             # longest AMS/TCP frame reassembled (a symbol upload can be large)


@dataclass(slots=True)
class Frame:
    """One AMS frame: its header fields and the ADS data (cut to what arrived)."""
    target_net: str
    target_port: int
    source_net: str
    source_port: int
    command: int
    flags: int
    data_length: int
    error: int
    invoke: int
    data: bytes

    @property
    def response(self) -> bool:
        return bool(self.flags & RESPONSE)


def net_id(b: bytes) -> str:
    """An AMS NetId as it is written: six bytes in dotted decimal ("5.13.117.96.1.1")."""
    return ".".join(str(x) for x in b)


def parse(pdu: bytes) -> Frame | None:
    """The AMS frame of one AMS/TCP PDU; None for a router command or a PDU too short."""
    if len(pdu) < AMS.size:
        return None
    h = AMS.unpack_from(pdu, 0)
    if h.reserved != 0:
        return None
    return Frame(net_id(h.target_net), h.target_port, net_id(h.source_net), h.source_port, h.command,
                 h.flags, h.data_length, h.error, h.invoke, bytes(pdu[AMS.size:AMS.size + h.data_length]))


def frame_len(buf: bytes, off: int) -> int:
    """Bytes of the AMS/TCP frame at `off` (NEED_MORE / BAD for _pdustream.split)."""
    if len(buf) - off < AMS_TCP.size:
        return NEED_MORE
    reserved, length = AMS_TCP.unpack_from(buf, off)
    if reserved != 0 and reserved not in ROUTER_COMMANDS:
        return BAD
    if length > MAX_PDU - AMS_TCP.size:
        return BAD
    return AMS_TCP.size + length


def _header_ok(b: bytes, off: int, strict: bool) -> int:
    """Length of a plausible AMS/TCP frame at `off` (0 when not plausible). Strict: an AMS frame
    (reserved 0) whose length is the AMS header plus its data length, a command id 1..9, the ADS
    command flag set and no flag outside the specification's; on the ADS port a router command
    or command 0 is taken too."""
    if len(b) - off < AMS_TCP.size:
        return 0
    reserved, length = AMS_TCP.unpack_from(b, off)
    if reserved in ROUTER_COMMANDS and not strict:
        return AMS_TCP.size + length if length <= 64 else 0
    if reserved != 0 or len(b) - off < AMS.size:
        return 0
    h = AMS.unpack_from(b, off)
    if length != AMS_HEADER + h.data_length or length > MAX_PDU:
        return 0
    if h.flags & ~KNOWN_FLAGS:
        return 0
    if strict:
        if not 1 <= h.command <= 9 or not h.flags & ADS_COMMAND or h.flags & UDP_FLAG:
            return 0
        if h.target_port == 0 or h.source_port == 0:
            return 0
    elif h.command > 9 and not h.flags & SYSTEM_COMMAND:
        return 0
    return AMS_TCP.size + length


def plausible(payload: bytes, strict: bool = False) -> bool:
    """AMS/TCP frames from the first byte. Strict (other ports): whole frames that fill the
    payload exactly; on the ADS port the first frame's header is enough (its tail may come in
    the next segment)."""
    off, n, seen = 0, len(payload), 0
    while off < n and seen < 8:
        size = _header_ok(payload, off, strict)
        if not size:
            return False
        off, seen = off + size, seen + 1
        if off > n:
            return not strict and seen == 1
    return seen > 0 and (off == n or (not strict and seen == 8))
