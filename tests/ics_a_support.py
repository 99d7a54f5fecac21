"""Helpers for the Modbus / EtherNet/IP / S7comm tests: replay a capture through the deep tier
with a tap on a decoder's per-PDU function (so every PDU, request and response, can be compared
with a peer tool's per-PDU log), read Zeek logs, and measure agreement."""
from __future__ import annotations

import difflib
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator

from plantguard.capture.deep import DeepTier
from plantguard.capture.reference import decoded_frames
from plantguard.capture.layers import Layers
from plantguard.model import Observation


def frames(path: str | Path) -> Iterator[tuple[int, float, Layers]]:
    """(frame number, timestamp, decoded layers) for every decodable frame of a capture."""
    return decoded_frames(path)


def replay(path: str | Path, module=None, tap: str | None = None) -> tuple[list[Observation], list[tuple]]:
    """Every observation of a capture in frame order, unfolded, plus (when `tap` names a function
    of `module` taking (pkt, item)) every (frame, from_client, src, sport, dst, dport, item) it saw."""
    seen: list[tuple] = []
    original = getattr(module, tap) if tap else None

    def spy(pkt, item, *rest):
        seen.append((pkt.frame, pkt.from_client, pkt.src, pkt.sport, pkt.dst, pkt.dport, item))
        return original(pkt, item, *rest)

    if tap:
        setattr(module, tap, spy)
    try:
        deep = DeepTier()
        obs: list[Observation] = []
        for frame, ts, lay in frames(path):
            obs.extend(deep.handle(str(path), frame, ts, lay))
    finally:
        if tap:
            setattr(module, tap, original)
    return obs, seen


def zeek_log(path: str | Path, columns: list[str] | None = None) -> list[dict[str, str]]:
    """Rows of a Zeek TSV log; `columns` for headerless (zeek-cut) logs."""
    rows, fields = [], columns
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if not line or line.startswith("#"):
            continue
        if fields is None:
            raise ValueError(f"{path}: headerless log needs columns")
        rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def agreement(ours: Iterable, theirs: Iterable) -> tuple[float, Counter, Counter]:
    """Multiset agreement: matched / max(len) and the records only one side has."""
    a, b = Counter(ours), Counter(theirs)
    matched = sum((a & b).values())
    total = max(sum(a.values()), sum(b.values()))
    return (1.0 if total == 0 else matched / total), a - b, b - a


def sequence_agreement(ours: list, theirs: list) -> tuple[float, list, list]:
    """Order-aware agreement: records matched in order / max(len), plus the records only one
    side has, in order."""
    sm = difflib.SequenceMatcher(None, ours, theirs, autojunk=False)
    only_ours, only_theirs, matched = [], [], 0
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            matched += i2 - i1
        else:
            only_ours += ours[i1:i2]
            only_theirs += theirs[j1:j2]
    total = max(len(ours), len(theirs))
    return (1.0 if total == 0 else matched / total), only_ours, only_theirs


def by_kind(obs: Iterable[Observation], kind: str, proto: str | None = None) -> list[Observation]:
    return [o for o in obs if o.kind == kind and (proto is None or o.proto == proto)]


def hexint(s: str) -> int | None:
    return None if s in ("-", "", "(empty)") else int(s, 16) if s.startswith("0x") else int(s)


Predicate = Callable[[dict], bool]
