"""--jobs N: the packet engine in N processes, merged into exactly what one process gives.

Every worker reads every capture and analyses only its share of the records (`Shard.take`,
applied by the engine right after the columnar decode): a record goes to the worker of its
unordered IP address pair, so both directions of a flow, the fragments of a datagram and
everything a decoder keeps state for (the engine keeps module state per flow only) meet in one
worker. Layer-2 frames go by their unordered MAC pair, frames whose link layer is not decoded
to worker 0. A pair's worker is chosen when the pair is first seen: the one with the fewest
records so far (`Balancer`; every worker sees every record, so all make the same choice without
talking). A plant's polling is a few heavy host pairs, which a hash of the pair splits unevenly. The parent analyses shard 0 itself while forked children
analyse the others and send their AnalysisResult back pickled; `merge` then rebuilds the single
run's result:

- flows: each flow lives in one worker; they are listed in first-seen order (capture, first
  frame), as the flow table lists them, then the aggregates of evicted flows;
- observations: folded again by the aggregator's own rule (ObservationAggregator in the parent),
  taken in the order of their first packet, so the earliest evidence is kept, counts add up and
  the latest repeat gives last_frame / last_ts;
- captures: every worker read the same records, so worker 0's statistics, plus any analysis
  error another worker met; counters summed (in the order the single run first meets them);
  notes made again from the summed counters.

Identical to the single run below the caps only: each worker gets 1/N of the engine's memory
budget (budget.Budget.split) and applies its flow, state, pending-byte and observation caps to
its own share, so which flows are folded or which states dropped depends on the split.
docs/engine.md, "Jobs", has the measurements."""
from __future__ import annotations

import dataclasses
import gc
import heapq
import operator
import os
import pickle
import re
from typing import Callable, Iterable

import numpy as np

from plantguard.capture.aggregate import ObservationAggregator
from plantguard.model import AnalysisResult, CaptureStats, Flow, Observation
from plantguard.util.arrays import hash_keys


def default_jobs() -> int:
    """The cores this process may run on."""
    count = getattr(os, "process_cpu_count", None)   # Python 3.13+
    if count is not None:
        return max(1, count() or 1)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not Linux
        return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------------------ the shard rule
def pair_of(cols) -> np.ndarray:
    """A hash of every record's unordered pair of IP addresses (ports left out: the fragments of
    a datagram must meet in the worker that reassembles them), else of its unordered MAC pair."""
    u64 = np.uint64
    ip = hash_keys((cols.src_hi, cols.src_lo)) + hash_keys((cols.dst_hi, cols.dst_lo))
    mac = hash_keys((cols.src_mac.astype(u64),)) + hash_keys((cols.dst_mac.astype(u64),))
    return hash_keys((np.where(cols.ip_version > 0, ip, mac),))   # the sums are symmetric; mixed again


def shard_of(cols, n: int) -> np.ndarray:
    """Worker (0..n-1) of every record by the pair's hash alone (the Balancer's rule once it
    knows MAX_PAIRS pairs); undecoded frames to worker 0."""
    w = (pair_of(cols) % np.uint64(n)).astype(np.int64)
    w[~cols.ok] = 0
    return w


MAX_PAIRS = 1 << 20   # pairs the Balancer remembers (about 100 MB at most); later ones go by hash


