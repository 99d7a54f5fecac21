"""One memory budget for a run, split across what grows with hostile traffic.

`--max-memory MB` (assess, inventory) gives the budget; Budget.from_mb() derives every limit
from it, so the CLI's defaults follow from one number (DEFAULT_MAX_MEMORY_MB, sized for a
2-core / 4 GB sensor). The split, after BASE_MB for the interpreter, imports and data files:

| share | what | limit | when hit (counted in AnalysisResult.counters, said in a note) |
|---|---|---|---|
| FLOW_SHARE | flow table and the flows of the result | max_flows = share / FLOW_BYTES | least recently seen flows folded into aggregates (`flows_evicted`) |
| STATE_SHARE | per-flow decoder state (deep tier) | max_states = share / STATE_BYTES | least recently used state dropped (`states_evicted`) |
| PENDING_SHARE | unfinished PDUs and held out-of-order segments of every stream | pending_bytes | the unfinished PDU dropped (`decoder_buffers_truncated`) |
| ASSET_SHARE | inventory assets | max_assets = share / ASSET_BYTES | addresses with least traffic left out (`assets_dropped`) |
| OBS_SHARE | distinct observations (repeats are folded) | max_observations = share / OBS_BYTES | new ones dropped, identities kept (`observations_dropped`) |
| CHUNK_SHARE | the mapped pages of the chunk being analysed | chunk_bytes | fewer records per chunk (large records) |

The per-byte costs are measured (docs/robustness.md, "Memory budget"): the peak RSS of a
flood at the default budget stays under the budget."""
from __future__ import annotations

from dataclasses import dataclass, replace

DEFAULT_MAX_MEMORY_MB = 1500
MIN_MAX_MEMORY_MB = 300
BASE_MB = 250            # interpreter, numpy, protocol tables, OUI and knowledge data
FLOW_SHARE, STATE_SHARE, PENDING_SHARE, ASSET_SHARE, OBS_SHARE = 0.25, 0.10, 0.10, 0.30, 0.15
CHUNK_SHARE = 0.05       # captured bytes of the chunk being analysed (its mapped pages)
FLOW_BYTES = 3000        # flow table row + index entry + Flow object + what inventory/checks make of it
STATE_BYTES = 2048       # a module state dict with its streams' objects (pending bytes counted apart)
OBS_BYTES = 700          # a distinct observation with its data dict and index entry
ASSET_BYTES = 14_000     # an asset through inventory, checks, report and store (measured: flood)
MB = 1 << 20


@dataclass(frozen=True)
class Budget:
    max_memory_mb: int
    max_flows: int
    max_states: int
    pending_bytes: int
    max_assets: int
    max_observations: int = 250_000
    chunk_bytes: int = 64 * (1 << 20)   # captured bytes of one chunk (mapped pages resident at once)

    @classmethod
    def from_mb(cls, mb: int = DEFAULT_MAX_MEMORY_MB) -> "Budget":
        if mb < MIN_MAX_MEMORY_MB:
            raise ValueError(f"--max-memory must be at least {MIN_MAX_MEMORY_MB} MB, not {mb}")
        free = (mb - BASE_MB) * MB
        return cls(mb, max(10_000, int(free * FLOW_SHARE / FLOW_BYTES)),
                   max(1_000, int(free * STATE_SHARE / STATE_BYTES)),
                   max(1 << 20, int(free * PENDING_SHARE)),
                   max(10_000, int(free * ASSET_SHARE / ASSET_BYTES)),
                   max(50_000, int(free * OBS_SHARE / OBS_BYTES)),
                   max(8 * MB, int(free * CHUNK_SHARE)))

    def split(self, n: int) -> "Budget":
        """One of n analysis workers' share (--jobs): the engine's limits divided by n, so the
        workers together stay within this budget. The assets are the parent's, whole; the chunk
        bytes too (the workers map the same pages of the same file)."""
        if n <= 1:
            return self
        return replace(self, max_flows=max(1, self.max_flows // n), max_states=max(1, self.max_states // n),
                       pending_bytes=max(1 << 16, self.pending_bytes // n),
                       max_observations=max(1, self.max_observations // n))

    def describe(self) -> str:
        return (f"memory budget {self.max_memory_mb:,} MB: at most {self.max_flows:,} flows, "
                f"{self.max_states:,} decoder states, {self.pending_bytes // MB:,} MB of pending PDUs, "
                f"{self.max_assets:,} assets, {self.max_observations:,} observations")


DEFAULT = Budget.from_mb(DEFAULT_MAX_MEMORY_MB)
