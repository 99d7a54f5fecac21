"""Routine recognition for CODESYS (capture/routine.py calls these on whole chunks, one row per
packet): the cyclic Monitoring 2 Read requests an engineering tool or HMI polls with, each one
whole block driver block (TCP) or datagram (UDP) holding the first block of a channel message.

And when CODESYS packets must be decoded rather than replayed: a TCP payload
that is not exactly whole block driver blocks leaves a part block in the flow's stream, and the
next packets' output depends on it. Such packets are hold rows; a flow whose stream holds a part
block when a chunk starts is decoded. Whole blocks and UDP datagrams depend on nothing before
them and may be replayed (prime() moves the stream and the once-per-flow service past them).

Declared in the package's SPEC; defined here beside the decoder whose state it describes."""
from __future__ import annotations

import numpy as np

from plantguard.protocols.codesys.frame import (
    BLOCK_FIRST,
    BLOCK_FIRST_SIZE,
    CH_BLOCK,
    DG_MAGIC,
    REPLY_BIT,
    SRV_TAG_PLAIN,
    SVC_CHANNEL,
    TCP_HEADER,
    TCP_MAGIC,
)
from plantguard.protocols.codesys.services import SG_MONITORING2
from plantguard.util.arrays import bytes_at, bytes_hash, col, hash_keys, le16

_MAGIC = np.frombuffer(TCP_MAGIC, np.uint8)
WIDTH = TCP_HEADER
READ_WIDTH = 160        # block driver, the longest datagram header, first block and service header
_READ = 1               # SRV_MONITORING2_READ


def monitoring_read_routine(p, plen, from_client, l4, sport, dport):
    """Monitoring 2 Read requests: a whole block (TCP: magic and length equal to the payload),
    a datagram of the channel service whose payload is a first application block with a plain
    service header of group Monitoring 2, service Read, not a reply. The decoder's output for
    it is the operation (its code, the session id and the channel id in the detail) and the
    once-per-flow service; the key holds the direction, the transport and those header bytes
    (header tag, size, group, service, session, channel), not the variables' list."""
    n, w = p.shape
    tcp, udp = l4 == 6, l4 == 17
    whole = np.all(p[:, :4] == _MAGIC, axis=1) & ((le16(p, 6) << 16 | le16(p, 4)) == plen)
    s = np.where(tcp, TCP_HEADER, 0)
    rows = np.arange(n)

    def at(off):
        return p[rows, np.minimum(off, w - 1)].astype(np.int64)

    words = at(s + 1) & 7
    lens = at(s + 5)
    end = s + words * 2 + (lens & 0x0F) * 2 + (lens >> 4) * 2
    pay = s + ((end - s) + 3) // 4 * 4               # padded to 4 from the datagram's start
    srv = pay + BLOCK_FIRST_SIZE
    ok = (udp | (tcp & whole)) & (at(s) == DG_MAGIC) & (words >= 3) & (at(s + 3) == SVC_CHANNEL)
    ok &= (srv + 16 <= w) & (srv + 16 <= plen)
    ok &= (at(pay) == CH_BLOCK) & ((at(pay + 1) & BLOCK_FIRST) > 0)
    size = at(srv + 2) | at(srv + 3) << 8
    group = at(srv + 4) | at(srv + 5) << 8
    ok &= ((at(srv) | at(srv + 1) << 8) == SRV_TAG_PLAIN) & (size >= 12) & (size <= 256) & (size % 2 == 0)
    ok &= ((group & 0x7F) == SG_MONITORING2) & ((group & REPLY_BIT) == 0)
    ok &= (at(srv + 6) | at(srv + 7) << 8) == _READ
    head = bytes_at(p, srv, 12)                     # tag, size, group, service, session
    chan = at(pay + 2) | at(pay + 3) << 8
    keep = np.ones(head.shape, bool)
    key = hash_keys((col(from_client), col(l4), col(chan), bytes_hash(head, keep)))
    return ok, key


def hold_rows(p, plen, from_client, l4, sport, dport):
    """TCP payloads that are not one whole block (a block cut short, or more than one)."""
    tcp = l4 == 6
    whole = np.all(p[:, :4] == _MAGIC, axis=1) & ((le16(p, 6).astype(np.int64) << 16 | le16(p, 4)) == plen)
    return tcp & (plen > 0) & ~whole


def holds(state: dict | None) -> bool:
    """The flow's stream holds the start of a block whose rest has not arrived."""
    if not state:
        return False
    return any(getattr(state.get(k), "pending", b"") for k in ("_c2s", "_s2c"))
