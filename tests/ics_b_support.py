"""Helpers for the DNP3 / BACnet / PROFINET / IEC 104 / OPC UA / MQTT tests: walk a capture
frame by frame, run the deep tier without folding, and read peer-tool logs."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from plantguard.capture.deep import DeepTier
from plantguard.capture.reference import decoded_frames
from plantguard.capture.layers import Layers
from plantguard.model import Observation


def frames(path: str | Path) -> Iterator[tuple[int, float, Layers]]:
    """(frame number, timestamp, decoded layers) for every decodable frame of a capture."""
    return decoded_frames(path)


def deep_observations(path: str | Path) -> list[Observation]:
    """Every observation the deep tier makes for a capture, in frame order and unfolded
    (so per-packet counts can be compared with per-packet peer logs)."""
    deep = DeepTier()
    out: list[Observation] = []
    for frame, ts, lay in frames(path):
        out.extend(deep.handle(str(path), frame, ts, lay))
    return out


def zeek_log(path: str | Path, columns: list[str] | None = None) -> list[dict[str, str]]:
    """Rows of a Zeek TSV log; `columns` for headerless (zeek-cut) logs."""
    rows = []
    fields = columns
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if not line or line.startswith("#"):
            continue
        vals = line.split("\t")
        if fields is None:
            raise ValueError(f"{path}: headerless log needs columns")
        rows.append(dict(zip(fields, vals)))
    return rows


def zeek_unescape(s: str) -> str:
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


def ratio(matched: int, total: int) -> float:
    return 1.0 if total == 0 else matched / total
