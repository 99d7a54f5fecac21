"""A deterministic byte stream (SHA-256 in counter mode) for everything in the demo that would
be random in a real plant: initial sequence numbers, ports, TLS randoms, sensor readings, key
material. Unlike `random.Random`, its output is fixed by construction across Python versions."""
from __future__ import annotations

import hashlib


class DetRandom:
    def __init__(self, seed: str):
        self._seed = seed.encode()
        self._counter = 0
        self._pool = b""

    def bytes(self, n: int) -> bytes:
        while len(self._pool) < n:
            block = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._pool += block
            self._counter += 1
        out, self._pool = self._pool[:n], self._pool[n:]
        return out

    def bits(self, k: int) -> int:
        return int.from_bytes(self.bytes((k + 7) // 8), "big") >> (-k % 8)

    def below(self, n: int) -> int:
        """Uniform integer in [0, n) by rejection (no modulo bias)."""
        if n <= 1:
            return 0
        k = (n - 1).bit_length()
        while True:
            v = self.bits(k)
            if v < n:
                return v

    def between(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi]."""
        return lo + self.below(hi - lo + 1)

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.bits(53) / float(1 << 53)

    def child(self, label: str) -> "DetRandom":
        """An independent stream, so adding draws in one place never shifts another."""
        return DetRandom(self._seed.decode() + "/" + label)
