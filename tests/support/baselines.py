"""The peer tools' records and how well ours agree with them: Zeek and ICSNPP TSV logs, Zeek's
escaped strings, the shared data set's ORACLE_MAP.tsv (which upstream test made which baseline
from which trace), and agreement measures (a ratio, multiset and in-order agreement, and a
field-by-field Score)."""
from __future__ import annotations

import difflib
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

from conftest import shared_path

AGREEMENT = 0.99


def zeek_log(path: str | Path, columns: list[str] | None = None) -> list[dict[str, str]]:
    """Rows of a Zeek TSV log; `columns` for headerless (zeek-cut) logs."""
    rows, fields = [], columns
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if not line.strip() or line.startswith("#"):
            continue
        if fields is None:
            raise ValueError(f"{path}: headerless log needs columns")
        rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def zeek_bytes(s: str) -> bytes:
    """A Zeek-escaped string ('\\x08\\x007' style) back to its bytes."""
    out = bytearray()
    i = 0
    while i < len(s):
        if s.startswith("\\x", i) and re.fullmatch(r"[0-9a-fA-F]{2}", s[i + 2:i + 4] or ""):
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            out += s[i].encode("latin-1", "replace")
            i += 1
    return bytes(out)


def oracle_map() -> list[dict[str, str]]:
    """The rows of baselines/ORACLE_MAP.tsv, keyed by its header: source_repo, test, trace(s),
    baseline_dir, baseline_files, files_compared_by_upstream_test, notes."""
    header, *lines = shared_path("baselines/ORACLE_MAP.tsv").read_text().splitlines()
    keys = header.split("\t")
    return [dict(zip(keys, line.split("\t"))) for line in lines if line]


def ratio(matched: int, total: int) -> float:
    return 1.0 if total == 0 else matched / total


def agreement(ours: Iterable, theirs: Iterable) -> tuple[float, Counter, Counter]:
    """Multiset agreement: matched / max(len) and the records only one side has."""
    a, b = Counter(ours), Counter(theirs)
    return ratio(sum((a & b).values()), max(sum(a.values()), sum(b.values()))), a - b, b - a


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
    return ratio(matched, max(len(ours), len(theirs))), only_ours, only_theirs


class Score:
    """Field-by-field agreement counter; `misses` names what differed, for the assert message."""

    def __init__(self):
        self.matched = 0
        self.total = 0
        self.misses: list[str] = []

    def check(self, what: str, ours, theirs) -> bool:
        self.total += 1
        if ours == theirs:
            self.matched += 1
            return True
        if len(self.misses) < 20:
            self.misses.append(f"{what}: ours={ours!r} peer={theirs!r}")
        return False

    @property
    def ratio(self) -> float:
        return ratio(self.matched, self.total)

    def assert_agrees(self, minimum: float = AGREEMENT, at_least: int = 1) -> None:
        log = os.environ.get("PLANTGUARD_AGREEMENT_LOG")
        if log:   # for the baseline-difference notes: which test, how many fields, how many agreed
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"{test}\t{self.matched}\t{self.total}\t{self.ratio:.4f}\n")
        assert self.total >= at_least, f"only {self.total} fields compared"
        assert self.ratio >= minimum, f"agreement {self.ratio:.4f} < {minimum}: {self.misses}"
