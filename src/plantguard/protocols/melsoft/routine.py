"""Routine recognition for MELSOFT (capture/routine.py calls this on whole chunks, one row per
packet): the watch window's cyclic device reads (0x0410) and their responses, one whole frame
per packet, in frames without a footer (the footer's CRCs change on every frame, so those are
decoded). The key covers every byte the decoder's output depends on for such a packet.

Declared in the package's SPEC; defined here beside the decoder whose output it must match."""
from __future__ import annotations

import numpy as np

from plantguard.protocols.melsoft.frame import (
    COMMAND_DATA,
    ETHERNET,
    REQUEST_HEADER,
    REQUEST_TYPE,
    RESPONSE_HEADER,
    RESPONSE_TYPE,
    ROUTE,
    STATUS_AT,
)
from plantguard.util.arrays import col, hash_keys, le16, u16

_READ = 0x0410
_CD_REQ = ETHERNET.size + REQUEST_HEADER
_CD_RESP = ETHERNET.size + RESPONSE_HEADER
WIDTH = _CD_RESP + COMMAND_DATA.size


def melsoft_read_routine(p, plen, from_client, l4, sport, dport):
    """0x0410 requests keyed on the magic and the frame length (the detail names the data size
    only); responses on the magic, the length and the status (non-zero: an error)."""
    w = p.shape[1]
    if w < WIDTH:
        z = np.zeros(len(p), bool)
        return z, np.zeros(len(p), np.uint64)
    m0, m1 = p[:, 0].astype(np.int64), p[:, 1].astype(np.int64)
    request = (m0 == 0x57) & (m1 <= 1) & (p[:, ETHERNET.size] == REQUEST_TYPE)
    response = (m0 == 0xD7) & (m1 <= 1) & (p[:, ETHERNET.size] == RESPONSE_TYPE)
    route = (p[:, 5] == ROUTE[0]) & (p[:, 6] == ROUTE[1])
    whole = le16(p, ETHERNET.offset.size) + ETHERNET.size == plen
    cd = np.where(response, _CD_RESP, _CD_REQ)
    rows = np.arange(len(p))
    code = (p[rows, cd].astype(np.int64) << 8) | p[rows, cd + 1]
    data_size = p[rows, cd + 4].astype(np.int64) | (p[rows, cd + 5].astype(np.int64) << 8)
    ok = (request | response) & route & whole & (code == _READ) & (data_size == 0) & (plen >= cd + COMMAND_DATA.size)
    status = np.where(response, u16(p, ETHERNET.size + STATUS_AT), 0)
    key = hash_keys((col(from_client), col(l4), col(m0), col(m1), col(plen), col(status)))
    return ok, key
