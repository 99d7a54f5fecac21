"""Routine recognition for HART-IP (capture/routine.py calls this on whole chunks, one row per
packet): keep-alives, and token-passing PDUs of the cyclic process data polls (commands 1, 2, 3
and 9: requests, replies and published burst frames), one whole message per payload. The key
covers every byte the decoder's output depends on for such a packet, leaving out the sequence
number and the process values.

Declared in the package's SPEC; defined here beside the decoder whose output it must match."""
from __future__ import annotations

import numpy as np

from plantguard.protocols.hart_ip.commands import POLLS
from plantguard.protocols.hart_ip.frame import (
    DELIM_LONG,
    FRAME_ACK,
    FRAME_BACK,
    FRAME_STX,
    HEADER,
    ID_KEEP_ALIVE,
    ID_TOKEN_PASSING,
)
from plantguard.util.arrays import bytes_hash, col, hash_keys, u16

_POLLS = np.array(sorted(POLLS), np.int64)


def hart_ip_routine(p, plen, from_client, l4, sport, dport):
    """Rows holding exactly one HART-IP message (byte count == payload length) of version 1/2:
    keep-alives keyed on the header's version, type, id and status; token-passing PDUs of a poll
    command without expansion bytes keyed on those and the HART frame up to its byte count (the
    delimiter and address the operation names) plus, in replies, the response code and device
    status byte (an error when the code says so)."""
    w = p.shape[1]
    rows = np.arange(len(p))
    h = HEADER.offset
    version = p[:, h.version]
    whole = (plen >= HEADER.size) & (u16(p, h.byte_count).astype(np.int64) == plen) \
        & ((version == 1) | (version == 2))
    msg_id = p[:, h.msg_id]
    keep_alive = whole & (msg_id == ID_KEEP_ALIVE) & (plen == HEADER.size)
    delim = p[:, HEADER.size].astype(np.int64)
    alen = np.where(delim & DELIM_LONG, 5, 1)
    ftype = delim & 7
    reply = (ftype == FRAME_ACK) | (ftype == FRAME_BACK)
    command = p[rows, np.minimum(HEADER.size + 1 + alen, w - 1)].astype(np.int64)
    end = HEADER.size + 1 + alen + 2 + np.where(reply, 2, 0)
    pdu = whole & (msg_id == ID_TOKEN_PASSING) & ((delim >> 5) & 3 == 0) & (reply | (ftype == FRAME_STX)) \
        & np.isin(command, _POLLS) & (plen >= end + 1) & (end <= w)
    end = np.where(pdu, end, HEADER.size)
    pos = np.arange(w)[None, :]
    keep = (pos < 4) | ((pos >= HEADER.size) & (pos < end[:, None]))
    ok = keep_alive | pdu
    key = hash_keys((col(from_client), col(l4), col(plen), bytes_hash(p, keep & ok[:, None])))
    return ok, key
