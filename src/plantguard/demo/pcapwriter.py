"""Writes a classic little-endian pcap (microsecond timestamps, Ethernet link type)."""
from __future__ import annotations

import struct
from typing import BinaryIO, Iterable

PCAP_MAGIC_US = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 65535


def write_pcap(out: BinaryIO, frames: Iterable[tuple[int, bytes]],
               linktype: int = LINKTYPE_ETHERNET) -> int:
    """frames: (timestamp in integer microseconds since the epoch, frame bytes). Returns the
    number of records written."""
    out.write(struct.pack("<IHHiIII", PCAP_MAGIC_US, 2, 4, 0, 0, SNAPLEN, linktype))
    n = 0
    for ts_us, data in frames:
        sec, usec = divmod(ts_us, 1_000_000)
        out.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
        out.write(data)
        n += 1
    return n
