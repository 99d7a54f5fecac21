"""Folds repeated observations into the first one, so memory grows with what is distinct
(devices, operations, identities) and never with the number of packets.

Used by both the reference analysis and the columnar engine, so their outputs compare 1:1."""
from __future__ import annotations

from typing import Any, Iterable

from plantguard.model import Observation


def freeze(value: Any) -> Any:
    """A hashable stand-in for an observation's data (dicts, lists and sets nest freely)."""
    if isinstance(value, dict):
        return tuple(sorted(((str(k), freeze(v)) for k, v in value.items()), key=lambda kv: kv[0]))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def fold_key(o: Observation) -> tuple:
    """What makes two observations 'the same one seen again'. MACs only count for layer-2
    observations, where they are the only address."""
    head = (o.kind, o.proto, o.l4, o.src, o.dst, o.dport, o.subject,
            o.src_mac if o.src is None else None, o.dst_mac if o.dst is None else None)
    # fast path: flat data of hashable values (most observations), in sorted key order
    try:
        items = tuple(sorted(o.data.items()))
        hash(items)
        return head + (items,)
    except TypeError:
        return head + (freeze(o.data),)


class ObservationAggregator:
    """Keeps one Observation per fold key; repeats raise its count and move last_frame/last_ts."""

    def __init__(self) -> None:
        self._index: dict[tuple, Observation] = {}
        self._last_pos: dict[int, int] = {}   # id(kept) -> position of its latest repeat
        self.observations: list[Observation] = []

    def add(self, o: Observation, pos: int | None = None) -> Observation:
        """Record one observation; returns the kept (first) one it was folded into. pos is the
        packet's position in the whole run when callers do not add in packet order."""
        data = o.data
        src, dst = o.src, o.dst
        try:   # fold_key inlined (the hot path): flat data of hashable values, sorted by key
            key = (o.kind, o.proto, o.l4, src, dst, o.dport, o.subject,
                   o.src_mac if src is None else None, o.dst_mac if dst is None else None,
                   tuple(sorted(data.items())) if len(data) > 1 else tuple(data.items()))
            kept = self._index.get(key)
        except TypeError:
            key = fold_key(o)
            kept = self._index.get(key)
        if kept is None:
            self._index[key] = o
            self.observations.append(o)
            if pos is not None:
                self._last_pos[id(o)] = pos
            return o
        self.bump(kept, o.count, o.last_frame if o.last_frame is not None else o.frame,
                  o.last_ts if o.last_ts is not None else o.ts, pos)
        return kept

    def extend(self, obs: Iterable[Observation]) -> list[Observation]:
        return [self.add(o) for o in obs]

    def bump(self, kept: Observation, n: int, last_frame: int, last_ts: float,
             pos: int | None = None) -> None:
        """n more repeats of a kept observation, the latest at (last_frame, last_ts)."""
        kept.count += n
        if pos is not None:
            if pos < self._last_pos.get(id(kept), -1):
                return
            self._last_pos[id(kept)] = pos
        kept.last_frame = last_frame
        kept.last_ts = last_ts

    def __len__(self) -> int:
        return len(self.observations)
