"""What keeps a probe gentle: a global token bucket on packets sent, and a circuit breaker that
stops a device (and, after several, the whole run) on errors or a rising response time."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

DEFAULT_RATE = 10.0          # packets per second, all devices together
DEFAULT_TIMEOUT = 3.0        # seconds to wait for one response


class RateCap:
    """At most `rate` packets per second, with no burst: the n-th packet leaves no earlier than
    (n - 1) / rate seconds after the first."""

    def __init__(self, rate: float, clock=time.monotonic, sleep=time.sleep):
        if not rate > 0:
            raise ValueError("the rate must be above 0 packets/s")
        self.interval = 1.0 / rate
        self._next = None
        self._clock, self._sleep = clock, sleep
        self.sent = 0

    def take(self) -> None:
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval
        self.sent += 1


@dataclass
class Breaker:
    """Trips a device after `max_errors` errors or one response slower than `latency_factor`
    times the median of its earlier ones (and at least `min_slow` seconds); trips the run after
    `max_devices` devices have tripped."""
    max_errors: int = 2
    latency_factor: float = 5.0
    min_slow: float = 0.5
    max_devices: int = 3
    errors: dict = field(default_factory=dict)
    latencies: dict = field(default_factory=dict)
    tripped: dict = field(default_factory=dict)     # device -> reason
    run_tripped: str | None = None

    def error(self, device: str, what: str) -> None:
        self.errors[device] = self.errors.get(device, 0) + 1
        if self.errors[device] >= self.max_errors:
            self._trip(device, f"{self.errors[device]} errors, the last: {what}")

    def latency(self, device: str, seconds: float) -> None:
        seen = self.latencies.setdefault(device, [])
        if len(seen) >= 2:
            typical = statistics.median(seen)
            if seconds > max(self.min_slow, typical * self.latency_factor):
                self._trip(device, f"a response took {seconds * 1000:.0f} ms, "
                                   f"{seconds / max(typical, 1e-6):.0f}× its usual {typical * 1000:.0f} ms")
        seen.append(seconds)
        del seen[:-20]

    def _trip(self, device: str, reason: str) -> None:
        if device not in self.tripped:
            self.tripped[device] = reason
            if len(self.tripped) >= self.max_devices and self.run_tripped is None:
                self.run_tripped = f"{len(self.tripped)} devices tripped the breaker"

    def stops(self, device: str) -> str | None:
        """Why nothing more may be sent to `device` (None: it may)."""
        return self.run_tripped or self.tripped.get(device)