class Balancer:
    """Worker of every record, by its pair: a pair seen before keeps its worker; a new one goes
    to the worker with the fewest records so far (the lowest on a tie), in order of first
    appearance in the chunk (records, not bytes: weighting by bytes balanced both benchmark
    captures worse). Deterministic in the records alone, so every worker, fed the same
    chunks, deals the same way."""

    def __init__(self, n: int):
        self.n = n
        self.load = np.zeros(n, np.int64)
        self.worker_of: dict[int, int] = {}

    def workers(self, cols) -> np.ndarray:
        n = self.n
        h = pair_of(cols)
        h[~cols.ok] = 0                       # undecoded frames: one pair, pinned to worker 0
        pairs, first, inverse, counts = np.unique(h, return_index=True, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        out = np.empty(len(pairs), np.int64)
        known, load = self.worker_of, self.load
        for i in np.argsort(first, kind="stable").tolist():
            key = int(pairs[i])
            w = known.get(key)
            if w is None:
                if key == 0:
                    w = 0
                elif len(known) < MAX_PAIRS:
                    w = int(np.argmin(load))
                else:
                    w = key % n
                if len(known) < MAX_PAIRS:
                    known[key] = w
            out[i] = w
            load[w] += counts[i]
        return out[inverse]


class Shard:
    """Worker k of n, as the engine sees it (analyze(shard=...)): take() keeps the worker's
    records of each chunk; chunk_done(), the progress callback, notes in which chunk each
    counter first appeared, since the single run lists its counters in that order."""

    def __init__(self, k: int, n: int, progress: Callable[[int], None] | None = None):
        self.k, self.n, self.progress = k, n, progress
        self.balancer = Balancer(n)
        self.counters: dict | None = None
        self.first_chunk: dict[str, int] = {}   # counter -> chunk it appeared in (-1: before any)
        self.chunks = 0

    def take(self, chunk, cols, counters: dict):
        """(chunk, columns) of this worker's records (their frame numbers kept)."""
        if self.counters is None:
            self.counters = counters
            self._note(-1)
        rows = np.flatnonzero(self.balancer.workers(cols) == self.k)
        return chunk.take(rows), cols.take(rows)

    def chunk_done(self, n: int) -> None:
        if self.counters is not None:
            self._note(self.chunks)
        self.chunks += 1
        if self.progress:
            self.progress(n)

    def _note(self, seq: int) -> None:
        for key in self.counters:
            self.first_chunk.setdefault(key, seq)


# ------------------------------------------------------------------------------ running it
def analyze_parallel(paths: Iterable[str | os.PathLike], jobs: int,
                     progress: Callable[[int], None] | None = None, *, max_flows: int | None = None,
                     max_states: int | None = None, chunk_records: int | None = None,
                     budget=None, packet_filter=None) -> AnalysisResult:
    """engine.analyze() in `jobs` processes (1: in this process, as analyze). Every worker
    applies `packet_filter` (bpf.PacketFilter) to every record, before its share is taken."""
    from plantguard.budget import DEFAULT
    from plantguard.capture import engine, formats
    budget = budget or DEFAULT
    kw = {"chunk_records": chunk_records or engine.DEFAULT_CHUNK, "packet_filter": packet_filter}
    files = formats.expand_paths(list(paths))   # a bad path fails here, before any fork
    if jobs <= 1:
        return engine.analyze(files, progress, max_flows=max_flows, max_states=max_states,
                              budget=budget, **kw)
    part = budget.split(jobs)
    kw.update(budget=part, max_flows=max_flows and max(1, max_flows // jobs),
              max_states=max_states and max(1, max_states // jobs))
    parts, first_chunks = zip(*run_shards(files, jobs, progress, kw))
    res = merge(list(parts), [str(f) for f in files], budget.pending_bytes, list(first_chunks))
    res.limits = {"max_memory_mb": budget.max_memory_mb, "max_flows": max_flows or budget.max_flows,
                  "max_states": max_states or budget.max_states, "pending_bytes": budget.pending_bytes,
                  "max_assets": budget.max_assets}
    return res


class WorkerFailed(RuntimeError):
    """A worker process ended without sending its result (killed, out of memory)."""


def run_shards(files: list, jobs: int, progress, kw: dict) -> list[tuple[AnalysisResult, dict[str, int]]]:
    """Shard 0 here, shards 1..jobs-1 in forked children (fork: the imported modules and the
    protocol registry are shared, not loaded again). Returns _analyze_shard's answers in shard
    order."""
    import multiprocessing as mp

    from plantguard.protocols import registry
    registry.protocol_modules()   # loaded once, before the fork
    registry.port_tables()
    ctx = mp.get_context("fork")
    children = []
    gc.freeze()   # the collector would write to every inherited object, copying its page
    for k in range(1, jobs):
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(files, k, jobs, kw, send), daemon=True)
        proc.start()
        send.close()
        children.append((proc, recv))
    gc.unfreeze()
    try:
        parts = [_analyze_shard(files, 0, jobs, kw, progress)]
        for k, (proc, recv) in enumerate(children, 1):
            try:
                parts.append(_unpack(recv.recv_bytes()))
            except EOFError:
                proc.join()
                raise WorkerFailed(f"analysis worker {k} of {jobs} ended with exit code {proc.exitcode} "
                                   f"and no result (out of memory? try --jobs 1)") from None
            proc.join()
        return parts
    finally:
        for proc, recv in children:
            recv.close()
            if proc.is_alive():
                proc.kill()
                proc.join()


def _analyze_shard(files, k: int, jobs: int, kw: dict, progress=None) -> tuple[AnalysisResult, dict[str, int]]:
    """Worker k's result, and the chunk in which each of its counters first appeared."""
    from plantguard.capture import engine
    shard = Shard(k, jobs, progress)
    res = engine.analyze(files, shard.chunk_done, shard=shard, **kw)
    return res, {key: shard.first_chunk.get(key, shard.chunks) for key in res.counters}


def _child(files, k: int, jobs: int, kw: dict, send) -> None:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle: it ends us
    res = _analyze_shard(files, k, jobs, kw)
    try:
        send.send_bytes(_pack(res))
    except BrokenPipeError:   # the parent is gone
        pass


# a worker's flows and observations travel as tuples of their fields: 30 % fewer bytes than
# dataclasses with slots, pickled and loaded five times faster
_FLOW_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(Flow)))
_OBS_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(Observation)))


