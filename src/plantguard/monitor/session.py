"""The incremental engine session: one Engine fed chunk after chunk for as long as the monitor
runs, with the engine's caps and memory budget, and a checkpoint every `checkpoint_s` seconds of
packet time: the cumulative result (Engine.snapshot, nothing closed) made into assets and the
assessment, exactly as `plantguard assess` makes them from a file.

feed() returns the operation observations the chunk added to the engine's aggregator (new fold
keys), so alerts that must not wait for a checkpoint (PLC changes) see them at once."""
from __future__ import annotations

import logging

import numpy as np

from plantguard.budget import DEFAULT as DEFAULT_BUDGET, Budget
from plantguard.capture import formats
from plantguard.capture.engine import Engine, release_free_heap
from plantguard.model import AnalysisResult, Observation

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT_S = 60.0


class Session:
    def __init__(self, site=None, *, budget: Budget | None = None, checkpoint_s: float = DEFAULT_CHECKPOINT_S,
                 db: str | None = None, packet_filter=None, suppressions=()):
        self.budget = budget or DEFAULT_BUDGET
        self.packet_filter = packet_filter                  # capture.bpf.PacketFilter (--watch --bpf) or None
        self.suppressions = list(suppressions)              # accepted risks (suppress.py): never alerted
        b = self.budget
        self.engine = Engine(b.max_flows, b.max_states, b.pending_bytes, b.max_observations)
        self.site, self.db = site, db
        self.checkpoint_s = checkpoint_s
        self.stats: dict[str, formats.ReadStats] = {}     # per capture, in first-seen order
        self._idx: dict[str, int] = {}                      # capture -> its index in the engine
        self.packets = 0
        self.packet_time: float | None = None               # latest packet time seen
        self.last_checkpoint: float | None = None           # packet time of the last checkpoint
        self.abandoned = 0                                  # packets of chunks the engine raised on
        self.last_result: AnalysisResult | None = None      # the engine's result at the last checkpoint

    def feed(self, cap: str, chunk: formats.Chunk) -> list[Observation]:
        """One chunk of capture `cap`; the new operation observations it gave."""
        if self.packet_filter is not None:     # the packets it drops are never seen, nor counted
            chunk = self.packet_filter.keep(chunk)
        n = len(chunk)
        if n == 0:
            return []
        eng = self.engine
        st = self.stats.get(cap)
        if st is None:
            st = self.stats[cap] = formats.ReadStats(cap)
            self._idx[cap] = len(eng.captures)
            eng.captures.append(cap)
        cap_idx = self._idx[cap]
        before = len(eng.agg.observations)
        try:
            eng.process(cap_idx, cap, chunk)
        except Exception:   # noqa: BLE001 - hostile packets never stop the sensor
            log.debug("capture %s: chunk abandoned", cap, exc_info=True)
            eng.abandon_chunk()
            self.abandoned += n
            st.warn("analysis_error", f"internal error in a chunk of {n:,} packets; the chunk was skipped")
        release_free_heap()
        st.packets += n
        st.bytes += int(np.sum(chunk.wirelen, dtype=np.int64))
        lo, hi = float(chunk.ts.min()), float(chunk.ts.max())
        st.first_ts = lo if st.first_ts is None else min(st.first_ts, lo)
        st.last_ts = hi if st.last_ts is None else max(st.last_ts, hi)
        self.packets += n
        self.packet_time = hi if self.packet_time is None else max(self.packet_time, hi)
        if self.last_checkpoint is None:
            self.last_checkpoint = lo
        return [o for o in eng.agg.observations[before:] if o.kind == "operation"]

    def due(self) -> bool:
        """A checkpoint is due: checkpoint_s of packet time since the last one."""
        return (self.packet_time is not None and self.last_checkpoint is not None
                and self.packet_time - self.last_checkpoint >= self.checkpoint_s)

    def result(self, final: bool = False) -> AnalysisResult:
        caps = [s.capture_stats() for s in self.stats.values()]
        res = self.engine.result(caps) if final else self.engine.snapshot(caps)
        b = self.budget
        res.limits = {"max_memory_mb": b.max_memory_mb, "max_flows": self.engine.table.max_flows,
                      "max_states": self.engine.max_states, "pending_bytes": b.pending_bytes,
                      "max_assets": b.max_assets}
        return res

    def checkpoint(self, final: bool = False) -> dict:
        """The assessment contract of everything fed so far (assets, findings, ...)."""
        from plantguard.assess import run_assessment
        self.last_result = self.result(final)
        contract = run_assessment(self.last_result, self.site, db=self.db, suppressions=self.suppressions)
        self.last_checkpoint = self.packet_time
        return contract
