"""Port and address-set algebra the parsers share. Ports as the model keeps them (inclusive (low,
high) tuples): merging, complements (`neq`, `!=`), intersections (class-maps, service groups).
And folding: a rule may test one field twice (`! -s A -m set --match-set S src`, `tcp dport 1-100
tcp dport != 22`) while the model holds one value per field, so the tests become one (value,
negated) pair."""
from __future__ import annotations

from netaddr import IPSet

from plantguard.firewall.model import ANY_PORT, Ports


def normalize(ranges) -> Ports:
    """Sorted, merged, non-empty ranges (an empty one, low > high, is dropped: `lt 0`)."""
    out: list[list[int]] = []
    for lo, hi in sorted((int(a), int(b)) for a, b in ranges):
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def complement(ports: Ports) -> Ports:
    out, nxt = [], 0
    for lo, hi in normalize(ports):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= 65535:
        out.append((nxt, 65535))
    return tuple(out)


def intersect(a: Ports | None, b: Ports | None) -> Ports | None:
    """None is any port; an empty tuple is no port at all."""
    if a is None:
        return None if b is None else normalize(b)
    if b is None:
        return normalize(a)
    out = [(max(x0, y0), min(x1, y1)) for x0, x1 in normalize(a) for y0, y1 in normalize(b)
           if max(x0, y0) <= min(x1, y1)]
    return normalize(out)


def fold_ports(tests: list[tuple[Ports, bool]]) -> tuple[Ports | None, bool]:
    """The conjunction of several (ports, negated) tests as one (ports, negated)."""
    if not tests:
        return None, False
    if len(tests) == 1:
        return normalize(tests[0][0]), tests[0][1]
    acc = ANY_PORT
    for ports, neg in tests:
        acc = intersect(acc, complement(ports) if neg else ports)
    return acc, False


def fold_addrs(tests: list[tuple[IPSet, bool]]) -> tuple[IPSet | None, bool]:
    """The conjunction of several (address set, negated) tests as one (set, negated)."""
    if not tests:
        return None, False
    if len(tests) == 1:
        return tests[0]
    pos = [s for s, neg in tests if not neg]
    neg = [s for s, n in tests if n]
    if not pos:            # not in A and not in B: not in A|B
        union = IPSet()
        for s in neg:
            union |= s
        return union, True
    acc = pos[0]
    for s in pos[1:]:
        acc = acc & s
    for s in neg:
        acc = acc - s
    return acc, False
