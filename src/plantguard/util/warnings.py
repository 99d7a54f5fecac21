"""Warnings summarised by kind: a damaged capture can yield one warning per record (half a million
"packet for unknown interface 3 at byte 81234"), which nobody reads and which bloats every
report. Messages that differ only in their numbers are one kind; each kind is shown once, with
how often it occurred and its first few messages as examples.

    summarize(["truncated packet at byte 10", "truncated packet at byte 99"])
    -> ["truncated packet at byte 10 (2 times, e.g. truncated packet at byte 10; truncated packet at byte 99)"]

summarize() is idempotent (a summary line is its own kind, occurring once), so a report can
summarise warnings that the command line already summarised.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

EXAMPLES = 3            # messages kept per kind
MAX_KINDS = 20          # kinds listed; the rest are counted in one last line
_NUMBER = re.compile(r"\d[\dxXa-fA-F]*(?:[.,]\d+)*")     # 12, 0x1f, 1,234, 1.5


def kind_of(message: str) -> str:
    """The message with its numbers (decimal, hex, 1,234 and 1.5) replaced by N."""
    return _NUMBER.sub("N", message)


@dataclass
class WarningGroup:
    kind: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The message itself when it occurred once; else the first message, the count and up
        to EXAMPLES messages."""
        if self.count == 1:
            return self.examples[0]
        return f"{self.examples[0]} ({self.count:,} times, e.g. {'; '.join(self.examples)})"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "count": self.count, "examples": list(self.examples)}


def group_warnings(messages: Iterable[str], examples: int = EXAMPLES) -> list[WarningGroup]:
    """The messages grouped by kind, in order of each kind's first occurrence."""
    groups: dict[str, WarningGroup] = {}
    for m in messages:
        m = str(m)
        k = kind_of(m)
        g = groups.get(k)
        if g is None:
            g = groups[k] = WarningGroup(k)
        g.count += 1
        if len(g.examples) < examples:
            g.examples.append(m)
    return list(groups.values())


def summarize(messages: Iterable[str], examples: int = EXAMPLES, max_kinds: int = MAX_KINDS) -> list[str]:
    """One line per kind of message (see WarningGroup.line); past `max_kinds` kinds, one line
    counting the rest (so at most max_kinds + 1 lines, and a summary summarises to itself)."""
    groups = group_warnings(messages, examples)
    if len(groups) <= max_kinds + 1:
        return [g.line() for g in groups]
    lines = [g.line() for g in groups[:max_kinds]]
    rest = groups[max_kinds:]
    if rest:
        n = sum(g.count for g in rest)
        lines.append(f"{n:,} more warning{'s' if n != 1 else ''} of {len(rest):,} other kind{'s' if len(rest) != 1 else ''}")
    return lines


def summarized_captures(captures: Iterable[dict]) -> list[dict]:
    """Copies of CaptureStats.as_dict() dicts with their warnings summarised (other keys as is)."""
    out = []
    for c in captures:
        if isinstance(c, dict) and isinstance(c.get("warnings"), (list, tuple)):
            c = {**c, "warnings": summarize(c["warnings"])}
        out.append(c)
    return out
