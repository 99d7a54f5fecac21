"""The monitor's health: packets, kernel drops, own drops, lag behind the packets, memory,
outbox depth and the last checkpoint, as one status line on stderr and as heartbeat events."""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

from plantguard.util.timefmt import iso


@dataclass
class Health:
    packets: int = 0
    kernel_drops: int | None = None
    own_drops: int = 0                 # packets of chunks the engine gave up on, events the outboxes dropped
    lag_s: float | None = None         # wall clock minus the latest packet's time
    rss_mb: float = 0.0
    outbox_depth: int = 0
    last_checkpoint: float | None = None
    alerts: int = 0
    warnings: dict = field(default_factory=dict)   # the source's warnings by kind (deleted_unread, ...)

    def line(self) -> str:
        drops = "n/a" if self.kernel_drops is None else f"{self.kernel_drops:,}"
        lag = "n/a" if self.lag_s is None else f"{self.lag_s:.1f} s"
        return (f"monitor: {self.packets:,} packets, kernel drops {drops}, own drops {self.own_drops:,}, "
                f"lag {lag}, memory {self.rss_mb:.0f} MB, outbox {self.outbox_depth:,}, alerts {self.alerts:,}, "
                f"last checkpoint {iso(self.last_checkpoint) if self.last_checkpoint else 'none'}"
                + "".join(f", {k.replace('_', ' ')} {v:,}" for k, v in sorted(self.warnings.items())))

    def as_dict(self) -> dict:
        return asdict(self)


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except (OSError, ValueError, IndexError):
        return 0.0


def lag(packet_time: float | None) -> float | None:
    return None if packet_time is None else max(0.0, time.time() - packet_time)
