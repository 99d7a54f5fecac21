"""The baseline: what is normal, as keyed sets with first and last seen (packet time), a count
and one evidence frame per key. Kinds: asset (its MAC and identity kept as the key's value, so
a change shows), conduit (zone pair x service, or client -> server:port without zones),
controller-op (station x PLC x operation class), protocol (device x protocol) and external
(public destination). While learning, new keys join silently (state `learnt`); after it a new
key joins as `new` and observe() says so (the caller alerts). `accept` promotes reviewed `new`
keys to `accepted`. Bounded: at most MAX_KEYS per kind, further new keys counted in `dropped`.

Learning ends at `learn_until`, or earlier when new keys become rare: once no key joined for
`quiet_s` of packet time (judged by advance(), at checkpoints, when every key seen so far has been
observed), learning ends there. Since the quiet stretch counts from the start, learning lasts at
least `quiet_s`."""
from __future__ import annotations

from typing import Any

KINDS = ("asset", "conduit", "controller-op", "protocol", "external")
MAX_KEYS = 50_000
VERSION = 1
NEW, LEARNT, ACCEPTED = "new", "learnt", "accepted"


class Baseline:
    def __init__(self, doc: dict | None = None):
        doc = doc or {}
        if doc and doc.get("version") != VERSION:
            raise ValueError(f"not a plantguard baseline (version {VERSION})")
        self.sets: dict[str, dict[str, dict]] = {k: dict(doc.get("sets", {}).get(k, {})) for k in KINDS}
        self.learn_until: float | None = doc.get("learn_until")   # packet time; None: not learning
        self.learn_from: float | None = doc.get("learn_from")
        self.quiet_s: float | None = doc.get("quiet_s")           # None: learning runs to learn_until
        self.last_new: float | None = doc.get("last_new")         # packet time of the last learnt key
        self.ended_early: bool = bool(doc.get("ended_early"))
        self.dropped: dict[str, int] = dict(doc.get("dropped", {}))

    def learning(self, ts: float) -> bool:
        return self.learn_until is not None and ts < self.learn_until

    def start_learning(self, ts: float, seconds: float, quiet_s: float | None = None) -> None:
        if self.learn_until is None:
            self.learn_from = self.last_new = ts
            self.learn_until = ts + seconds
            self.quiet_s = quiet_s

    def advance(self, now: float) -> bool:
        """At packet time `now`, with every key up to it observed: end learning when no key
        joined for quiet_s. True when learning ended here."""
        if (self.quiet_s is None or not self.learning(now) or self.last_new is None
                or now - self.last_new < self.quiet_s):
            return False
        self.learn_until, self.ended_early = now, True
        return True

    def observe(self, kind: str, key: str, ts: float, evidence: dict | None = None, count: int = 1,
                value: Any = None) -> tuple[bool, Any]:
        """Record a key seen at `ts`. Returns (new after learning, the value kept before: None
        when the key is new or had none)."""
        entries = self.sets[kind]
        e = entries.get(key)
        if e is None:
            if len(entries) >= MAX_KEYS:
                self.dropped[kind] = self.dropped.get(kind, 0) + 1
                return False, None
            learning = self.learning(ts)
            if learning:
                self.last_new = ts if self.last_new is None else max(self.last_new, ts)
            entries[key] = {"first": ts, "last": ts, "count": count, "evidence": evidence,
                            "state": LEARNT if learning else NEW, "value": value}
            return not learning, None
        old = e.get("value")
        e["last"] = max(e["last"], ts)
        e["count"] = max(e["count"], count) if kind != "controller-op" else e["count"] + count
        if value is not None:
            e["value"] = value
        return False, old

    def accept(self, kinds: tuple[str, ...] = KINDS, keys: set[str] | None = None) -> int:
        """Promote reviewed `new` keys (all of these kinds, or only `keys`) to `accepted`."""
        n = 0
        for kind in kinds:
            for key, e in self.sets[kind].items():
                if e["state"] == NEW and (keys is None or key in keys):
                    e["state"] = ACCEPTED
                    n += 1
        return n

    def as_dict(self) -> dict:
        return {"version": VERSION, "learn_until": self.learn_until, "learn_from": self.learn_from,
                "quiet_s": self.quiet_s, "last_new": self.last_new, "ended_early": self.ended_early,
                "dropped": self.dropped, "sets": self.sets}

    def summary(self) -> dict[str, dict[str, int]]:
        out = {}
        for kind, entries in self.sets.items():
            c: dict[str, int] = {}
            for e in entries.values():
                c[e["state"]] = c.get(e["state"], 0) + 1
            out[kind] = c
        return out
