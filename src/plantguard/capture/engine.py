"""The packet engine: analyze() turns captures into an AnalysisResult with the two-tier design.

Per chunk of records:
  1. columnar tier (columns.py): L2-L4 header fields of every record as arrays;
  2. flow table (flows.py): packets grouped into bidirectional flows, counters updated from arrays;
  3. classification: the first payload packets of a new flow go to the protocol registry
     (port AND signature), once per flow, not per packet;
  4. routine packets (routine.py) of classified flows replay what the deep tier said about the
     same kind of packet before, as counts, without a Python object;
  5. deep tier (deep.py): the remaining packets of classified flows and layer-2 protocol frames
     are decoded one by one by their protocol module, in capture order.
The result equals reference.analyze_reference() (tests compare them on every shared capture);
memory grows with flows and distinct observations, never with packets."""
from __future__ import annotations

import os
import sys
from collections import OrderedDict
from typing import Callable, Iterable

import numpy as np

from plantguard.capture import columns, formats, headers, routine
from plantguard.capture.aggregate import ObservationAggregator
from plantguard.capture.deep import DEFAULT_MAX_STATES, MAX_CLASSIFY_TRIES, DeepTier
from plantguard.capture.flows import FlowTable, group_rows, hash_keys
from plantguard.capture.layers import decode_frame
from plantguard.model import AnalysisResult, CaptureStats, Packet
from plantguard.protocols import registry

DEFAULT_MAX_FLOWS = 1_000_000
DEFAULT_CHUNK = 65536
MAX_TEMPLATES = 200_000       # routine (flow, key) pairs remembered
LEARN_TRIES = 8               # deep decodes of one routine key before giving up on replaying it
RETRANSMIT_WINDOW = 1 << 16   # as the protocol modules' segment streams judge repeats


def analyze(paths: Iterable[str | os.PathLike], progress: Callable[[int], None] | None = None, *,
            max_flows: int = DEFAULT_MAX_FLOWS, max_states: int = DEFAULT_MAX_STATES,
            chunk_records: int = DEFAULT_CHUNK) -> AnalysisResult:
    """Analyse capture files (directories mean every capture below them). progress(n) is
    called after each chunk with the number of packets it held."""
    eng = Engine(max_flows, max_states)
    captures: list[CaptureStats] = []
    for cap_idx, path in enumerate(formats.expand_paths(list(paths))):
        cap = str(path)
        eng.captures.append(cap)
        st = formats.ReadStats(cap)
        try:
            for chunk in formats.read_chunks(path, st, chunk_records):
                eng.process(cap_idx, cap, chunk)
                release_free_heap()
                if progress:
                    progress(len(chunk))
        except formats.CaptureError as exc:
            st.warnings.append(str(exc))
        captures.append(CaptureStats(cap, st.packets, st.bytes, st.first_ts, st.last_ts, st.warnings))
    return eng.result(captures)


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


class Template:
    """What the deep tier said about one routine key of one flow."""
    __slots__ = ("ready", "never", "tries", "last_sig", "kept", "ops", "slot", "dropped", "n_replayed",
                 "last_i")

    def __init__(self, slot: int):
        self.slot = slot
        self.dropped = False      # its flow's state was dropped: forgotten, as if never made
        self.n_replayed = 0       # replays inside the current deep loop, applied after it
        self.last_i = 0
        self.ready = False
        self.never = False
        self.tries = 0
        self.last_sig = None
        self.kept: list | tuple = ()            # shared empties until learnt: templates are many
        self.ops: dict[str, int] | None = None


