"""Port ranges as the model keeps them (inclusive (low, high) tuples), and the arithmetic the
vendor parsers need: complements for `neq`, intersections for class-maps and service groups."""
from __future__ import annotations

from plantguard.firewall.model import Ports


def normalise(ranges) -> Ports:
    """Sorted, merged, non-empty ranges."""
    out: list[list[int]] = []
    for lo, hi in sorted((int(a), int(b)) for a, b in ranges):
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def complement(ranges: Ports) -> Ports:
    out, nxt = [], 0
    for lo, hi in normalise(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= 65535:
        out.append((nxt, 65535))
    return tuple(out)


def intersect(a: Ports | None, b: Ports | None) -> Ports | None:
    """None is any port; an empty tuple is no port at all."""
    if a is None:
        return b
    if b is None:
        return a
    out = [(max(x0, y0), min(x1, y1)) for x0, x1 in a for y0, y1 in b if max(x0, y0) <= min(x1, y1)]
    return normalise(out)
