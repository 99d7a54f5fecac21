"""The compiled row kernels hash as the array helpers do: a recogniser written as a loop over
rows (util.rowhash) gives the keys its array form (util.arrays) would."""
from __future__ import annotations

import numpy as np
import pytest

from plantguard.util import arrays, rowhash


@pytest.mark.parametrize("width", [5, 16, 24, 128, 300, 700])
def test_kept_hash_is_bytes_hash_of_the_window(width):
    rng = np.random.default_rng(width)
    p = rng.integers(0, 256, (40, width), dtype=np.uint8)
    for base, span in ((0, width), (3, 16), (width - 2, 16)):   # the last one reads past the end: clamped
        start = rng.integers(0, span, len(p))
        end = start + rng.integers(0, span, len(p))
        win = arrays.bytes_at(p, np.full(len(p), base), span)
        pos = np.arange(span)[None, :]
        want = arrays.bytes_hash(win, (pos >= start[:, None]) & (pos < end[:, None]))
        got = [rowhash.kept_hash(p, i, base, span, int(start[i]), int(end[i])) for i in range(len(p))]
        assert [int(x) for x in got] == want.tolist()


@pytest.mark.parametrize("width", [64, 256, 512, 1536])
def test_span_hash_row_is_span_hash(width):
    rng = np.random.default_rng(width)
    p = rng.integers(0, 256, (60, width), dtype=np.uint8)
    start = rng.integers(0, width, len(p))
    end = np.minimum(start + rng.integers(0, 600, len(p)), width)
    end[::7] = 0                                   # empty spans hash as empty
    want = arrays.span_hash(p, start, end)
    split = min(arrays.SPAN_SPLIT, width)
    got = [int(rowhash.span_hash_row(p, i, int(start[i]), int(end[i]), split)) for i in range(len(p))]
    assert got == want.tolist()


def test_mix_chain_is_hash_keys():
    rng = np.random.default_rng(7)
    cols = tuple(rng.integers(0, 2**63, 30, dtype=np.int64).astype(np.uint64) for _ in range(4))
    want = arrays.hash_keys(cols)
    for i in range(30):
        h = np.uint64(rowhash.seed())    # called from Python, the kernels return Python ints
        for c in cols:
            h = np.uint64(rowhash.mix(h, c[i]))
        assert int(h) == int(want[i])