class Engine:
    def __init__(self, max_flows: int = DEFAULT_MAX_FLOWS, max_states: int = DEFAULT_MAX_STATES):
        self.modules = list(registry.protocol_modules())
        self.names = [m.SPEC.name for m in self.modules]
        self.routine_rules = routine.recognisers(self.modules)
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
        self.has_llc = bool(self.deep._llc)
        self.max_states = max_states
        self.states: OrderedDict[int, dict] = OrderedDict()
        self.templates: dict[tuple, Template] = {}
        self.slot_templates: dict[int, list] = {}
        self.skips: dict[tuple, tuple] = {}   # (slot, from_client) -> latest replayed packet
        self.agg = ObservationAggregator()
        self.captures: list[str] = []
        self.pos = 0
        self.counters = {"fragments": 0, "undecoded_link": 0, "states_evicted": 0,
                         "routine_packets": 0, "deep_packets": 0, "retransmissions_skipped": 0}

    # ------------------------------------------------------------------ per chunk
    def process(self, cap_idx: int, cap: str, chunk: formats.Chunk) -> None:
        n = len(chunk)
        if n == 0:
            return
        arr = chunk.arr if chunk.arr is not None else np.frombuffer(chunk.buf, np.uint8)
        cols = columns.decode(arr, chunk.offsets, chunk.caplen, chunk.linktype)
        pos = self.pos + np.arange(n, dtype=np.int64)
        self.pos += n
        frames = chunk.first_frame + np.arange(n, dtype=np.int64)
        ts = chunk.ts
        self.counters["undecoded_link"] += int(n - np.count_nonzero(cols.ok))
        self.counters["fragments"] += int(np.count_nonzero(cols.fragment))

        l2 = (cols.ok & (cols.l4 == 0) & (cols.ip_version == 0) & (cols.ethertype != 0)
              & (np.isin(cols.ethertype, self.eth_types) | (cols.llc & self.has_llc)))
        deep_rows = [np.flatnonzero(l2)]
        deep_l4: list[np.ndarray] = [np.full(len(deep_rows[0]), -1, np.int64)]
        tkeys: dict[int, Template] = {}   # sub row -> template of its routine key

        li = np.flatnonzero(cols.l4 > 0)
        ctx = None
        skipped_rows = np.zeros(0, np.int64)
        if len(li):
            sub = cols.take(li)
            slot, from_client, _g = self.table.assign(sub, pos[li], ts[li], chunk.wirelen[li],
                                                      cap_idx, frames[li])
            self._classify(chunk, sub, slot, pos[li])
            mod = self.table.module[slot].astype(np.int64)
            plen = sub.pay_len
            deliver = (mod >= 0) & (pos[li] >= self.table.cls_seq[slot]) & ((plen > 0) | (sub.l4 == 17))
            di = np.flatnonzero(deliver)
            if len(di):
                behind = self._track_streams(sub, slot, from_client, di)
                rmask, rkey = routine.recognise(arr, self.routine_rules, mod[di], sub.pay_off[di], plen[di],
                                                from_client[di], sub.l4[di], sub.sport[di], sub.dport[di])
                repeat = rmask & (behind > 0) & (behind >= plen[di])
                self.counters["retransmissions_skipped"] += int(np.count_nonzero(repeat))
                rmask &= behind == 0
                to_deep = di[~rmask & ~repeat]
                ri = di[rmask]
                if len(ri):
                    pending, skipped = self._replay(ri, rkey[rmask], slot, li, frames, ts, pos, tkeys)
                    to_deep = np.concatenate([to_deep, pending])
                    skipped_rows = np.sort(skipped)
                deep_rows.append(li[to_deep])
                deep_l4.append(to_deep)
            ctx = (sub, slot, from_client, mod, li, cap_idx)

        rows = np.concatenate(deep_rows)
        if len(rows):
            l4i = np.concatenate(deep_l4)
            order = np.argsort(rows, kind="stable")
            self._deep(cap, chunk, rows[order], l4i[order], ctx, frames, ts, pos, tkeys, skipped_rows)
        elif ctx is not None and len(skipped_rows):
            self._remember_skips(chunk, ctx, skipped_rows, {}, set(), frames, ts)
        evicted = self.table.enforce_cap(self.names, self.modules, self.captures)
        if evicted:
            self.counters["flows_evicted"] = self.table.evicted

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

    def _track_streams(self, sub, slot, from_client, di) -> np.ndarray:
        """How far each delivered TCP segment starts behind the bytes already seen in its
        direction (0 = new data). Updates the per-direction high-water marks."""
        behind = np.zeros(len(di), np.int64)
        tcp = np.flatnonzero(sub.l4[di] == 6)
        if not len(tcp):
            return behind
        rows = di[tcp]
        s = slot[rows]
        fc = from_client[rows]
        seq = sub.seq[rows]
        end = seq + sub.pay_len[rows]
        gkey = s * 2 + fc
        o = np.argsort(gkey, kind="stable")
        gk = gkey[o]
        first = np.r_[True, gk[1:] != gk[:-1]]
        gid = np.cumsum(first) - 1
        t = self.table
        carry = np.where(fc[o], t.next_c[s[o]], t.next_s[s[o]])
        # running maximum of segment ends inside each direction, groups kept apart by an offset
        big = np.int64(1) << 40
        shifted = end[o] + gid * big
        run = np.maximum.accumulate(shifted) - gid * big
        prev = np.r_[np.int64(-1), run[:-1]]
        prev = np.where(first, -1, prev)
        # carry in the previous chunks' high-water mark
        gstart = np.flatnonzero(first)
        carry_g = carry[gstart]
        prev = np.maximum(prev, np.repeat(carry_g, np.diff(np.r_[gstart, len(o)])))
        d = np.where(prev >= 0, (prev - seq[o]) & 0xFFFFFFFF, 0)
        d = np.where((d > 0) & (d <= RETRANSMIT_WINDOW), d, 0)
        behind_sorted = d
        out = np.empty(len(o), np.int64)
        out[o] = behind_sorted
        behind[tcp] = out
        # new high-water marks per direction
        gend = np.r_[gstart[1:], len(o)] - 1
        last = np.maximum(run[gend], carry_g)
        ls, lf = s[o][gend], fc[o][gend]
        t.next_c[ls[lf]] = last[lf]
        t.next_s[ls[~lf]] = last[~lf]
        return behind

    def _replay(self, ri, rkey, slot, li, frames, ts, pos, tkeys) -> np.ndarray:
        """Replay routine packets whose (flow, key) is learnt; return the rows still to decode."""
        s = slot[ri].astype(np.uint64)
        keys = (s, rkey)
        g = group_rows(hash_keys(keys), keys)
        pending = []
        skipped = []
        templates = self.templates
        slots = slot[ri[g.first]].tolist()
        rks = rkey[g.first].tolist()
        for gi in range(len(g)):
            tk = (slots[gi], rks[gi])
            t = templates.get(tk)
            members = ri[g.order[g.starts[gi]:g.ends[gi]]]
            if t is not None and t.ready:
                last = li[members[-1]]
                cnt = len(members)
                for o in t.kept:
                    self.agg.bump(o, cnt, int(frames[last]), float(ts[last]), int(pos[last]))
                if t.ops:
                    self.table.add_ops(tk[0], t.ops, cnt)
                self.counters["routine_packets"] += cnt
                skipped.append(members)
                continue
            if t is None and len(templates) < MAX_TEMPLATES:
                t = templates[tk] = Template(tk[0])
                self.slot_templates.setdefault(tk[0], []).append(tk)
            if t is not None and not t.never:
                for m in members.tolist():
                    tkeys[m] = t
            pending.append(members)
        empty = np.zeros(0, np.int64)
        return (np.concatenate(pending) if pending else empty,
                np.concatenate(skipped) if skipped else empty)

    def _deep(self, cap, chunk, rows, l4i, ctx, frames, ts, pos, tkeys, skipped_rows) -> None:
        """Decode the deep rows in capture order. A module keeps per-flow state (stream
        positions, requests awaiting their reply), so before a packet is decoded the latest
        replayed packet of the same direction - and for a server packet, of the client's
        direction - is fed to the module first, outputs dropped (the replay counted them)."""
        buf, offs, caps, lts = chunk.buf, chunk.offsets, chunk.caplen, chunk.linktype
        agg, deep, table = self.agg, self.deep, self.table
        pred_same: dict[int, int] = {}
        pred_client: dict[int, int] = {}
        if ctx is not None:
            sub, slot, from_client, mod, li, cap_idx = ctx
            l4rows = l4i[l4i >= 0]
            if len(l4rows) and len(skipped_rows):
                big = np.int64(1) << 32
                kb = (slot[skipped_rows] * 2 + from_client[skipped_rows]) * big + skipped_rows
                ob = np.argsort(kb, kind="stable")
                kb = kb[ob]
                src = skipped_rows[ob]

                def before(rows_, want_client):
                    g = slot[rows_] * 2 + (1 if want_client else from_client[rows_])
                    q = np.searchsorted(kb, g * big + rows_) - 1
                    okq = (q >= 0) & ((kb[np.maximum(q, 0)] // big) == g)
                    return dict(zip(rows_[okq].tolist(), src[q[okq]].tolist()))

                pred_same = before(l4rows, False)
                srv = l4rows[~from_client[l4rows]]
                pred_client = before(srv, True) if len(srv) else {}
        dyn: dict[tuple, int] = {}        # (slot, dir) -> latest row replayed inside this loop
        decoded: set[tuple] = set()       # (slot, dir) decoded in this chunk
        last_decoded: dict[int, int] = {} # slot -> latest row decoded (primed rows included)
        primed: set[int] = set()
        # per-row values as Python lists, gathered once (indexing numpy scalars per row is slow)
        frame_l, ts_l, pos_l = frames[rows].tolist(), ts[rows].tolist(), pos[rows].tolist()
        off_l, cap_l, lt_l = offs[rows].tolist(), caps[rows].tolist(), lts[rows].tolist()
        if ctx is not None:
            jj = np.maximum(l4i, 0)
            slot_l, mod_l, fc_l = slot[jj].tolist(), mod[jj].tolist(), from_client[jj].tolist()
            # TCP/UDP rows: header fields and payload bounds from the columns, not decoded again
            hdr = headers.L4Rows(sub).row
            poff_l, plen_l = sub.pay_off[jj].tolist(), sub.pay_len[jj].tolist()
        else:
            slot_l = mod_l = fc_l = poff_l = plen_l = [0] * len(rows)
            hdr = None
        tkeys_get, modules = tkeys.get, self.modules
        add, bump, run, add_ops = agg.add, agg.bump, deep._run, table.add_ops
        n_routine = n_deep = 0
        # replays of templates learnt in this chunk, counted per template and applied after the
        # loop: a count only adds up and the latest position wins, so the order does not matter
        replayed: list[Template] = []
        states_get, states_touch, skips_get = self.states.get, self.states.move_to_end, self.skips.get
        pred_same_get, pred_client_get, dyn_get = pred_same.get, pred_client.get, dyn.get
        last_decoded_get = last_decoded.get
        for i, j in enumerate(l4i.tolist()):
            tmpl = tkeys_get(j)                        # layer-2 rows (j < 0) have none
            if tmpl is not None:
                if tmpl.dropped:
                    tmpl = None
                elif tmpl.ready:                       # learnt earlier in this chunk
                    if not tmpl.n_replayed:
                        replayed.append(tmpl)
                    tmpl.n_replayed += 1
                    tmpl.last_i = i
                    n_routine += 1
                    dyn[(slot_l[i], fc_l[i])] = j
                    continue
            frame, t_s, p = frame_l[i], ts_l[i], pos_l[i]
            if j < 0:
                o0 = off_l[i]
                lay = decode_frame(lt_l[i], bytes(buf[o0:o0 + cap_l[i]]))
                if lay is None:
                    continue
                n_deep += 1
                for o in deep.handle(cap, frame, t_s, lay):
                    add(o, p)
                continue
            n_deep += 1
            sl = slot_l[i]
            module = modules[mod_l[i]]
            state = states_get(sl)
            if state is None:
                state = self._state(sl)
            else:
                states_touch(sl)
            fc = fc_l[i]
            same = pred_same_get(j, -1)
            d_same = dyn_get((sl, fc), -1)
            row_same = same if same > d_same else d_same
            if fc:
                todo = ((row_same, True),)
            else:
                cl = pred_client_get(j, -1)
                d_cl = dyn_get((sl, True), -1)
                if cl < d_cl:
                    cl = d_cl
                # the older of the two first (the client's on a tie, as sorting (row, dir) does)
                todo = ((cl, True), (row_same, False)) if cl < row_same else ((row_same, False), (cl, True))
            for row, d in todo:
                if row >= 0:
                    if row <= last_decoded_get(sl, -1):
                        continue      # older than what the module has seen: feeding it would reorder
                elif sl in last_decoded or skips_get((sl, d)) is None:
                    continue          # the carried packet is older than this chunk's decoded ones, or none
                self._prime(cap, chunk, ctx, sl, d, row, primed, decoded, module, state, frames, ts)
                if row >= 0:
                    last_decoded[sl] = row
            decoded.add((sl, fc))
            last_decoded[sl] = j
            errors = deep.errors
            a = poff_l[i]
            obs = run(module, Packet(cap, frame, t_s, bytes(buf[a:a + plen_l[i]]), *hdr(j), fc, state))
            if not obs:
                if tmpl is not None and not tmpl.never:
                    self._learn(tmpl, [], {}, deep.errors != errors)
                continue
            kept = [add(o, p) for o in obs]
            ops: dict[str, int] = {}
            for o in obs:
                if o.kind == "operation":
                    c = o.data.get("category", "other")
                    ops[c] = ops.get(c, 0) + 1
            if ops:
                add_ops(sl, ops)
            if tmpl is not None and not tmpl.never:
                self._learn(tmpl, kept, ops, deep.errors != errors)
        for tmpl in replayed:
            cnt, i = tmpl.n_replayed, tmpl.last_i
            tmpl.n_replayed = 0
            for o in tmpl.kept:
                bump(o, cnt, frame_l[i], ts_l[i], pos_l[i])
            if tmpl.ops:
                add_ops(tmpl.slot, tmpl.ops, cnt)
        self.counters["routine_packets"] += n_routine
        self.counters["deep_packets"] += n_deep
        if ctx is not None and (len(skipped_rows) or dyn):
            self._remember_skips(chunk, ctx, skipped_rows, dyn, primed, frames, ts)

    def _prime(self, cap, chunk, ctx, sl, from_client, row, primed, decoded, module, state, frames, ts) -> None:
        sub, slot, fcs, mod, li, cap_idx = ctx
        if row >= 0:
            if row in primed:
                return
            primed.add(row)
            r = int(li[row])
            a = int(sub.pay_off[row])
            pkt = Packet(cap, int(frames[r]), float(ts[r]), bytes(chunk.buf[a:a + int(sub.pay_len[row])]),
                         *headers.l4_header(sub, row), from_client, state)
            errors = self.deep.errors
            self.deep._run(module, pkt)
            self.deep.errors = errors
            self.counters["primed_packets"] = self.counters.get("primed_packets", 0) + 1
            return
        else:
            carry = self.skips.get((sl, from_client))
            if carry is None or (sl, from_client) in decoded or carry[5] != cap_idx or carry[6]:
                return
            self.skips[(sl, from_client)] = carry[:6] + (True,)
            off, n, lt, frame, t_s = carry[:5]
        lay = decode_frame(lt, bytes(chunk.buf[off:off + n]))
        if lay is None:
            return
        errors = self.deep.errors
        self.deep.decode_l4(module, state, from_client, cap, frame, t_s, lay)
        self.deep.errors = errors
        self.counters["primed_packets"] = self.counters.get("primed_packets", 0) + 1

    def _remember_skips(self, chunk, ctx, skipped_rows, dyn, primed, frames, ts) -> None:
        """Carry each flow direction's latest replayed packet to the next chunk."""
        sub, slot, from_client, mod, li, cap_idx = ctx
        rows = np.concatenate([skipped_rows, np.asarray(list(dyn.values()), np.int64)])
        if not len(rows):
            return
        rows = np.sort(rows)
        g = slot[rows] * 2 + from_client[rows]
        o = np.argsort(g, kind="stable")
        gs = g[o]
        last = np.r_[gs[1:] != gs[:-1], True]
        lr = rows[o][last]
        r = li[lr]
        cols = (chunk.offsets[r].tolist(), chunk.caplen[r].tolist(), chunk.linktype[r].tolist(),
                frames[r].tolist(), ts[r].tolist())
        for i, (row, gk) in enumerate(zip(lr.tolist(), gs[last].tolist())):
            self.skips[(gk >> 1, bool(gk & 1))] = (cols[0][i], cols[1][i], cols[2][i], cols[3][i],
                                                   cols[4][i], cap_idx, row in primed)

    @staticmethod
    def _learn(t: Template, kept: list, ops: dict, failed: bool) -> None:
        if failed:
            t.never, t.last_sig = True, None
            return
        sig = tuple(map(id, kept))
        if sig == t.last_sig:
            t.ready, t.kept, t.ops, t.last_sig = True, kept, ops, None
            return
        t.last_sig = sig
        t.tries += 1
        if t.tries >= LEARN_TRIES:
            t.never, t.last_sig = True, None

    def _state(self, sl: int) -> dict:
        st = self.states.get(sl)
        if st is None:
            st = self.states[sl] = {}
            if len(self.states) > self.max_states:
                old, _ = self.states.popitem(last=False)
                self._drop_templates(old)
                self.counters["states_evicted"] += 1
        else:
            self.states.move_to_end(sl)
        return st

    def _drop_templates(self, sl: int) -> None:
        for tk in self.slot_templates.pop(sl, ()):
            t = self.templates.pop(tk, None)
            if t is not None:
                t.dropped = True

    def _forget_flows(self, rows: np.ndarray) -> None:
        for sl in rows.tolist():
            self.states.pop(sl, None)
            self._drop_templates(sl)
            self.skips.pop((sl, True), None)
            self.skips.pop((sl, False), None)

    # ------------------------------------------------------------------ output
    def result(self, captures: list[CaptureStats]) -> AnalysisResult:
        res = AnalysisResult()
        res.captures = captures
        res.observations = self.agg.observations
        res.flows = self.table.flows(self.modules, self.captures)
        c = dict(self.counters)
        c["decode_errors"] = self.deep.errors
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
        return res
