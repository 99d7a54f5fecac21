"""A real capture written as the pieces of a capture ring (classic pcap files named as dumpcap
-b names them), for the monitor's tests: all at once, or piece by piece with a callback."""
from __future__ import annotations

import os
from pathlib import Path

from plantguard.capture import formats
from plantguard.capture.live import write_pcap


def piece_name(i: int) -> str:
    return f"ring_{i + 1:05d}_20260101120000.pcap"


def split(src: Path, pieces: int) -> list[formats.Chunk]:
    """The capture's records as `pieces` chunks of about equal size (one per ring file)."""
    whole = [c for c in formats.read_chunks(src, formats.ReadStats(str(src)))]
    chunk = whole[0] if len(whole) == 1 else None
    assert chunk is not None, "tests split captures of one chunk"
    n = len(chunk)
    bounds = [round(i * n / pieces) for i in range(pieces + 1)]
    import numpy as np
    return [chunk.take(np.arange(a, b)) for a, b in zip(bounds, bounds[1:]) if b > a]


def write_piece(directory: Path, i: int, chunk: formats.Chunk) -> Path:
    """Write piece i atomically (a ring tool's file appears whole here: the tests of partial
    records are in test_ringdir.py)."""
    path = directory / piece_name(i)
    tmp = directory / f".{path.name}.tmp"
    with open(tmp, "wb") as fh:
        write_pcap(iter([chunk]), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def write_ring(src: Path, directory: Path, pieces: int) -> list[tuple[Path, int]]:
    """All pieces at once; (path, frames before it in the whole capture) per piece."""
    directory.mkdir(parents=True, exist_ok=True)
    out, before = [], 0
    for i, chunk in enumerate(split(src, pieces)):
        out.append((write_piece(directory, i, chunk), before))
        before += len(chunk)
    return out
