"""Routine layer-2 frames: the cyclic bulk of a layer-2 fieldbus (EtherCAT process data),
recognised with array operations and replayed as routine TCP/UDP packets are.

A protocol declares `ProtocolSpec.frame_routine(buf, off, plen) -> (mask, key)` over the
Ethernet payloads of its EtherType's frames. A recognised frame's template is named by that key
mixed with the frame's MACs, VLANs and EtherType (a layer-2 decoder's output names the MACs):
the deep loop decodes its first frames, and once two in a row give the same observations the
later ones are counted (replay.Template), never decoded. An EtherType decoded by several modules
is left alone (one module's key cannot vouch for another's output). A recogniser that declares a
`macs` parameter also gets the frames' (source, destination) MAC columns: one that groups frames
into streams by publisher (GOOSE) needs them."""
from __future__ import annotations

import inspect
import zlib

import numpy as np

from plantguard.capture.replay import Template
from plantguard.util.arrays import col, hash_keys

MAX_FRAME_TEMPLATES = 4096     # (key, MACs, VLAN) pairs remembered; beyond, frames are decoded


class FrameRoutine:
    """The frame recognisers of the loaded modules and the templates they named."""

    def __init__(self, modules):
        owners: dict[int, list] = {}
        for m in modules:
            for et in m.SPEC.ethertypes:
                owners.setdefault(et, []).append(m)
        self.rules = []
        for m in modules:
            spec = m.SPEC
            if spec.frame_routine is None or not spec.replay:
                continue
            types = [et for et in spec.ethertypes if owners[et] == [m]]
            if types:
                salt = np.uint64(zlib.crc32(f"{spec.name}:frame".encode()))
                wants_macs = "macs" in inspect.signature(spec.frame_routine).parameters
                self.rules.append((np.array(types, np.int32), spec.frame_routine, salt, wants_macs))
        self.templates: dict[int, Template] = {}

    def codes(self, arr: np.ndarray, chunk, cols, rows: np.ndarray, tkeys: dict) -> np.ndarray:
        """The deep loop's index for each layer-2 row: -1 (decode, nothing to learn), or a
        negative code -2 - k whose template tkeys[-2 - k] is learnt or replayed."""
        out = np.full(len(rows), -1, np.int64)
        if not self.rules or not len(rows):
            return out
        et = cols.ethertype[rows]
        local: dict[int, int] = {}                 # template key -> its code in this chunk
        for types, fn, salt, wants_macs in self.rules:
            sel = np.flatnonzero(np.isin(et, types) & ~cols.llc[rows])
            if not len(sel):
                continue
            r = rows[sel]
            l3 = cols.l3[r]
            if wants_macs:        # a recogniser that groups frames by publisher (GOOSE streams)
                mask, key = fn(arr, chunk.offsets[r] + l3, chunk.caplen[r] - l3,
                               macs=(cols.src_mac[r], cols.dst_mac[r]))
            else:
                mask, key = fn(arr, chunk.offsets[r] + l3, chunk.caplen[r] - l3)
            if not mask.any():
                continue
            sel, r, key = sel[mask], r[mask], key[mask]
            full = hash_keys((col(key ^ salt), col(cols.src_mac[r]), col(cols.dst_mac[r]), col(cols.vlan[r]),
                              col(cols.inner_vlan[r]), col(cols.ethertype[r])))
            uniq, inverse = np.unique(full, return_inverse=True)
            code_of = np.full(len(uniq), -1, np.int64)
            for u, k in enumerate(uniq.tolist()):          # one step per key, not per frame
                t = self.templates.get(k)
                if t is None:
                    if len(self.templates) >= MAX_FRAME_TEMPLATES:
                        continue
                    t = self.templates[k] = Template(-1)
                if t.never:
                    continue
                code = local.get(k)
                if code is None:
                    code = local[k] = -2 - len(local)
                    tkeys[code] = t
                code_of[u] = code
            out[sel] = code_of[inverse.reshape(-1)]
        return out
