"""When CODESYS packets must be decoded rather than replayed (capture/routine.py): a TCP payload
that is not exactly whole block driver blocks leaves a part block in the flow's stream, and the
next packets' output depends on it. Such packets are hold rows; a flow whose stream holds a part
block when a chunk starts is decoded. Whole blocks and UDP datagrams depend on nothing before
them and may be replayed (prime() moves the stream and the once-per-flow service past them).

Declared in the package's SPEC; defined here beside the decoder whose state it describes."""
from __future__ import annotations

import numpy as np

from plantguard.protocols.codesys.frame import TCP_HEADER, TCP_MAGIC
from plantguard.util.arrays import le16

_MAGIC = np.frombuffer(TCP_MAGIC, np.uint8)
WIDTH = TCP_HEADER


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