def _pack(answer: tuple[AnalysisResult, dict[str, int]]) -> bytes:
    res, first_chunk = answer
    flat = dataclasses.replace(res, flows=[_FLOW_FIELDS(f) for f in res.flows],
                               observations=[_OBS_FIELDS(o) for o in res.observations])
    return pickle.dumps((flat, first_chunk), pickle.HIGHEST_PROTOCOL)


def _unpack(blob: bytes) -> tuple[AnalysisResult, dict[str, int]]:
    was = gc.isenabled()
    gc.disable()   # a burst of new objects, none of them garbage
    try:
        res, first_chunk = pickle.loads(blob)
        res.flows = [Flow(*t) for t in res.flows]
        res.observations = [Observation(*t) for t in res.observations]
    finally:
        if was:
            gc.enable()
    return res, first_chunk


# ------------------------------------------------------------------------------ the merge
def merge(parts: list[AnalysisResult], files: list[str], pending_bytes: int,
          first_chunks: list[dict[str, int]] | None = None) -> AnalysisResult:
    """One AnalysisResult from the shards' results (their captures in the order of `files`;
    first_chunks: per shard, the chunk each counter first appeared in, default all in one)."""
    res = AnalysisResult()
    res.captures = _merge_captures(parts, files)
    index = {f: i for i, f in enumerate(files)}
    res.flows = _merge_flows(parts, index)
    res.observations = _merge_observations(parts, index, res.captures)
    res.counters = _merge_counters(parts, first_chunks or [{} for _ in parts])
    res.notes = _merge_notes(parts, res.counters, pending_bytes)
    return res


def _merge_captures(parts, files) -> list[CaptureStats]:
    """Per capture: the first statistics of it, plus the warnings only another shard had (an
    analysis error stops one worker's capture, not the others')."""
    out: dict[str, CaptureStats] = {}
    for p in parts:
        for c in p.captures:
            have = out.get(c.path)
            if have is None:
                out[c.path] = c
                continue
            for kind, n in c.warning_counts.items():
                have.warning_counts[kind] = max(n, have.warning_counts.get(kind, 0))
            have.warnings.extend(w for w in c.warnings if w not in have.warnings)
    return [out[f] for f in files if f in out]


def _merge_flows(parts, index: dict[str, int]) -> list[Flow]:
    """Live flows in first-seen order (a flow seen by two shards, which only a capped run
    gives, is folded into its first sighting), then the aggregates, folded by their key."""
    live: dict[tuple, Flow] = {}
    other: dict[tuple, Flow] = {}
    for p in parts:
        n_agg = p.counters.get("flows_aggregated", 0)
        cut = len(p.flows) - n_agg
        for f in p.flows[:cut]:
            key = (f.l4, f.vlan) + tuple(sorted(((f.client, f.client_port), (f.server, f.port))))
            have = live.get(key)
            if have is None:
                live[key] = f
            else:
                first, later = sorted((have, f), key=lambda x: (index[x.capture], x.first_frame))
                live[key] = _add_flow(first, later)
        for f in p.flows[cut:]:
            key = (f.l4, f.client, f.server, f.port, f.vlan, f.app)
            have = other.get(key)
            other[key] = f if have is None else _add_flow(have, f)
    flows = sorted(live.values(), key=lambda f: (index[f.capture], f.first_frame))
    return flows + list(other.values())


