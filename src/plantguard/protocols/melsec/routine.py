"""Routine recognition for SLMP (capture/routine.py calls this on whole chunks, one row per
packet): batch-read polling (0x0401) and the responses that completed normally, binary 3E/4E,
one whole frame per packet. Hold marks the requests whose response the decoder waits for (CPU
model name, remote password): from one on, the flow's chunk is decoded, so a replayed response
never stands in for the one that carries the model name.

Declared in the package's SPEC; defined here beside the decoder whose output it must match."""
from __future__ import annotations

import numpy as np

from plantguard.protocols.melsec.frame import REQUEST, RESPONSE, ROUTE
from plantguard.util.arrays import bytes_hash, col, hash_keys

WAITS = frozenset({0x0101, 0x1630, 0x1631})   # requests whose response the decoder pairs
_READ = 0x0401


def _frames(p, plen):
    """(request, response, 4E, offset of the route fields) per row, binary subheaders only."""
    b0, b1 = p[:, 0], p[:, 1]
    four = ((b0 == 0x54) | (b0 == 0xD4)) & (b1 == 0) & (p[:, 4] == 0) & (p[:, 5] == 0)
    three = ((b0 == 0x50) | (b0 == 0xD0)) & (b1 == 0)
    pre = np.where(four, 6, 2)
    request = (four | three) & ((b0 == 0x50) | (b0 == 0x54))
    response = (four | three) & ((b0 == 0xD0) | (b0 == 0xD4))
    rows = np.arange(len(p))
    at = pre + ROUTE.offset.length
    length = p[rows, at].astype(np.int64) | (p[rows, at + 1].astype(np.int64) << 8)
    whole = pre + ROUTE.size + length == plen
    return request & whole, response & whole, four, pre


def melsec_hold_rows(p, plen, from_client, l4, sport, dport):
    """Requests of the commands the decoder pairs with their response."""
    request, _response, _four, pre = _frames(p, plen)
    rows = np.arange(len(p))
    at = pre + REQUEST.offset.command
    command = p[rows, at].astype(np.int64) | (p[rows, at + 1].astype(np.int64) << 8)
    return request & np.isin(command, list(WAITS))


def melsec_read_routine(p, plen, from_client, l4, sport, dport):
    """Batch reads keyed on the subheader and every byte from the command on (the detail: device,
    number, count, subcommand), not the serial number; responses with end code 0 keyed on the
    subheader only (their data, the values read, is not in any observation)."""
    w = p.shape[1]
    request, response, four, pre = _frames(p, plen)
    rows = np.arange(len(p))
    at = pre + REQUEST.offset.command
    command = p[rows, np.minimum(at, w - 1)].astype(np.int64) | (p[rows, np.minimum(at + 1, w - 1)].astype(np.int64) << 8)
    request &= (command == _READ) & (plen <= w) & (plen >= pre + REQUEST.size + 6)
    end_at = pre + RESPONSE.offset.end_code
    end = p[rows, np.minimum(end_at, w - 1)].astype(np.int64) | (p[rows, np.minimum(end_at + 1, w - 1)].astype(np.int64) << 8)
    response &= (end == 0) & (plen >= pre + RESPONSE.size)
    pos = np.arange(w)[None, :]
    keep = request[:, None] & (pos >= at[:, None]) & (pos < plen[:, None])
    key = hash_keys((col(from_client), col(l4), col(p[:, 0]), col(four), col(request), bytes_hash(p, keep)))
    return request | response, key
