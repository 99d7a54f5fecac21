"""EtherNet/IP encapsulation (TCP/UDP 44818): the 24-byte header, its commands and status
codes, framing on a TCP stream, the encapsulation half of the signature, and the Common Packet
Format items in which the encapsulation carries CIP messages and identity records.

The bottom of the enip package: it imports nothing from the other layers."""
from __future__ import annotations

from dataclasses import dataclass

from plantguard.model import Packet
from plantguard.protocols._header import header
from plantguard.protocols._pdustream import BAD, NEED_MORE
from plantguard.protocols.base import u16le

NAME = "enip"

ENCAP_PORT, IO_PORT = 44818, 2222
ENCAP = header("EncapHeader", "<", ("command", "H"), ("length", "H"), ("session", "I"), ("status", "I"),
               ("context", "8s"), ("options", "I"))
FRAMING = ENCAP.through("EncapFraming", "length")   # what frame_len reads
# Command-specific data of SendRRData / SendUnitData before their CPF items.
SEND_DATA = header("SendDataHeader", "<", ("interface", "I"), ("timeout", "H"))
CPF_ITEM = header("CpfItem", "<", ("type", "H"), ("length", "H"))   # item header (count first)

MAX_PDUS_PER_SEGMENT = 128
MAX_ENCAP = ENCAP.size + 0xFFFF
MAX_ITEMS = 16          # CPF items read from one packet

# encapsulation command: (name, operation category or None when the command carries CIP)
COMMANDS = {
    0x0000: ("NOP", None),
    0x0004: ("ListServices", "diagnostic"),
    0x0063: ("ListIdentity", "diagnostic"),
    0x0064: ("ListInterfaces", "diagnostic"),
    0x0065: ("RegisterSession", "other"),
    0x0066: ("UnRegisterSession", "other"),
    0x006F: ("SendRRData", None),
    0x0070: ("SendUnitData", None),
    0x0072: ("IndicateStatus", "other"),
    0x0073: ("Cancel", "other"),
    0x00C8: ("StartDTLS", "other"),
}
LIST_IDENTITY, SEND_RR_DATA, SEND_UNIT_DATA = 0x0063, 0x006F, 0x0070
DISCOVERY = (0x0063, 0x0004, 0x0064)   # ListIdentity, ListServices, ListInterfaces
ENCAP_STATUS = {0x0000: "Success", 0x0001: "Invalid or unsupported command", 0x0002: "Insufficient memory",
                0x0003: "Incorrect data", 0x0064: "Invalid session handle", 0x0065: "Invalid length",
                0x0069: "Unsupported protocol version", 0x006A: "Encapsulated CIP service not allowed on this port"}

ITEM_NULL, ITEM_IDENTITY, ITEM_CONNECTED_ADDRESS = 0x0000, 0x000C, 0x00A1
ITEM_CONNECTED_DATA, ITEM_UNCONNECTED_DATA, ITEM_SEQUENCED_ADDRESS = 0x00B1, 0x00B2, 0x8002


@dataclass(slots=True)
class Encap:
    """One encapsulation PDU: the header fields (in ENCAP order), the data after the header
    and the direction."""
    command: int
    length: int
    session: int
    status: int
    context: bytes
    options: int
    data: bytes
    request: bool


def frame_len(buf: bytes, off: int) -> int:
    if len(buf) - off < ENCAP.size:
        return NEED_MORE
    command, length = FRAMING.struct.unpack_from(buf, off)
    if command not in COMMANDS:
        return BAD
    return ENCAP.size + length


def encap_signature(payload: bytes) -> bool:
    """Encapsulation headers with a known command and options 0 (a partial last PDU is fine)."""
    off, n, seen = 0, len(payload), 0
    while off < n and seen < 16:
        if n - off < ENCAP.size:
            return seen > 0
        command, length, _session, status, _context, options = ENCAP.struct.unpack_from(payload, off)
        if command not in COMMANDS or options != 0 or status > 0xFFFF:
            return False
        if command in DISCOVERY and length == 0 and n - off > ENCAP.size and seen == 0:
            return False    # discovery requests carry nothing after the header
        off += ENCAP.size + length
        seen += 1
    return seen > 0


def is_request(pkt: Packet) -> bool:
    """Towards port 44818 (the port decides over the engine's guess when only one side has it)."""
    if (pkt.dport == ENCAP_PORT) != (pkt.sport == ENCAP_PORT):
        return pkt.dport == ENCAP_PORT
    return pkt.from_client


def cpf_items(data: bytes, off: int = 0) -> list[tuple[int, bytes]]:
    """Common Packet Format items starting at `off` (item count first)."""
    if len(data) < off + 2:
        return []
    count = u16le(data, off)[0]
    off += 2
    items = []
    for _ in range(min(count, MAX_ITEMS)):
        if off + CPF_ITEM.size > len(data):
            break
        typ, length = CPF_ITEM.struct.unpack_from(data, off)
        items.append((typ, bytes(data[off + CPF_ITEM.size:off + CPF_ITEM.size + length])))
        off += CPF_ITEM.size + length
    return items
