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


def _same(a: Observation, o: Observation) -> bool:
    """fold_key(a) == fold_key(o), compared field by field (the keys are not kept)."""
    return (a.kind == o.kind and a.proto == o.proto and a.l4 == o.l4 and a.src == o.src
            and a.dst == o.dst and a.dport == o.dport and a.subject == o.subject
            and (o.src is not None or a.src_mac == o.src_mac)
            and (o.dst is not None or a.dst_mac == o.dst_mac) and a.data == o.data)


KEEP_KINDS = frozenset({"identity"})   # never dropped by the observation cap


class ObservationAggregator:
    """Keeps one Observation per fold key; repeats raise its count and move last_frame/last_ts.

    The index maps the hash of each fold key to its kept observation (a list of them when two
    keys share a hash), not the key itself: a key duplicates the observation's data, and there
    is one per distinct observation. A candidate is confirmed against the kept observation's
    own fields, which callers leave unchanged once added.

    `limit` (the memory budget's cap on distinct observations): past it, a new observation that
    is not an identity is not kept but counted in `dropped`; repeats of kept ones still count."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.dropped = 0
        self._index: dict[int, Observation | list[Observation]] = {}
        self._last_pos: dict[int, int] = {}   # id(kept) -> position of its latest repeat
        self.observations: list[Observation] = []

    def add(self, o: Observation, pos: int | None = None) -> Observation:
        """Record one observation; returns the kept (first) one it was folded into. pos is the
        packet's position in the whole run when callers do not add in packet order."""
        data = o.data
        src, dst = o.src, o.dst
        key = None
        try:   # fold_key inlined (the hot path): flat data of hashable values, sorted by key
            h = hash((o.kind, o.proto, o.l4, src, dst, o.dport, o.subject,
                      o.src_mac if src is None else None, o.dst_mac if dst is None else None,
                      tuple(sorted(data.items())) if len(data) > 1 else tuple(data.items())))
        except TypeError:
            key = fold_key(o)
            h = hash(key)
        index = self._index
        cand = index.get(h)
        kept = None
        if cand is not None:
            for c in (cand if type(cand) is list else (cand,)):
                if _same(c, o) or fold_key(c) == (key if key is not None else fold_key(o)):
                    kept = c
                    break
        if kept is None:
            if self.limit is not None and len(self.observations) >= self.limit and o.kind not in KEEP_KINDS:
                self.dropped += 1
                return o
            if cand is None:
                index[h] = o
            elif type(cand) is list:
                cand.append(o)
            else:
                index[h] = [cand, o]
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
