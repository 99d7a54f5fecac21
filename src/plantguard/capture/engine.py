"""The packet engine: analyze() turns captures into an AnalysisResult with the two-tier design.

Per chunk of records (Engine.process, read top-down):
  1. columnar tier (columns.py): L2-L4 header fields of every record as arrays;
  2. flow table (flows.py): packets grouped into bidirectional flows, counters updated from
     arrays (_place);
  3. classification: the first payload packets of a new flow go to the protocol registry
     (port AND signature), once per flow, not per packet (_classify);
  4. routing (_route): segments that only repeat bytes already seen are skipped
     (_track_streams); routine packets (routine.py) of classified flows whose template is
     ready replay what the deep tier said about the same kind of packet before, as counts,
     without a Python object (_replay; templates and priming live in replay.py);
  5. deep tier (deep.py): the remaining packets of classified flows and layer-2 protocol frames
     are decoded one by one by their protocol module, in capture order (_deep).
The result equals reference.analyze_reference() (tests compare them on every shared capture);
memory grows with flows and distinct observations, never with packets. docs/engine.md tells
the whole story."""
from __future__ import annotations

import gc
import logging
import os
import sys
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from plantguard.capture import columns, flowkernels, formats, routine
from plantguard.capture.frame_routine import FrameRoutine
from plantguard.capture.interrupt import interrupt_in
from plantguard.capture.aggregate import ObservationAggregator
from plantguard.budget import DEFAULT as DEFAULT_BUDGET, Budget
from plantguard.capture.deep import MAX_CLASSIFY_TRIES, DeepTier, Partial
from plantguard.capture.flows import FlowTable
from plantguard.capture.layers import FRAGMENT_COUNTERS, Reassembler, decode_frame, undecoded_notes
from plantguard.capture.records import ChunkContext, DeepRows, FlowRows
from plantguard.capture.replay import Primer, Template, TemplateStore, count_routine
from plantguard.model import AnalysisResult, CaptureStats, Observation, Packet
from plantguard.protocols import registry
# the protocol modules' segment streams judge repeats with the same window
from plantguard.protocols import _pdustream
from plantguard.protocols._pdustream import REORDER_WINDOW, RETRANSMIT_WINDOW, release_state

log = logging.getLogger(__name__)

DEFAULT_MAX_FLOWS = DEFAULT_BUDGET.max_flows      # the defaults follow the memory budget (budget.py)
DEFAULT_MAX_STATES = DEFAULT_BUDGET.max_states
GAP_FLOWS_NOTED = 5                               # flows named in the stream-gap note
DEFAULT_CHUNK = 65536


def analyze(paths: Iterable[str | os.PathLike], progress: Callable[[int], None] | None = None, *,
            max_flows: int | None = None, max_states: int | None = None,
            chunk_records: int = DEFAULT_CHUNK, budget: Budget | None = None, shard=None,
            packet_filter=None) -> AnalysisResult:
    """Analyse capture files (directories mean every capture below them). progress(n) is
    called after each chunk with the number of packets it held. The limits come from `budget`
    (default: budget.DEFAULT, what the CLI uses); max_flows / max_states override it. `shard`
    (a parallel.Shard) keeps one worker's records of every chunk, right after the decode.
    `packet_filter` (a bpf.PacketFilter, --bpf) drops records before anything sees them."""
    with collector_per_chunk():
        return _analyze(paths, progress, max_flows, max_states, chunk_records, budget, shard, packet_filter)


