"""Replaying routine packets: templates (what the deep tier said about one routine key of one
flow) and priming (keeping a module's per-flow state right while packets bypass it).

A routine packet (capture/routine.py) carries a *routine key*: a hash of every field its
protocol module's output depends on. Its (flow slot, key) pair names a Template:

                 first packet of a (flow, key) with room in the store
                                  |
                                  v
       +----------------------> LEARNING --- decode raised, or LEARN_TRIES decodes -----> NEVER
       |  output differs from     |          without two equal outputs in a row        (decoded
       +--- the previous decode --+                                                   every time,
                                  | output (the folded observations, by identity)      not learnt
                                  | equals the previous decode's                       again)
                                  v
                                READY: later packets with that key are replayed - their
                                       observations and operation totals counted, no decode

       any state --- the flow's decoder state or the flow itself is evicted ---> FORGOTTEN
                     (removed from the store; rows that still point at it are decoded without
                     learning; a later packet of the pair starts a new template)

A template is replayed in two places: in Engine._replay for whole groups of a chunk, when it was
ready before the chunk, and in the deep loop for the rows after the decode that made it ready
(those counts are summed per template and applied after the loop).

Priming. A module keeps per-flow state across packets (segment stream positions, requests
waiting for their reply, a session's negotiated options), and a replayed packet never reaches
it. So before the deep tier decodes a packet, the Primer feeds the module the latest replayed
packet of the same flow direction - and for a server packet also the client direction's (the
request it answers) - the older one first, with its output dropped (the replay counted it) and
an exception not counted as a decode error (the replay accounted for the packet). A packet older than
what the module has already seen in this chunk is not fed (that would reorder the stream). The
latest replayed packet of each direction is carried to the next chunk as a CarriedPacket (a copy
of its bytes: chunks need not share a buffer) and fed at most once, on the flow's first decode in
a later chunk. A direction whose
next packet comes after replayed ones is marked in the flow state (_pdustream.follows_replayed),
so that its segment stream takes the bytes in between as replayed, not lost (no gap, no hole)."""
from __future__ import annotations

import numpy as np

from plantguard.capture import headers
from plantguard.capture.deep import DeepTier, l4_packet
from plantguard.capture.layers import decode_frame
from plantguard.capture.records import CarriedPacket, ChunkContext
from plantguard.model import Packet
from plantguard.protocols._pdustream import follows_replayed
from plantguard.util.rowhash import kernel, mix, seed

MAX_TEMPLATES = 200_000       # routine (flow, key) pairs remembered
LEARN_TRIES = 8               # deep decodes of one routine key before giving up on replaying it


class Template:
    """What the deep tier said about one routine key of one flow (see the module docstring)."""
    __slots__ = ("ready", "never", "tries", "last_sig", "kept", "ops", "slot", "n_replayed", "last_i", "store",
                 "tid")

    def __init__(self, slot: int, store: TemplateStore | None = None, tid: int = -1):
        self.slot = slot
        self.store, self.tid = store, tid   # the store's arrays mirror `ready` (TemplateStore)
        self.ready = False        # READY: replay instead of decoding
        self.never = False        # NEVER (or FORGOTTEN): decode, do not learn
        self.tries = 0
        self.last_sig = None      # identities of the previous decode's folded observations
        self.kept: list | tuple = ()            # shared empties until learnt: templates are many
        self.ops: dict[str, int] | None = None
        self.n_replayed = 0       # replays inside the current deep loop, applied after it
        self.last_i = 0           # deep-loop index of the latest of those

    def learn(self, kept: list, ops: dict, failed: bool) -> None:
        """One more deep decode of this key: kept are the folded observations it gave, ops its
        operation counts, failed whether the module raised."""
        if self.never:
            return
        if failed:
            self.never, self.last_sig = True, None
            return
        sig = tuple(map(id, kept))
        if sig == self.last_sig:
            self.ready, self.kept, self.ops, self.last_sig = True, kept, ops, None
            if self.store is not None:
                self.store.ready[self.tid] = True
            return
        self.last_sig = sig
        self.tries += 1
        if self.tries >= LEARN_TRIES:
            self.never, self.last_sig = True, None

    def replay(self, agg, table, times: int, frame: int, ts: float, pos: int) -> None:
        """Count `times` more packets like the learnt one, the latest at (frame, ts, pos)."""
        for o in self.kept:
            agg.bump(o, times, frame, ts, pos)
        if self.ops:
            table.add_ops(self.slot, self.ops, times)

    def forget(self) -> None:
        """Its flow's decoder state was dropped: neither replay nor learn any more (as if the
        template had never been made)."""
        self.ready, self.never = False, True


