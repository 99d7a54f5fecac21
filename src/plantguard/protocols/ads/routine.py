"""Routine recognition for ADS (capture/routine.py calls this on whole chunks, one row per
packet): one whole AMS/TCP frame per segment, the cyclic bulk of a TwinCAT conversation (Read,
ReadState, ReadWrite and Write polling, notification subscriptions, their responses and the
Device Notifications a server pushes). The key covers every byte the decoder's output depends on
for such a packet, never the invoke id.

Declared in the package's SPEC; defined here beside the decoder whose output it must match."""
from __future__ import annotations

import numpy as np

from plantguard.protocols.ads.frame import AMS, AMS_HEADER, AMS_TCP, RESPONSE
from plantguard.util.arrays import bytes_hash, col, hash_keys, le16

_O = AMS.offset
_DATA = AMS.size
_TARGET_DESC_START = ord("<")
# request data bytes describe() reads, per command id (ReadWrite: all of it, see below)
_REQUEST_BYTES = {1: 0, 2: 12, 3: 12, 4: 0, 5: 4, 6: 24, 7: 4, 8: 0}
_READ_WRITE = 9


def _le32(p, i):
    return le16(p, i) | (le16(p, i + 2) << 16)


def ads_routine(p, plen, from_client, l4, sport, dport):
    """Requests keyed on the target AMS port, command, flags, data length and the data bytes the
    operation's detail is made of (a ReadWrite's whole data, so names it resolves are covered:
    only when it fits the row); responses keyed on the command, flags, AMS error code and ADS
    result, not the data read (a Read whose data may be a target description, which the decoder
    reads for identity, and ReadDeviceInfo replies are left to the decoder)."""
    w = p.shape[1]
    length = _le32(p, _O.length)
    data_len = _le32(p, _O.data_length)
    command = le16(p, _O.command)
    flags = le16(p, _O.flags)
    whole = (l4 == 6) & (plen >= _DATA) & (le16(p, _O.reserved) == 0) & (length == AMS_HEADER + data_len) \
        & (plen == AMS_TCP.size + length)
    response = (flags & RESPONSE) != 0
    need = np.zeros(len(p), np.int64) - 1
    for cmd, nbytes in _REQUEST_BYTES.items():
        need[command == cmd] = nbytes
    need = np.where(command == _READ_WRITE, data_len, need)
    request = whole & ~response & (need >= 0) & (_DATA + np.maximum(need, 0) <= w) \
        & ((command == _READ_WRITE) | (data_len >= need))
    first_data = p[:, min(_DATA + 8, w - 1)]
    reply = whole & response & (command >= 2) & (command <= 9) & (command != 8) \
        & ~((command == 2) & (data_len > 8) & (first_data == _TARGET_DESC_START))
    pos = np.arange(w)[None, :]
    req_keep = request[:, None] & (pos >= _DATA) & (pos < (_DATA + np.maximum(need, 0))[:, None])
    res_keep = reply[:, None] & (pos >= _DATA) & (pos < _DATA + 4)
    target_port = le16(p, _O.target_port)
    error = _le32(p, _O.error)
    key = hash_keys((col(from_client), col(command), col(flags), col(data_len),
                     col(np.where(request, target_port, 0)), col(error),
                     bytes_hash(p, req_keep | res_keep)))
    return request | reply, key
