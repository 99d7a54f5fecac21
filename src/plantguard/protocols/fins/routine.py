"""Routine recognition for FINS (capture/routine.py calls this on whole chunks, one row per
packet): Memory Area Read commands and their responses, bare on UDP or in one whole FINS/TCP
Frame Send. The key covers every byte the decoder's output depends on for such a packet.

Declared in the package's SPEC; defined here beside the decoder whose output it must match."""
from __future__ import annotations

import numpy as np

from plantguard.protocols.fins.frame import COMMAND, FINS_TCP, ICF_RESPONSE, MAGIC, RESPONSE, TCP_FRAMING
from plantguard.util.arrays import bytes_hash, col, hash_keys, u16

_MAGIC = np.frombuffer(MAGIC, np.uint8)
_READ = 0x0101
_READ_DATA = 6                  # memory area code, 3-byte address, 2-byte count


def fins_read_routine(p, plen, from_client, l4, sport, dport):
    """Memory Area Read (0101): commands of exactly header + code + 6 data bytes, keyed on the
    ICF, the code and those 6 bytes (the detail: area, address, count), not the service id;
    responses keyed on the ICF, the code and the end code bytes (not the data read)."""
    w = p.shape[1]
    tcp = l4 == 6
    udp = l4 == 17
    magic = np.all(p[:, :4] == _MAGIC, axis=1)
    f = FINS_TCP.offset
    tlen = (u16(p, f.length).astype(np.int64) << 16) | u16(p, f.length + 2)
    framed = tcp & magic & (tlen + TCP_FRAMING.size == plen) & (u16(p, f.command) == 0) \
        & (u16(p, f.command + 2) == 2) & (u16(p, f.error) == 0) & (u16(p, f.error + 2) == 0)
    o = np.where(tcp, FINS_TCP.size, 0)
    ok = (udp | framed) & (plen >= o + RESPONSE.size) & (o + COMMAND.size + _READ_DATA <= w)
    rows = np.arange(len(p))
    icf = p[rows, np.minimum(o, w - 1)].astype(np.int64)
    code = (p[rows, np.minimum(o + 10, w - 1)].astype(np.int64) << 8) | p[rows, np.minimum(o + 11, w - 1)]
    response = (icf & ICF_RESPONSE) != 0
    ok &= code == _READ
    request = ok & ~response & (plen == o + COMMAND.size + _READ_DATA)
    reply = ok & response
    pos = np.arange(w)[None, :]
    start = (o + np.where(request, COMMAND.size, COMMAND.size))[:, None]
    end = (o + np.where(request, COMMAND.size + _READ_DATA, RESPONSE.size))[:, None]
    keep = (request | reply)[:, None] & (pos >= start) & (pos < end)
    key = hash_keys((col(from_client), col(l4), col(icf), col(code), bytes_hash(p, keep)))
    return request | reply, key