class TemplateStore:
    """The templates by (flow slot, routine key), at most `limit` of them, each with an id (tid).

    Arrays by tid hold what the compiled replay (count_routine) needs: the key, whether the
    template is ready, and the replays counted but not yet applied (count, and the latest
    one's frame, time and run position). flush() applies them to the observations and the flow's
    operation totals; the engine flushes before a result is built and drop_flow() before a
    flow's templates go, so nothing counted is lost and no count reaches a reused flow slot.
    A count only adds up and the latest position wins (ObservationAggregator.bump), so when it
    is applied changes nothing.

    The index maps hash(slot, key) -> tid + 1 (open addressing, linear probing, the key
    compared). A dropped template's entry stays, its slot set to -1 so that it matches nothing;
    the index is made again from the live templates when entries fill half of it."""

    def __init__(self, agg, table, limit: int = MAX_TEMPLATES):
        self.agg, self.table, self.limit = agg, table, limit
        self.templates: list[Template | None] = []
        self._by_slot: dict[int, list[int]] = {}
        self._free: list[int] = []
        self.n_live = 0
        self.capacity = 0
        self._grow(1024)

    def __len__(self) -> int:
        return self.n_live

    def _grow(self, cap: int) -> None:
        old = self.capacity
        for name, dt, fill in (("tslot", np.int64, -1), ("tkey", np.uint64, 0), ("ready", bool, False),
                               ("count", np.int64, 0), ("lframe", np.int64, 0), ("lts", np.float64, 0.0),
                               ("lpos", np.int64, 0)):
            a = np.full(cap, fill, dt)
            if old:
                a[:old] = getattr(self, name)
            setattr(self, name, a)
        self.capacity = cap
        self._reindex()

    def _reindex(self) -> None:
        self.index = np.zeros(1 << max(4, (4 * self.capacity - 1).bit_length()), np.int64)
        self.entries = _rebuild_index(self.index, self.tslot, self.tkey, len(self.templates))

    def get(self, key: tuple) -> Template | None:
        tid = _find(self.index, self.tslot, self.tkey, key[0], np.uint64(key[1]))
        return self.templates[tid] if tid >= 0 else None

    def make(self, key: tuple) -> Template | None:
        """A new template for (slot, routine key); None when the store is full."""
        if self.n_live >= self.limit:
            return None
        if self._free:
            tid = self._free.pop()
        else:
            tid = len(self.templates)
            self.templates.append(None)
            if tid >= self.capacity:
                self._grow(2 * self.capacity)
        slot, rkey = key
        t = self.templates[tid] = Template(slot, self, tid)
        self.tslot[tid], self.tkey[tid], self.ready[tid], self.count[tid] = slot, rkey, False, 0
        if 2 * (self.entries + 1) > len(self.index):
            self._reindex()            # counts the new template's entry (its tslot is set)
        else:
            _insert(self.index, self.tslot, self.tkey, tid)
            self.entries += 1
        self._by_slot.setdefault(slot, []).append(tid)
        self.n_live += 1
        return t

    def flush(self, tids=None) -> None:
        """Apply the replays counted for these templates (default: all) and zero their counts."""
        count = self.count
        todo = np.flatnonzero(count[:len(self.templates)]).tolist() if tids is None else [i for i in tids if count[i]]
        agg, table, templates = self.agg, self.table, self.templates
        for tid in todo:
            templates[tid].replay(agg, table, int(count[tid]), int(self.lframe[tid]), float(self.lts[tid]),
                                  int(self.lpos[tid]))
            count[tid] = 0

    def drop_flow(self, slot: int) -> None:
        """The flow's decoder state or the flow itself is gone: its counted replays applied,
        its templates forgotten (rows still pointing at one are decoded without learning)."""
        tids = self._by_slot.pop(slot, ())
        if not tids:
            return
        self.flush(tids)
        for tid in tids:
            self.templates[tid].forget()
            self.templates[tid] = None
            self.tslot[tid], self.ready[tid] = -1, False
            self._free.append(tid)
        self.n_live -= len(tids)


@kernel
def _slot_hash(slot, rkey):
    return mix(mix(seed(), slot), rkey)


@kernel
def _find(index, tslot, tkey, slot, rkey):
    mask = np.uint64(index.shape[0] - 1)
    i = _slot_hash(slot, rkey) & mask
    while index[i] != 0:
        t = index[i] - 1
        if tslot[t] == slot and tkey[t] == rkey:
            return t
        i = (i + np.uint64(1)) & mask
    return -1


