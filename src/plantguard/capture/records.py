"""The small records the engine's steps hand each other, with named fields instead of positions.

  ChunkContext  one chunk of one capture: what every step of Engine.process needs
  FlowRows      the chunk's TCP/UDP records as the flow table placed them (flow, direction, module)
  DeepRows      the per-row values of the rows the deep loop decodes, as Python lists
  CarriedPacket a flow direction's latest replayed packet (a copy), kept past its chunk for priming
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from plantguard.capture import headers
from plantguard.capture.columns import Columns
from plantguard.capture.formats import Chunk


class FlowRows(NamedTuple):
    """The TCP/UDP records of a chunk. Arrays are indexed by *L4 row* (position in `sub`);
    `rows` maps an L4 row back to its record in the chunk."""
    sub: Columns              # the chunk's columns, TCP/UDP records only
    rows: np.ndarray          # int64: record index in the chunk of each L4 row
    slot: np.ndarray          # int64: flow table row
    from_client: np.ndarray   # bool: sent by the flow's client
    module: np.ndarray        # int64: protocol module index (Engine.modules), -1 unclassified


@dataclass(slots=True)
class ChunkContext:
    """One chunk of one capture, as the engine's steps share it. Arrays are per record."""
    cap: str                  # capture path, as observations name it
    cap_idx: int              # index of the capture in this run
    chunk: Chunk
    frames: np.ndarray        # int64: frame number (1-based, per capture)
    pos: np.ndarray           # int64: position in the whole run (orders packets across captures)
    flows: FlowRows | None = None   # set once the flow table placed them; None: no TCP/UDP record
    reassembled: np.ndarray | None = None   # bool: the record is a reassembled IP datagram; None: none is


class DeepRows(NamedTuple):
    """Per-row values of the rows handed to the deep loop, gathered once as Python lists
    (indexing numpy scalars row by row is slow). Index i is the i-th row of the loop; the L4
    fields hold 0 for layer-2 rows."""
    frame: list
    ts: list
    pos: list
    offset: list              # record start in chunk.buf
    caplen: list
    linktype: list
    slot: list
    module: list
    from_client: list
    pay_off: list             # payload start in chunk.buf
    pay_len: list
    header: Callable[[int], tuple] | None   # L4 row -> Packet header fields (headers.L4Rows.row)

    @classmethod
    def gather(cls, ctx: ChunkContext, rows: np.ndarray, l4i: np.ndarray) -> DeepRows:
        """rows: record indices in capture order; l4i: their L4 row, -1 for layer-2 rows."""
        c = ctx.chunk
        per_record = (ctx.frames[rows].tolist(), c.ts[rows].tolist(), ctx.pos[rows].tolist(),
                      c.offsets[rows].tolist(), c.caplen[rows].tolist(), c.linktype[rows].tolist())
        f = ctx.flows
        if f is None:
            zeros = [0] * len(rows)
            return cls(*per_record, zeros, zeros, zeros, zeros, zeros, None)
        jj = np.maximum(l4i, 0)
        # TCP/UDP rows: header fields and payload bounds from the columns, not decoded again
        return cls(*per_record, f.slot[jj].tolist(), f.module[jj].tolist(), f.from_client[jj].tolist(),
                   f.sub.pay_off[jj].tolist(), f.sub.pay_len[jj].tolist(), headers.L4Rows(f.sub).row)


@dataclass(slots=True)
class CarriedPacket:
    """The latest replayed packet of one flow direction, remembered past the end of its chunk
    so that the first decode of the flow in a later chunk can prime the module with it (see
    replay.Primer). Its bytes are a copy: live and ring chunks each have a buffer of their own,
    and one small packet per flow direction is bounded by the flow and state caps."""
    frame: bytes              # the whole record as captured
    linktype: int
    frame_no: int
    ts: float
    primed: bool              # already fed to the module: never feed it twice
