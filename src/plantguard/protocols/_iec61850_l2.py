"""What IEC 61850 GOOSE (EtherType 0x88B8, IEC 61850-8-1) and Sampled Values (0x88BA,
IEC 61850-9-2) frames share: an 8-byte header before the BER-encoded APDU (the payload the
capture layer hands over is the Ethernet payload after any 802.1Q tags):

    APPID (u16), Length (u16: from APPID to the end of the APDU), Reserved 1 (u16; bit 15 is the
    Ed.2 simulation flag), Reserved 2 (u16)

plus the small readers both decoders use (bounded text, BER unsigned integers, UtcTime) and the
array walk of BER elements their routine recognisers use. Private: not a protocol module."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plantguard.protocols._ber import BerError, to_uint
from plantguard.protocols.base import printable

HEADER = 8
SIMULATION_BIT = 0x8000         # Reserved 1, IEC 61850-8-1 Ed.2 / 9-2 Ed.2.1
MAX_TEXT = 129                  # VisibleString(SIZE(0..129)) for references and ids
MAX_KEY_BYTES = 1500            # raw bytes of a reference kept as a state key (one frame's worth)


@dataclass(frozen=True)
class Header:
    appid: int
    length: int
    reserved1: int
    reserved2: int

    @property
    def simulation(self) -> bool:
        return bool(self.reserved1 & SIMULATION_BIT)


def header(payload: bytes) -> Header | None:
    """The common header, or None when the payload is shorter than one."""
    if len(payload) < HEADER:
        return None
    b = payload
    return Header(b[0] << 8 | b[1], b[2] << 8 | b[3], b[4] << 8 | b[5], b[6] << 8 | b[7])


def apdu_end(payload: bytes, h: Header) -> int:
    """Where the APDU ends: the Length field, never past the payload (Ethernet padding follows
    a short frame; a truncated capture ends early)."""
    return min(len(payload), max(h.length, HEADER))


def text(b: bytes) -> str:
    """A VisibleString from the device, kept as text, bounded and made printable."""
    return printable(bytes(b[:MAX_TEXT]), MAX_TEXT)


def uint(b: bytes) -> int:
    """A BER INTEGER holding an unsigned value (stNum, sqNum, confRev: INT32U, encoded with a
    leading zero byte when the top bit is set)."""
    if len(b) > 5:
        raise BerError("unsigned integer wider than 32 bits")
    return to_uint(b)


def utc_time(b: bytes) -> tuple[float, int] | None:
    """UtcTime (IEC 61850-8-1 8.1.3.7): 4 bytes of seconds since 1970, 3 bytes of binary fraction
    of a second, 1 byte of time quality -> (seconds, quality)."""
    if len(b) != 8:
        return None
    secs = int.from_bytes(b[:4], "big")
    frac = int.from_bytes(b[4:7], "big") / (1 << 24)
    return secs + frac, b[7]


def ied_name(reference: str) -> str | None:
    """The IED name of an object reference ("IEDLDName/LLN0$GO$gcb"): the logical-device part
    before '/' (an IED name with the LD instance appended, as SCL builds it; the part an operator
    recognises as the device)."""
    ld = reference.split("/", 1)[0].strip()
    return (ld or None) if "/" in reference else None


# --- array walk (routine recognisers) ------------------------------------------------------

def tlv(arr: np.ndarray, pos: np.ndarray, end: np.ndarray):
    """The BER element at `pos` of every row (single-byte tag, short or 1-2 byte long length):
    (ok, tag, value_start, value_end). A row whose element does not fit before `end` is not ok."""
    last = len(arr) - 1

    def at(i):
        return arr[np.clip(i, 0, last)].astype(np.int64)

    tag, l0 = at(pos), at(pos + 1)
    l1, l2 = at(pos + 2), at(pos + 3)
    short = l0 < 0x80
    n = np.where(short, l0, np.where(l0 == 0x81, l1, l1 << 8 | l2))
    hdr = np.where(short, 2, np.where(l0 == 0x81, 3, 4))
    start = pos + hdr
    stop = start + n
    ok = (short | (l0 == 0x81) | (l0 == 0x82)) & (tag & 0x1F != 0x1F) & (pos + 2 <= end) & (stop <= end)
    return ok, tag, start, stop


def uint_at(arr: np.ndarray, start: np.ndarray, stop: np.ndarray, width: int = 5) -> np.ndarray:
    """The big-endian unsigned value of [start, stop) of every row (at most `width` bytes)."""
    last = len(arr) - 1
    v = np.zeros(len(start), np.int64)
    for k in range(width):
        i = start + k
        inside = i < stop
        v = np.where(inside, v << 8 | arr[np.clip(i, 0, last)].astype(np.int64), v)
    return v


def previous_in_group(group: np.ndarray) -> np.ndarray:
    """For rows in capture order: the index of the previous row of the same group, -1 if none."""
    n = len(group)
    prev = np.full(n, -1, np.int64)
    if not n:
        return prev
    order = np.argsort(group, kind="stable")
    g = group[order]
    same = np.concatenate([[False], g[1:] == g[:-1]])
    prev[order[same]] = order[np.flatnonzero(same) - 1]
    return prev


MAX_ROUTINE_BYTES = 1536        # longer frames are left to the decoder
_BLOCK = 4096                   # rows hashed at a time (bounds the byte matrix)


def masked_hash(arr: np.ndarray, off: np.ndarray, plen: np.ndarray, ok: np.ndarray,
                volatile: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Hash of each ok row's payload bytes [off, off + plen), the bytes of its volatile ranges
    ([start, stop) absolute positions: counters the decoder's output does not depend on) counted
    as zero; 0 for rows not ok."""
    from plantguard.util.arrays import bytes_hash, col, hash_keys
    out = np.zeros(len(off), np.uint64)
    rows = np.flatnonzero(ok)
    last = len(arr) - 1
    for b in range(0, len(rows), _BLOCK):
        r = rows[b:b + _BLOCK]
        w = int(plen[r].max()) if len(r) else 0
        if w <= 0:
            continue
        pos = off[r, None] + np.arange(w)[None, :]
        m = arr[np.clip(pos, 0, last)]
        keep = pos < (off[r] + plen[r])[:, None]
        for start, stop in volatile:
            keep &= ~((pos >= start[r, None]) & (pos < stop[r, None]))
        out[r] = hash_keys((bytes_hash(m, keep), col(plen[r])))
    return out