@kernel
def _insert(index, tslot, tkey, tid):
    mask = np.uint64(index.shape[0] - 1)
    i = _slot_hash(tslot[tid], tkey[tid]) & mask
    while index[i] != 0:
        i = (i + np.uint64(1)) & mask
    index[i] = tid + 1


@kernel
def _rebuild_index(index, tslot, tkey, n):
    entries = 0
    for tid in range(n):
        if tslot[tid] >= 0:
            _insert(index, tslot, tkey, tid)
            entries += 1
    return entries


@kernel
def count_routine(slot, rkey, defer, frames, ts, pos, index, tslot, tkey, ready, count, lframe, lts, lpos,
                  tid_out, replayed_out):
    """Engine._replay's loop, compiled: each routine row's template (tid_out, -1: none yet);
    a row whose template is ready, and is not deferred, is counted on it (count, and the latest
    row's frame, time and position) and marked replayed. Rows in capture order. Returns how
    many were."""
    n = 0
    for r in range(slot.shape[0]):
        t = _find(index, tslot, tkey, slot[r], rkey[r])
        tid_out[r] = t
        if t >= 0 and ready[t] and not defer[r]:
            count[t] += 1
            lframe[t] = frames[r]
            lts[t] = ts[r]
            lpos[t] = pos[r]
            replayed_out[r] = True
            n += 1
        else:
            replayed_out[r] = False
    return n