def _add_flow(f: Flow, g: Flow) -> Flow:
    same = (g.client, g.client_port) == (f.client, f.client_port)
    f.packets += g.packets
    f.bytes += g.bytes
    f.packets_to_server += g.packets_to_server if same else g.packets - g.packets_to_server
    f.bytes_to_server += g.bytes_to_server if same else g.bytes - g.bytes_to_server
    f.first, f.last = min(f.first, g.first), max(f.last, g.last)
    f.app = f.app or g.app
    f.tunnel = f.tunnel or g.tunnel   # the first mark
    for cat, n in g.operations.items():
        f.operations[cat] = f.operations.get(cat, 0) + n
    return f


def _merge_observations(parts, index: dict[str, int], captures: list[CaptureStats]) -> list[Observation]:
    """Each shard's observations are in the order of their first packet; merged by that
    position and folded again, a repeat's position is that of its latest packet."""
    base, run = {}, 0   # capture -> run-wide position of its frame 0
    for c in captures:
        base[c.path] = run
        run += c.packets

    def first_pos(o: Observation) -> int:
        return base.get(o.capture, 0) + o.frame

    def last_pos(o: Observation) -> int:
        if o.last_frame is None:
            return first_pos(o)
        # the latest repeat's capture is not kept: the last one from the first's on whose
        # frames and time span can hold it (the first's own capture in a one-capture run)
        at = index.get(o.capture, 0)
        for c in reversed(captures[at + 1:]):
            if c.packets >= o.last_frame and c.first is not None and c.first <= o.last_ts <= c.last:
                return base[c.path] + o.last_frame
        return base.get(o.capture, 0) + o.last_frame

    agg = ObservationAggregator()
    streams = [[(first_pos(o), w, i, o) for i, o in enumerate(p.observations)] for w, p in enumerate(parts)]
    for _pos, _w, _i, o in heapq.merge(*streams, key=lambda t: t[:3]):
        agg.add(o, last_pos(o))
    return agg.observations


def _merge_counters(parts, first_chunks) -> dict[str, int]:
    """Summed, in the order the single run adds them: by the chunk each first appeared in, a
    shard's own order kept; in one chunk, the per-kind counts (`kind:value`, counted as the
    chunk is decoded, in key order) before the others (counted as it is analysed)."""
    streams = [[(seen.get(key, 0), 0 if ":" in key else 1, key if ":" in key else "", key) for key in p.counters]
               for p, seen in zip(parts, first_chunks)]
    out: dict[str, int] = {}
    for _seq, _rank, _kind, key in heapq.merge(*streams, key=lambda t: t[:3]):
        if key not in out:
            out[key] = sum(p.counters.get(key, 0) for p in parts)
    return out


_GAP_NOTE = "TCP stream gaps: "
_GAP_FLOW = re.compile(r"(.+?) \(([\d,]+)\)(?:, |$)")


def _merge_notes(parts, counters: dict[str, int], pending_bytes: int) -> list[str]:
    """The bound notes of every shard (once each), then the stream and not-decoded notes made
    again from the summed counters, naming the flows with most stream gaps of all shards."""
    from plantguard.capture.engine import GAP_FLOWS_NOTED, stream_notes
    from plantguard.capture.layers import undecoded_notes
    bounds: list[str] = []
    gaps: list[tuple[int, str]] = []
    for p in parts:
        made = len(stream_notes(p.counters, pending_bytes, [])) + len(undecoded_notes(p.counters))
        own = p.notes[:len(p.notes) - made]
        bounds.extend(n for n in own if n not in bounds)
        for n in p.notes[len(own):]:
            if n.startswith(_GAP_NOTE) and "; most: " in n:
                gaps.extend((int(g.replace(",", "")), t) for t, g in _GAP_FLOW.findall(n.split("; most: ", 1)[1]))
    gaps.sort(key=lambda gt: (-gt[0], gt[1]))   # as Engine._gap_flows sorts them
    return bounds + stream_notes(counters, pending_bytes, gaps[:GAP_FLOWS_NOTED]) + undecoded_notes(counters)
