"""CIP implicit I/O (class 0/1 connected data on UDP 2222): a sequenced address item (connection
id and sequence number) then a connected data item, and the one "read" operation each such
packet gives."""
from __future__ import annotations

from dataclasses import dataclass

from plantguard.model import Observation, Packet
from plantguard.protocols._header import header
from plantguard.protocols.base import once, u16le
from plantguard.protocols.enip.encap import (
    CPF_ITEM,
    ITEM_CONNECTED_DATA,
    ITEM_SEQUENCED_ADDRESS,
    NAME,
)

SEQUENCED_ADDRESS = header("SequencedAddress", "<", ("connection_id", "I"), ("sequence", "I"))
# The layout the routine recogniser matches: item count, sequenced address item, data item header.
IO_HEAD = header("ImplicitIoHead", "<", ("count", "H"), ("address_type", "H"), ("address_length", "H"),
                 ("connection_id", "I"), ("sequence", "I"), ("data_type", "H"), ("data_length", "H"))


@dataclass(slots=True)
class IOPacket:
    connection_id: int
    sequence: int
    data: bytes


def parse_io(payload: bytes) -> IOPacket | None:
    """An implicit I/O packet: sequenced address item, then connected data item, exactly."""
    if len(payload) < 2:
        return None
    count = u16le(payload, 0)[0]
    if not 1 <= count <= 4:
        return None
    items, off = [], 2
    for _ in range(count):
        if off + CPF_ITEM.size > len(payload):
            return None
        typ, length = CPF_ITEM.struct.unpack_from(payload, off)
        end = off + CPF_ITEM.size + length
        if end > len(payload):
            return None
        items.append((typ, payload[off + CPF_ITEM.size:end]))
        off = end
    if off != len(payload) or items[0][0] != ITEM_SEQUENCED_ADDRESS or len(items[0][1]) != SEQUENCED_ADDRESS.size:
        return None
    cid, seq = SEQUENCED_ADDRESS.struct.unpack_from(items[0][1], 0)
    data = next((d for t, d in items[1:] if t == ITEM_CONNECTED_DATA), None)
    if data is None:
        return None
    return IOPacket(cid, seq, bytes(data))


def _observe_io(pkt: Packet, io: IOPacket) -> list[Observation]:
    out: list[Observation] = []
    if once(pkt, "service"):
        out.append(pkt.observe("service", NAME, subject="dst", name=NAME, transport="implicit I/O"))
    out.append(pkt.observe("operation", NAME, subject="dst", category="read", code=ITEM_CONNECTED_DATA,
                           name="Implicit I/O", detail=f"connection 0x{io.connection_id:08x}"))
    return out