class Primer:
    """Feeds a flow's module the replayed packets it missed, before the deep tier decodes the
    flow's next packet (see the module docstring). Per chunk: start(), then catch_up() before
    every TCP/UDP decode and note_replayed() for every row replayed inside the deep loop, then
    finish(). Rows are L4 rows (indices into ctx.flows)."""

    def __init__(self, deep: DeepTier, counters: dict):
        self.deep = deep
        self.counters = counters                 # the engine's: primed_packets is counted there
        self.carried: dict[tuple[int, bool], CarriedPacket] = {}   # (slot, from_client) -> packet
        self._start_chunk(None, np.zeros(0, np.int64))

    def _start_chunk(self, ctx: ChunkContext | None, replayed: np.ndarray) -> None:
        self._ctx = ctx
        self._replayed = replayed                # rows replayed before the deep loop (sorted)
        self._same: dict[int, int] = {}          # deep row -> latest of those before it, same direction
        self._client: dict[int, int] = {}        # server deep row -> latest before it, client direction
        self._in_loop: dict[tuple, int] = {}     # (slot, from_client) -> latest row replayed in the loop
        self._seen: dict[int, int] = {}          # slot -> latest row its module has seen in this chunk
        self._fed: set[int] = set()              # rows primed in this chunk

    # ---- per chunk ----
    def start(self, ctx: ChunkContext, replayed: np.ndarray, to_deep: np.ndarray) -> None:
        """A new chunk: `replayed` are the L4 rows Engine._replay counted without decoding
        (sorted), `to_deep` the L4 rows the deep loop will decode."""
        self._start_chunk(ctx, replayed)
        if ctx.flows is not None and len(to_deep) and len(replayed):
            self._same, self._client = self._latest_replayed_before(ctx.flows, replayed, to_deep)

    @staticmethod
    def _latest_replayed_before(f, replayed, to_deep) -> tuple[dict, dict]:
        """For each deep row, the latest replayed row of its flow direction before it; for each
        server deep row, the latest replayed row of the client direction before it. Replayed
        rows are sorted by (slot, direction, row) and searched."""
        slot, from_client = f.slot, f.from_client
        big = np.int64(1) << 32
        kb = (slot[replayed] * 2 + from_client[replayed]) * big + replayed
        ob = np.argsort(kb, kind="stable")
        kb = kb[ob]
        src = replayed[ob]

        def before(rows, want_client):
            g = slot[rows] * 2 + (1 if want_client else from_client[rows])
            q = np.searchsorted(kb, g * big + rows) - 1
            ok = (q >= 0) & ((kb[np.maximum(q, 0)] // big) == g)
            return dict(zip(rows[ok].tolist(), src[q[ok]].tolist()))

        srv = to_deep[~from_client[to_deep]]
        return before(to_deep, False), (before(srv, True) if len(srv) else {})

    def note_replayed(self, slot: int, from_client: bool, row: int) -> None:
        """The deep loop replayed `row` (its template became ready earlier in this chunk)."""
        self._in_loop[(slot, from_client)] = row

    def catch_up(self, slot: int, from_client: bool, row: int, module, state: dict) -> None:
        """Before `row` of `slot` is decoded: feed the module what it missed of its flow."""
        seen = self._seen
        same = self._same.get(row, -1)
        in_loop = self._in_loop.get((slot, from_client), -1)
        row_same = same if same > in_loop else in_loop
        if from_client:
            todo = ((row_same, True),)
        else:
            cl = self._client.get(row, -1)
            in_loop = self._in_loop.get((slot, True), -1)
            if cl < in_loop:
                cl = in_loop
            # the older of the two first (the client's on a tie, as sorting (row, dir) does)
            todo = ((cl, True), (row_same, False)) if cl < row_same else ((row_same, False), (cl, True))
        for prev, d in todo:
            if prev >= 0:
                if prev > seen.get(slot, -1):     # older than what the module has seen: would reorder
                    self._prime_row(prev, d, module, state)
                    seen[slot] = prev
                else:                             # not fed: that direction's next packet follows it
                    sub = self._ctx.flows.sub
                    follows_replayed(state, d, int(sub.seq[prev]) + int(sub.pay_len[prev]))
            elif slot not in seen:                # nothing of this chunk seen yet: the carried one
                self._prime_carried(slot, d, module, state)
        seen[slot] = row

    def finish(self) -> None:
        """Carry each flow direction's latest replayed packet to the next chunk."""
        ctx, in_loop = self._ctx, self._in_loop
        if ctx is not None and ctx.flows is not None and (len(self._replayed) or in_loop):
            self._carry(ctx, np.concatenate([self._replayed, np.asarray(list(in_loop.values()), np.int64)]))
        self._start_chunk(None, np.zeros(0, np.int64))   # hold no chunk arrays between chunks

    def abandon(self) -> None:
        """The chunk under way raised: forget it without carrying anything from it."""
        self._start_chunk(None, np.zeros(0, np.int64))

    def forget(self, slot: int) -> None:
        self.carried.pop((slot, True), None)
        self.carried.pop((slot, False), None)

    # ---- steps ----
    def _prime_row(self, row: int, from_client: bool, module, state: dict) -> None:
        """Feed a replayed row of this chunk, built from the columns."""
        if row in self._fed:
            return
        self._fed.add(row)
        ctx = self._ctx
        sub = ctx.flows.sub
        r = int(ctx.flows.rows[row])
        a = int(sub.pay_off[row])
        pkt = Packet(ctx.cap, int(ctx.frames[r]), float(ctx.chunk.ts[r]),
                     bytes(ctx.chunk.buf[a:a + int(sub.pay_len[row])]),
                     *headers.l4_header(sub, row), from_client, state)
        follows_replayed(state, from_client, pkt.seq)
        self.deep.prime(module, pkt)
        self._count()

    def _prime_carried(self, slot: int, from_client: bool, module, state: dict) -> None:
        """Feed the packet carried from an earlier chunk, once."""
        carry = self.carried.get((slot, from_client))
        if carry is None or carry.primed:
            return
        carry.primed = True
        lay = decode_frame(carry.linktype, carry.frame)
        if lay is None:
            return
        follows_replayed(state, from_client, lay.seq)
        self.deep.prime(module, l4_packet(state, from_client, self._ctx.cap, carry.frame_no, carry.ts, lay))
        self._count()

    def _count(self) -> None:
        self.counters["primed_packets"] = self.counters.get("primed_packets", 0) + 1

    def _carry(self, ctx: ChunkContext, rows: np.ndarray) -> None:
        f = ctx.flows
        rows = np.sort(rows)
        g = f.slot[rows] * 2 + f.from_client[rows]
        o = np.argsort(g, kind="stable")
        gs = g[o]
        last = np.r_[gs[1:] != gs[:-1], True]
        lr = rows[o][last]
        r = f.rows[lr]
        c = ctx.chunk
        buf, fed = c.buf, self._fed
        for row, gk, off, n, lt, frame, ts in zip(lr.tolist(), gs[last].tolist(), c.offsets[r].tolist(),
                                                  c.caplen[r].tolist(), c.linktype[r].tolist(),
                                                  ctx.frames[r].tolist(), c.ts[r].tolist()):
            self.carried[(gk >> 1, bool(gk & 1))] = CarriedPacket(bytes(buf[off:off + n]), lt, frame, ts, row in fed)