@contextmanager
def collector_per_chunk():
    """The cyclic garbage collector off while chunks are analysed, and its young generations
    collected after each chunk instead (collect_young): left on, it ran its passes over the
    run's live objects thousands of times (a quarter of the CPU on the polling capture), and the
    cycles a chunk makes (a decoder's exception and its frames) are still freed chunk by chunk."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def collect_young() -> None:
    """After a chunk: what its objects left in cycles, freed (the collector's two young generations)."""
    gc.collect(1)


def _analyze(paths, progress, max_flows, max_states, chunk_records, budget, shard, packet_filter) -> AnalysisResult:
    budget = budget or DEFAULT_BUDGET
    eng = Engine(max_flows or budget.max_flows, max_states or budget.max_states, budget.pending_bytes,
                 budget.max_observations)
    eng.shard = shard
    captures: list[CaptureStats] = []
    for cap_idx, path in enumerate(formats.expand_paths(list(paths))):
        cap = str(path)
        eng.captures.append(cap)
        st = formats.ReadStats(cap)
        chunks = formats.read_chunks(path, st, _chunk_records(path, chunk_records, budget.chunk_bytes))
        if packet_filter is not None:
            chunks = packet_filter.chunks(chunks, st)
        try:
            for chunk in chunks:
                eng.process(cap_idx, cap, chunk)
                collect_young()
                release_free_heap()
                if progress:
                    progress(len(chunk))
        except formats.CaptureError as exc:
            st.warn("unreadable", str(exc))
        except Exception as exc:   # one capture that breaks something never loses the others
            if (ki := interrupt_in(exc)) is not None:
                raise ki from None
            log.exception("capture %s: analysis stopped", cap)
            eng.abandon_chunk()
            st.failed(exc)
        finally:
            chunks.close()
        captures.append(st.capture_stats())
    res = eng.result(captures)
    res.limits = {"max_memory_mb": budget.max_memory_mb, "max_flows": eng.table.max_flows,
                  "max_states": eng.max_states, "pending_bytes": budget.pending_bytes,
                  "max_assets": budget.max_assets}
    return res


PROBE_RECORDS = 1024


def _chunk_records(path, requested: int, chunk_bytes: int) -> int:
    """Records per chunk: `requested`, fewer when the file's records are large, so that a
    chunk's mapped pages (resident until the chunk is done) stay near `chunk_bytes` of the
    budget: 65,536 records of 8 KiB would be 512 MiB. The first PROBE_RECORDS records of a
    large uncompressed file give the average record size."""
    try:
        p = Path(path)
        if requested != DEFAULT_CHUNK or not p.is_file() or p.stat().st_size <= chunk_bytes:
            return requested
        with open(p, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                return requested
        probe = formats.read_chunks(p, formats.ReadStats(str(p)), PROBE_RECORDS)
        try:
            first = next(probe, None)
        finally:
            probe.close()
        if first is None or not len(first):
            return requested
        avg = max(1.0, float(np.mean(first.caplen)) + 16)
        return int(max(PROBE_RECORDS, min(requested, chunk_bytes // avg)))
    except Exception:   # noqa: BLE001 - a probe that fails leaves the reading to the real pass
        return requested


def _malloc_trim():
    try:
        import ctypes
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):   # not glibc: nothing to do
        return None


_TRIM = _malloc_trim() if sys.platform.startswith("linux") else None


def release_free_heap() -> None:
    """Hand the heap pages freed by a chunk's temporary arrays back to the system: the C
    allocator keeps them otherwise, scattered between live objects, and resident memory would
    grow with the capture instead of with what is kept."""
    if _TRIM is not None:
        _TRIM(0)


class Engine:
    """The state of one analysis run: flow table, per-flow module states, templates, primer
    and folded observations. process() takes the chunks in order, result() gives the run."""

    def __init__(self, max_flows: int = DEFAULT_MAX_FLOWS, max_states: int = DEFAULT_MAX_STATES,
                 pending_bytes: int = DEFAULT_BUDGET.pending_bytes,
                 max_observations: int = DEFAULT_BUDGET.max_observations):
        _pdustream.reset(pending_bytes)   # the decoders' streams share one pending-byte budget
        self.pending_bytes = pending_bytes
        self.holey: set[int] = set()      # slot * 2 + from_client of directions holding reordered data
        self.modules = list(registry.protocol_modules())
        self.names = [m.SPEC.name for m in self.modules]
        self.routine_rules = routine.recognisers(self.modules)
        self.hold_specs = routine.holds(self.modules)
        self.hold_check: dict = {}        # L4 row of this chunk -> its module's hold state test (_route)
        self.midx = {m: i for i, m in enumerate(self.modules)}
        tcp, udp, eth, _any = registry.port_tables()
        known_tcp = np.zeros(65536, bool)
        known_udp = np.zeros(65536, bool)
        known_tcp[[p for p in tcp if 0 <= p < 65536]] = True
        known_udp[[p for p in udp if 0 <= p < 65536]] = True
        self.table = FlowTable(max_flows, known_tcp, known_udp)
        self.table.on_evict = self._forget_flows
        self.deep = DeepTier(max_states)
        self.eth_types = np.array(sorted(eth), dtype=np.int32)
        self.has_llc = self.deep.handles_llc
        self.max_states = max_states
        self.states: OrderedDict[int, dict] = OrderedDict()   # flow slot -> its module's state
        self.agg = ObservationAggregator(limit=max_observations)
        self.templates = TemplateStore(self.agg, self.table)
        self.frame_routine = FrameRoutine(self.modules)   # routine layer-2 frames and their templates
        self.captures: list[str] = []
        self.pos = 0
        self.counters = {"undecoded_link": 0, "states_evicted": 0, "routine_packets": 0, "deep_packets": 0,
                         "retransmissions_skipped": 0, **dict.fromkeys(FRAGMENT_COUNTERS, 0)}
        self.reasm: Reassembler | None = None    # the current capture's (fragments never cross captures)
        self.reasm_cap = -1
        self.shard = None                         # parallel.Shard: this worker's records only
        self.primer = Primer(self.deep, self.counters)

    # ------------------------------------------------------------------ per chunk
    def process(self, cap_idx: int, cap: str, chunk: formats.Chunk) -> None:
        """One chunk of one capture, every step in turn (see the module docstring)."""
        n = len(chunk)
        if n == 0:
            return
        if cap_idx != self.reasm_cap:
            self._close_reassembly()
            self.reasm, self.reasm_cap = Reassembler(), cap_idx
        arr = chunk.arr if chunk.arr is not None else np.frombuffer(chunk.buf, np.uint8)
        cols = columns.decode(arr, chunk.offsets, chunk.caplen, chunk.linktype)
        if self.shard is not None:
            chunk, cols = self.shard.take(chunk, cols, self.counters)
            n = len(chunk)
            if n == 0:
                return
        self.counters["undecoded_link"] += int(n - np.count_nonzero(cols.ok))
        frag = np.flatnonzero(cols.fragment)
        reassembled = None
        if len(frag):
            chunk, reassembled = self._reassemble(chunk, arr, cols, frag)
        for kind, count in sorted(columns.undecoded(cols, chunk.linktype, arr, chunk.offsets, chunk.caplen).items()):   # by kind, in key order (parallel._merge_counters)
            self.counters[kind] = self.counters.get(kind, 0) + count
        ctx = ChunkContext(cap, cap_idx, chunk, frames=chunk.frame_numbers(),
                           pos=self.pos + np.arange(n, dtype=np.int64), reassembled=reassembled)
        self.pos += n
        l4_rows = np.flatnonzero(cols.l4 > 0)
        tkeys: dict[int, Template] = {}   # L4 row -> template its deep decode teaches
        self.hold_check = {}
        to_deep = replayed = np.zeros(0, np.int64)
        if len(l4_rows):
            ctx.flows = self._place(ctx, cols, l4_rows)
            to_deep, replayed = self._route(ctx, arr, tkeys)
        self.primer.start(ctx, replayed, to_deep)
        l2_rows = self._layer2_rows(cols)
        self._deep(ctx, l2_rows, self.frame_routine.codes(arr, chunk, cols, l2_rows, tkeys), to_deep, tkeys)
        self.primer.finish()
        self._prune_holey()
        if self.table.enforce_cap(self.names, self.modules, self.captures):
            self.counters["flows_evicted"] = self.table.evicted

    def _reassemble(self, chunk: formats.Chunk, arr: np.ndarray, cols: columns.Columns,
                    frag: np.ndarray) -> tuple[formats.Chunk, np.ndarray | None]:
        """Feed the chunk's fragment rows to the capture's Reassembler in order. Each datagram
        made whole takes its last fragment's record: the chunk returned reads it, as raw IP,
        from past the end of the capture's buffer (_Spliced), and its columns replace the
        fragment's in `cols`, with the fragment's link fields (layers.adopt_link). Also
        returns which records are such datagrams (None: none)."""
        self.counters["fragments"] += len(frag)
        rows, dgrams = [], []
        for r in frag.tolist():
            o = int(chunk.offsets[r])
            dgram = self.reasm.feed(float(chunk.ts[r]), bytes(chunk.buf[o + int(cols.l3[r]):o + int(chunk.caplen[r])]))
            if dgram is not None:
                rows.append(r)
                dgrams.append(dgram)
        if not rows:
            return chunk, None
        at = np.array(rows, np.int64)
        size = np.array([len(d) for d in dgrams], np.int64)
        base = len(arr)
        start = base + np.r_[0, np.cumsum(size)[:-1]]
        extra = b"".join(dgrams)
        raw = np.full(len(at), formats.LINKTYPE_RAW, np.int32)
        one = columns.decode(np.frombuffer(extra, np.uint8), start - base, size, raw)
        one.pay_off += base
        last = cols.take(at)                              # the last fragments
        for name in columns.Columns.__dataclass_fields__:
            getattr(cols, name)[at] = getattr(columns.adopt_link(one, last), name)
        offsets, caplen, wirelen, linktype = (chunk.offsets.copy(), chunk.caplen.copy(), chunk.wirelen.copy(),
                                              chunk.linktype.copy())
        offsets[at], caplen[at], wirelen[at], linktype[at] = start, size, last.l3 + size, raw
        mask = np.zeros(len(chunk), bool)
        mask[at] = True
        return formats.Chunk(_Spliced(chunk.buf, base, extra), offsets, caplen, wirelen, chunk.ts, linktype,
                             chunk.first_frame, chunk.arr, chunk.frames), mask

    def _close_reassembly(self) -> None:
        """The capture is done: count what its reassembler made and lost."""
        if self.reasm is not None:
            for k, v in self.reasm.counts().items():
                self.counters[k] += v
            self.reasm, self.reasm_cap = None, -1

    def abandon_chunk(self) -> None:
        """process() raised half way through a chunk: drop what the primer held of it, so the
        next capture starts clean (flows and observations gathered so far are kept)."""
        self.primer.abandon()

    def _layer2_rows(self, cols: columns.Columns) -> np.ndarray:
        """Records of a layer-2 protocol some module decodes (by ethertype, or LLC)."""
        return np.flatnonzero(cols.ok & (cols.l4 == 0) & (cols.ip_version == 0) & (cols.ethertype != 0)
                              & (np.isin(cols.ethertype, self.eth_types) | (cols.llc & self.has_llc)))

    def _place(self, ctx: ChunkContext, cols: columns.Columns, l4_rows: np.ndarray) -> FlowRows:
        """Put the TCP/UDP records in the flow table (counters updated) and classify new flows."""
        chunk = ctx.chunk
        sub = cols.take(l4_rows)
        pos = ctx.pos[l4_rows]
        slot, from_client = self.table.assign(sub, pos, chunk.ts[l4_rows], chunk.wirelen[l4_rows],
                                              ctx.cap_idx, ctx.frames[l4_rows])
        self._classify(chunk, sub, slot, pos)
        return FlowRows(sub, l4_rows, slot, from_client, self.table.module[slot].astype(np.int64))

    def _classify(self, chunk, sub, slot, pos) -> None:
        """Try the registry on the first payload packets of each unclassified flow, in order,
        at most MAX_CLASSIFY_TRIES per flow (as the reference's deep tier does)."""
        t = self.table
        cand = np.flatnonzero((sub.pay_len > 0) & (t.module[slot] < 0) & (t.tries[slot] < MAX_CLASSIFY_TRIES))
        if not len(cand):
            return
        s = slot[cand]
        o = np.argsort(s, kind="stable")
        ss = s[o]
        start = np.r_[0, np.flatnonzero(ss[1:] != ss[:-1]) + 1]
        rank = np.arange(len(ss)) - np.repeat(start, np.diff(np.r_[start, len(ss)]))
        keep = rank < (MAX_CLASSIFY_TRIES - t.tries[ss])
        cand = np.sort(cand[o[keep]])
        buf = chunk.buf
        for r in cand.tolist():
            sl = int(slot[r])
            if t.module[sl] >= 0 or t.tries[sl] >= MAX_CLASSIFY_TRIES:
                continue
            t.tries[sl] += 1
            a = int(sub.pay_off[r])
            payload = bytes(buf[a:a + int(sub.pay_len[r])])
            m = registry.classify("tcp" if sub.l4[r] == 6 else "udp", int(sub.sport[r]),
                                  int(sub.dport[r]), payload)
            if m is not None:
                t.module[sl] = self.midx[m]
                t.cls_seq[sl] = pos[r]

    def _route(self, ctx: ChunkContext, arr: np.ndarray, tkeys: dict) -> tuple[np.ndarray, np.ndarray]:
        """Sort the TCP/UDP rows a classified flow's module should see (payload, or any UDP
        datagram, from the classifying packet on): a routine row whose bytes were all seen
        already is a retransmission and skipped; a routine row of only new data is replayed if
        its template is ready; the rest go to the deep tier (other rows, and routine rows that
        overlap seen data: the module trims those). Returns (L4 rows to decode, L4 rows
        replayed, sorted)."""
        f = ctx.flows
        sub, slot, from_client, mod = f.sub, f.slot, f.from_client, f.module
        plen = sub.pay_len
        deliver = (mod >= 0) & (ctx.pos[f.rows] >= self.table.cls_seq[slot]) & ((plen > 0) | (sub.l4 == 17))
        di = np.flatnonzero(deliver)
        none = np.zeros(0, np.int64)
        if not len(di):
            return none, none
        behind, holey, jumped = self._track_streams(sub, slot, from_client, di)
        mod_di = mod[di]
        if ctx.reassembled is not None:   # reassembled datagrams are decoded, never replayed
            mod_di = np.where(ctx.reassembled[f.rows[di]], -1, mod_di)
        rmask, rkey = routine.recognise(arr, self.routine_rules, mod_di, sub.pay_off[di], plen[di],
                                        from_client[di], sub.l4[di], sub.sport[di], sub.dport[di])
        # from a segment ahead of the stream on (reordered, or a gap), a segment behind it may be
        # late data that fills the hole, not a retransmission: the module decides (deep tier). The
        # segment that jumped ahead is decoded too (the module opens the hole, and hands over a PDU
        # the gap cut short); in-order routine segments after it are replayed as anywhere else
        repeat = rmask & ~holey & (behind > 0) & (behind >= plen[di])
        self.counters["retransmissions_skipped"] += int(np.count_nonzero(repeat))
        rmask &= (behind == 0) & ~jumped
        defer = None
        if rmask.any():   # state a module keeps for later packets (ProtocolSpec.hold)
            whole = None if ctx.reassembled is None else ctx.reassembled[f.rows[di]]
            start, after = routine.held(arr, self.hold_specs, mod[di], slot[di], sub.pay_off[di], plen[di],
                                        from_client[di], sub.l4[di], sub.sport[di], sub.dport[di],
                                        self.states.get, whole)
            rmask &= ~start
            if (after & rmask).any():
                defer = np.zeros(len(slot), bool)
                defer[di[after & rmask]] = True
                self.hold_check.update((j, self.hold_specs[mod[j]].state) for j in di[after & rmask].tolist())
        to_deep = di[~rmask & ~repeat]
        ri = di[rmask]
        if not len(ri):
            return to_deep, none
        pending, replayed = self._replay(ctx, ri, rkey[rmask], tkeys, defer)
        return np.concatenate([to_deep, pending]), np.sort(replayed)

    def _track_streams(self, sub, slot, from_client, di) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """How far each delivered TCP segment starts behind the bytes already seen in its
        direction (0 = new data, or further behind than RETRANSMIT_WINDOW), and whether it
        comes at or after a segment that started ahead of the stream (by at most
        REORDER_WINDOW: reordered or lost bytes) in its direction, in this chunk or held from
        an earlier one (Engine.holey), and whether it is such a segment itself (jumped). Updates
        the per-direction high-water marks (FlowTable.next_c / next_s: a sequence number modulo
        2^32, -1 = nothing seen yet).

        Sequence numbers wrap at 2^32, so they are compared relative to the first sequence
        number of each direction in the chunk (signed 32-bit distances), where a running
        maximum is meaningful; docs/engine.md has a worked example. The loop is compiled
        (flowkernels.track)."""
        m = len(di)
        behind = np.zeros(m, np.int64)
        holey = np.zeros(m, bool)
        jumped = np.zeros(m, bool)
        t = self.table
        carried = np.array(sorted(self.holey), np.int64)
        new_holey = np.empty(m, np.int64)
        n = flowkernels.track(di, sub.l4, slot, from_client, sub.seq, sub.pay_len, t.next_c, t.next_s, carried,
                              RETRANSMIT_WINDOW, REORDER_WINDOW, behind, holey, jumped, new_holey)
        if n:
            self.holey.update(new_holey[:n].tolist())
        return behind, holey, jumped

    def _prune_holey(self) -> None:
        """After a chunk: a direction stays holey while its module's stream holds segments or has
        open holes (SegmentStream.waiting)."""
        if not self.holey:
            return
        keep = set()
        for k in self.holey:
            st = self.states.get(k >> 1)
            stream = st.get("_c2s" if k & 1 else "_s2c") if st else None
            if getattr(stream, "waiting", False):
                keep.add(k)
        self.holey = keep

    def _replay(self, ctx: ChunkContext, ri, rkey, tkeys: dict, defer=None) -> tuple[np.ndarray, np.ndarray]:
        """Replay the routine rows whose (flow, key) template is ready: counted on the template
        by a compiled loop (replay.count_routine), applied when the store flushes. The others go
        to the deep tier, pointed at their template (made on first sight) so that their decodes
        teach it; so do the rows marked in `defer` (by L4 row), which the deep loop replays only
        if their module's state holds nothing then (hold_check). Returns (L4 rows still to
        decode, L4 rows replayed)."""
        li = ctx.flows.rows[ri]
        slot = ctx.flows.slot[ri]
        store = self.templates
        n = len(ri)
        tid = np.empty(n, np.int64)
        done = np.empty(n, bool)
        later = np.zeros(n, bool) if defer is None else defer[ri]
        self.counters["routine_packets"] += count_routine(
            slot, rkey, later, ctx.frames[li], ctx.chunk.ts[li], ctx.pos[li], store.index, store.tslot, store.tkey,
            store.ready, store.count, store.lframe, store.lts, store.lpos, tid, done)
        pend = np.flatnonzero(~done)
        if len(pend):
            made: dict[tuple, Template | None] = {}   # made in this loop: their rows' tid is still -1
            templates = store.templates
            for j, t_id, sl, rk in zip(pend.tolist(), tid[pend].tolist(), slot[pend].tolist(), rkey[pend].tolist()):
                if t_id >= 0:
                    t = templates[t_id]
                else:                           # first sight: None when the store is full
                    if (sl, rk) not in made:
                        made[(sl, rk)] = store.make((sl, rk))
                    t = made[(sl, rk)]
                if t is not None and (t.ready or not t.never):   # ready here: deferred
                    tkeys[int(ri[j])] = t
        return ri[pend], ri[done]

    def _deep(self, ctx: ChunkContext, l2_rows: np.ndarray, l2_codes: np.ndarray, to_deep: np.ndarray,
              tkeys: dict) -> None:
        """Decode the deep tier's rows (layer-2 protocol frames and the TCP/UDP rows _route left)
        in capture order, then apply the replays the loop counted. l2_codes: the layer-2 rows'
        loop index (-1, or a routine frame's template code in tkeys: frame_routine.py)."""
        f = ctx.flows
        rows = l2_rows if f is None else np.concatenate([l2_rows, f.rows[to_deep]])
        if not len(rows):
            return
        l4i = np.concatenate([l2_codes, to_deep])
        order = np.argsort(rows, kind="stable")
        rows, l4i = rows[order], l4i[order]
        batch = DeepRows.gather(ctx, rows, l4i)
        replayed = self._decode_in_order(ctx, batch, l4i, tkeys)
        self._apply_loop_replays(replayed, batch)

    def _decode_in_order(self, ctx: ChunkContext, batch: DeepRows, l4i: np.ndarray,
                         tkeys: dict) -> list[Template]:
        """The deep loop, one row at a time (l4i: L4 row, -1 for a layer-2 frame). A TCP/UDP row
        is decoded with its flow's module state, after the primer has fed that module the
        replayed packets it missed; the decode teaches the row's template. A row whose template
        became ready earlier in this loop is only counted: returns those templates, their
        counts applied by _apply_loop_replays. The hot path: locals bound once."""
        buf, cap = ctx.chunk.buf, ctx.cap
        frame_l, ts_l, pos_l, hdr = batch.frame, batch.ts, batch.pos, batch.header
        slot_l, mod_l, fc_l, poff_l, plen_l = batch.slot, batch.module, batch.from_client, batch.pay_off, batch.pay_len
        modules, tkeys_get = self.modules, tkeys.get
        add, run, add_ops = self.agg.add, self.deep.run, self.table.add_ops
        catch_up, note_replayed = self.primer.catch_up, self.primer.note_replayed
        states_get, states_touch = self.states.get, self.states.move_to_end
        hold_check = self.hold_check
        replayed: list[Template] = []
        n_routine = n_deep = 0
        for i, j in enumerate(l4i.tolist()):
            tmpl = tkeys_get(j)                        # layer-2 rows (j < 0) have none
            if tmpl is not None and hold_check:
                held = hold_check.get(j)               # replayed or learnt from only if the flow's
                if held is not None and held(states_get(slot_l[i])):   # state holds nothing now
                    tmpl = None                        # decoded, and it teaches no template
            if tmpl is not None and tmpl.ready:        # learnt earlier in this chunk: count it
                if not tmpl.n_replayed:
                    replayed.append(tmpl)
                tmpl.n_replayed += 1
                tmpl.last_i = i
                n_routine += 1
                if j >= 0:
                    note_replayed(slot_l[i], fc_l[i], j)
                continue
            if j < 0:
                n_deep += self._decode_l2(cap, buf, batch, i, tmpl)
                continue
            n_deep += 1
            sl, fc = slot_l[i], fc_l[i]
            module = modules[mod_l[i]]
            state = states_get(sl)
            if state is None:
                state = self._state(sl)
            else:
                states_touch(sl)
            catch_up(sl, fc, j, module, state)
            a = poff_l[i]
            obs = run(module, Packet(cap, frame_l[i], ts_l[i], bytes(buf[a:a + plen_l[i]]), *hdr(j), fc, state))
            if not obs:                                # nothing, or the module raised (None)
                if tmpl is not None:
                    tmpl.learn([], {}, obs is None)
                continue
            p = pos_l[i]
            kept = [add(o, p) for o in obs]
            ops = _operation_counts(obs)
            if ops:
                add_ops(sl, ops)
            if tmpl is not None:                       # a Partial (raised after emitting) never replays
                tmpl.learn(kept, ops, obs.__class__ is Partial)
        self.counters["routine_packets"] += n_routine
        self.counters["deep_packets"] += n_deep
        return replayed

    def _decode_l2(self, cap: str, buf, batch: DeepRows, i: int, tmpl: Template | None = None) -> int:
        """A layer-2 protocol frame: decoded from its bytes by the deep tier, teaching `tmpl`
        (a routine frame's template) what it gave. 1 if it decoded."""
        o = batch.offset[i]
        lay = decode_frame(batch.linktype[i], bytes(buf[o:o + batch.caplen[i]]))
        if lay is None:
            return 0
        add, p = self.agg.add, batch.pos[i]
        errors = self.deep.errors
        kept = [add(ob, p) for ob in self.deep.handle(cap, batch.frame[i], batch.ts[i], lay)]
        if tmpl is not None:
            tmpl.learn(kept, {}, self.deep.errors != errors)
        return 1

    def _apply_loop_replays(self, replayed: list[Template], batch: DeepRows) -> None:
        """The deep loop's replays, per template: a count only adds up and the latest position
        wins, so applying them after the loop gives what applying each at its row would."""
        agg, table = self.agg, self.table
        for t in replayed:
            cnt, i = t.n_replayed, t.last_i
            t.n_replayed = 0
            t.replay(agg, table, cnt, batch.frame[i], batch.ts[i], batch.pos[i])

    # ------------------------------------------------------------------ bounded per-flow state
    def _state(self, sl: int) -> dict:
        """The module state of flow slot sl, made on first use; at most max_states are kept,
        the least recently used dropped first (with the flow's templates)."""
        st = self.states.get(sl)
        if st is None:
            st = self.states[sl] = {}
            if len(self.states) > self.max_states:
                old, ost = self.states.popitem(last=False)
                release_state(ost)
                self.holey.discard(old * 2)
                self.holey.discard(old * 2 + 1)
                self.templates.drop_flow(old)
                self.counters["states_evicted"] += 1
        else:
            self.states.move_to_end(sl)
        return st

    def _forget_flows(self, rows: np.ndarray) -> None:
        """FlowTable.on_evict: the flows in these slots are gone; so is everything kept for them."""
        for sl in rows.tolist():
            st = self.states.pop(sl, None)
            if st:
                release_state(st)
                self.holey.discard(sl * 2)
                self.holey.discard(sl * 2 + 1)
            self.templates.drop_flow(sl)
            self.primer.forget(sl)

    # ------------------------------------------------------------------ output
    def result(self, captures: list[CaptureStats]) -> AnalysisResult:
        """The run, finished: the reassembly of the current capture is closed."""
        self._close_reassembly()
        return self._build(captures, {})

    def snapshot(self, captures: list[CaptureStats]) -> AnalysisResult:
        """The run so far, for a checkpoint: nothing is closed, process() may go on."""
        return self._build(captures, self.reasm.counts() if self.reasm is not None else {})

    def _build(self, captures: list[CaptureStats], pending: dict[str, int]) -> AnalysisResult:
        self.templates.flush()            # the replays counted on templates, applied
        res = AnalysisResult()
        res.captures = captures
        res.observations = self.agg.observations
        res.flows = self.table.flows(self.modules, self.captures)
        c = dict(self.counters)
        for k, v in pending.items():
            c[k] += v
        c["decode_errors"] = self.deep.errors
        c["decode_errors_partial"] = self.deep.partial
        c["observations_dropped"] = self.agg.dropped
        c.update(_pdustream.STATS)
        c["flows_evicted"] = self.table.evicted
        c["flows_aggregated"] = len(self.table.other)
        res.counters = c
        if self.table.evicted:
            res.notes.append(
                f"flow table capped at {self.table.max_flows:,} flows: {self.table.evicted:,} least recently "
                f"seen flows were folded into {len(self.table.other):,} aggregate flows (client given as its "
                f"subnet, client port 0)")
        if c["states_evicted"]:
            res.notes.append(f"protocol state kept for at most {self.max_states:,} flows: "
                             f"{c['states_evicted']:,} states dropped (least recently used first)")
        if self.agg.dropped:
            res.notes.append(f"observations capped at {self.agg.limit:,} distinct (memory budget): "
                             f"observations dropped: {self.agg.dropped:,} new ones after that (identities "
                             f"always kept; repeats of kept ones still counted)")
        res.notes.extend(stream_notes(c, self.pending_bytes, self._gap_flows(res.flows)))
        res.notes.extend(undecoded_notes(c))
        return res

    def _gap_flows(self, flows) -> list[tuple[int, str]]:
        """(gaps, flow text) of the live flows whose streams gave up bytes, most gaps first, ties
        by the text (what the parallel merge can sort by too, whatever slots the flows had)."""
        t, out = self.table, []
        for sl, st in self.states.items():
            g = sum(getattr(st.get(k), "gaps", 0) or 0 for k in ("_c2s", "_s2c"))
            if g:
                out.append((g, sl))
        if not out:
            return []
        out.sort(reverse=True)
        least = out[min(GAP_FLOWS_NOTED, len(out)) - 1][0]   # every flow tied with the last named
        named = [(g, _flow_text(t._build(np.array([sl], np.int64), self.modules, self.captures)[0]))
                 for g, sl in out if g >= least]
        named.sort(key=lambda gt: (-gt[0], gt[1]))
        return named[:GAP_FLOWS_NOTED]


class _Spliced:
    """A capture's buffer with a chunk's reassembled datagrams placed just past its end (from
    `base` on): slices from base on read them, all others the capture, so packets carried from
    earlier chunks still prime from their own bytes."""
    __slots__ = ("buf", "base", "extra")

    def __init__(self, buf, base: int, extra: bytes):
        self.buf, self.base, self.extra = buf, base, extra

    def __getitem__(self, s: slice):
        if s.start >= self.base:
            return self.extra[s.start - self.base:s.stop - self.base]
        return self.buf[s]


def _flow_text(f) -> str:
    return f"{f.l4} {f.client}:{f.client_port} -> {f.server}:{f.port}"


def stream_notes(c: dict, pending_bytes: int, gap_flows: list[tuple[int, str]]) -> list[str]:
    """The notes for the decoders' stream counters (engine and reference alike)."""
    notes = []
    if c.get("stream_gaps"):
        worst = "; most: " + ", ".join(f"{t} ({g:,})" for g, t in gap_flows) if gap_flows else ""
        notes.append(f"TCP stream gaps: {c['stream_gaps']:,} times bytes never arrived (or came too far out "
                     f"of order) and decoding resumed after them; cut-short PDUs were still counted{worst}")
    if c.get("segments_reordered"):
        notes.append(f"TCP segments reordered: {c['segments_reordered']:,} late segments filled the gaps "
                     f"they belonged in and were decoded (not taken for retransmissions)")
    if c.get("decoder_buffers_truncated"):
        notes.append(f"decoder buffers truncated: {c['decoder_buffers_truncated']:,} unfinished PDUs dropped "
                     f"(longer than the protocol allows, or past the {pending_bytes >> 20:,} MB pending-byte "
                     f"budget)")
    if c.get("decode_errors_partial"):
        notes.append(f"decoder errors: {c.get('decode_errors', 0):,} packets raised in their protocol "
                     f"decoder; {c['decode_errors_partial']:,} of them kept what was decoded before the error")
    return notes


def _operation_counts(obs: list[Observation]) -> dict[str, int]:
    """Operations per category among a decode's observations (the flow's operation totals)."""
    ops: dict[str, int] = {}
    for o in obs:
        if o.kind == "operation":
            c = o.data.get("category", "other")
            ops[c] = ops.get(c, 0) + 1
    return ops
