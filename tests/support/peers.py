"""tshark as the second oracle: skip when it is absent, one dict of field values per matching
frame, and several small captures in one tshark run."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

from plantguard.capture import formats


def need_tshark() -> str:
    exe = shutil.which("tshark")
    if not exe:
        pytest.skip("tshark not installed (second oracle)")
    return exe


@lru_cache(maxsize=128)
def _tshark(path: str, display_filter: str, fields: tuple[str, ...], extra: tuple[str, ...]) -> tuple:
    exe = need_tshark()
    cmd = [exe, "-n", "-r", path, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
           "-E", "aggregator=\x1f", "-e", "frame.number"]
    for f in fields:
        cmd += ["-e", f]
    if display_filter:
        cmd += ["-Y", display_filter]
    cmd += list(extra)
    res = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=120)
    rows = []
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        row = {"frame": int(parts[0])}
        for f, v in zip(fields, parts[1:]):
            row[f] = v.split("\x1f") if v else []
        rows.append(row)
    return tuple(rows)


def tshark_fields(path: str | Path, display_filter: str, fields: list[str],
                  extra: list[str] | None = None) -> list[dict]:
    """One dict per matching frame: {"frame": n, field: [values...]} (all occurrences)."""
    return list(_tshark(str(path), display_filter, tuple(fields), tuple(extra or ())))


def _record_count(path: str | Path) -> int:
    return sum(len(chunk) for chunk in formats.read_chunks(path))


def tshark_many(paths: list[str | Path], display_filter: str, fields: list[str],
                extra: list[str] | None = None) -> dict[Path, list[dict]]:
    """tshark_fields for several captures in one tshark run (tshark's start-up dominates on
    small files): the captures are concatenated with mergecap and the rows split back."""
    exe = need_tshark()
    merge = shutil.which("mergecap") or str(Path(exe).with_name("mergecap"))
    paths = [Path(p) for p in paths]
    if not Path(merge).exists() or len(paths) < 2:
        return {p: tshark_fields(p, display_filter, fields, extra) for p in paths}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "all.pcapng"
        subprocess.run([merge, "-a", "-w", str(out)] + [str(p) for p in paths], check=True,
                       capture_output=True, timeout=120)
        rows = list(_tshark(str(out), display_filter, tuple(fields), tuple(extra or ())))
    result: dict[Path, list[dict]] = {p: [] for p in paths}
    bounds, first = [], 0
    for p in paths:
        n = _record_count(p)
        bounds.append((first, first + n, p))
        first += n
    for row in rows:
        for lo, hi, p in bounds:
            if lo < row["frame"] <= hi:
                result[p].append(dict(row, frame=row["frame"] - lo))
                break
    return result
