"""The baseline: what is normal, as keyed sets with first and last seen (packet time), a count
and one evidence frame per key. Kinds: asset (its MAC and identity kept as the key's value, so
a change shows), conduit (zone pair x service, or client -> server:port without zones),
controller-op (station x PLC x operation class), protocol (device x protocol) and external
(public destination). While learning, new keys join silently (state `learnt`); after it a new
key joins as `new` and observe() says so (the caller alerts). `accept` promotes reviewed `new`
keys to `accepted`; site_entries() gives accepted assets and conduits as commented site-file
entries (`baseline accept --site`). Bounded: at most MAX_KEYS per kind, further new keys counted in `dropped`.

Learning ends at `learn_until`, or earlier when new keys become rare: once no key joined for
`quiet_s` of packet time (judged by advance(), at checkpoints, when every key seen so far has been
observed), learning ends there. Since the quiet stretch counts from the start, learning lasts at
least `quiet_s`."""
from __future__ import annotations

import json
from typing import Any

from plantguard.util.timefmt import iso

KINDS = ("asset", "conduit", "controller-op", "protocol", "external")
MAX_KEYS = 50_000
VERSION = 1
NEW, LEARNT, ACCEPTED = "new", "learnt", "accepted"
SITE_IDENTITY = ("vendor", "product", "model", "firmware", "serial")     # an asset's keys in a site file
SITE_VALUE_MAX = 200


def _q(v: Any) -> str:
    return json.dumps(str(v)[:SITE_VALUE_MAX], ensure_ascii=True)


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

    def value(self, kind: str, key: str, default: Any = None) -> Any:
        """The value kept for a key (default when the key is unknown or has none)."""
        e = self.sets[kind].get(key)
        v = e.get("value") if e else None
        return default if v is None else v

    def accept(self, kinds: tuple[str, ...] = KINDS, keys: set[str] | None = None) -> list[tuple[str, str]]:
        """Promote reviewed `new` keys (all of these kinds, or only `keys`) to `accepted`; the
        (kind, key) promoted."""
        out = []
        for kind in kinds:
            for key, e in self.sets[kind].items():
                if e["state"] == NEW and (keys is None or key in keys):
                    e["state"] = ACCEPTED
                    out.append((kind, key))
        return out

    def site_entries(self, keys: list[tuple[str, str]], heading: str) -> str:
        """Site-file entries for accepted asset and conduit keys, as YAML comment lines to append
        to a site file: the file stays exactly as valid as it was, and a reviewer moves them under
        its assets: and conduits:. Every value is a JSON string (a YAML scalar with every line
        break escaped, ASCII only), so what a device sent cannot leave the comment."""
        assets, conduits = [], []
        for kind, key in keys:
            e = self.sets[kind][key]
            note = f"accepted from the monitor's baseline, first seen {iso(e['first'])}"
            if kind == "asset":
                v = e.get("value") or {}
                f = {"mac": key} if key == v.get("mac") else {"ip": key, "mac": v.get("mac")}
                f.update((k, x) for k, x in (v.get("identity") or {}).items() if k in SITE_IDENTITY)
                f["notes"] = note
                assets.append("{" + ", ".join(f"{k}: {_q(x)}" for k, x in f.items() if x) + "}")
            elif kind == "conduit":
                pair, _, service = key.rpartition("|")
                a, _, b = pair.partition(">")
                if not pair:                                 # client > server:port/proto: no zones
                    conduits.append(f"# {_q(key)}: no zones in the site, put both ends in zones first")
                elif "None" in (a, b):
                    conduits.append(f"# {_q(key)}: an end in no zone, put it in a zone first")
                elif a != b:                                 # inside one zone is always allowed
                    conduits.append(f"{{from: {_q(a)}, to: {_q(b)}, allow: [{_q(service)}], description: {_q(note)}}}")
        if not assets and not conduits:
            return ""
        lines = ["", f"# {' '.join(heading.split())}: reviewed, commented out; move them under assets: / conduits:"]
        for name, items in (("assets", assets), ("conduits", conduits)):
            if items:
                lines += [f"# {name}:"] + [f"#   {x}" if x.startswith("#") else f"#   - {x}" for x in items]
        return "\n".join(lines) + "\n"

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
