"""Routine recognition for C37.118 (capture/routine.py calls this on whole chunks, one row per
packet): data frames, 30 to 60 a second per stream, each whole in its packet with a good check
word. The decoder's output for such a frame depends on the stream's IDCODE, the frame type and
version and the first PMU block's STAT word (errors once per flow); multi-PMU streams, whose other
STAT words sit where the configuration says, are held for decoding by the package's Hold.

Declared in the package's SPEC; defined here beside the decoder whose output it must match."""
from __future__ import annotations

import binascii

import numpy as np

from plantguard.protocols.synchrophasor.frame import (
    DATA,
    HEADER,
    MIN_FRAME,
    SYNC,
    VERSIONS,
)
from plantguard.util.arrays import col, hash_keys, u16

WIDTH = 512                     # data frames longer than this are decoded, not replayed
_VERSIONS = np.array(sorted(VERSIONS))


def crc_rows(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """CRC-CCITT of the first n[i] bytes of each row (n <= p.shape[1]): the C crc_hqx per row
    costs about a microsecond, where a column loop over the array paid for the widest row."""
    return np.fromiter((binascii.crc_hqx(p[i, :k].tobytes(), 0xFFFF) for i, k in enumerate(n.tolist())),
                       np.int64, len(n))


def data_frame_routine(p, plen, from_client, l4, sport, dport):
    """Data frames filling their packet, with a good CRC, keyed on direction, SYNC's second byte
    (type and version), FRAMESIZE, IDCODE and the first STAT word; not SOC, FRACSEC or values."""
    w = p.shape[1]
    kind = p[:, 1].astype(np.int64)
    size = u16(p, HEADER.offset.framesize)
    ok = (p[:, 0] == SYNC) & ((kind >> 4) == DATA) & np.isin(kind & 0x0F, _VERSIONS) \
        & (size == plen) & (size >= MIN_FRAME + 2) & (size <= w)
    rows = np.flatnonzero(ok)
    if len(rows):
        sel = p[rows]
        n = size[rows] - 2
        chk = (sel[np.arange(len(rows)), n - 0].astype(np.int64) << 8) | sel[np.arange(len(rows)), n + 1]
        ok[rows] = crc_rows(sel, n) == chk
    key = hash_keys((col(from_client), col(l4), col(kind), col(size), col(u16(p, HEADER.offset.idcode)),
                     col(u16(p, HEADER.size))))
    return ok, key


def may_configure(p, plen, from_client, l4, sport, dport):
    """Hold rows: every packet but a lone data frame. A configuration frame may start one, or
    follow another frame in a TCP segment, or be cut across segments; each may set the PMU
    blocks later data frames are parsed with. These packets are decoded anyway."""
    kind = p[:, 1].astype(np.int64) >> 4
    size = u16(p, HEADER.offset.framesize)
    return ~((p[:, 0] == SYNC) & (kind == DATA) & (size == plen))
