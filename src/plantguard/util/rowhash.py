"""Compiled row kernels for the routine recognisers: the same 64-bit mixing as util.arrays
(hash_keys, bytes_hash, span_hash), one packet row at a time, so that a recogniser written as a
loop over rows gives exactly the keys its array form gave.

A recogniser's row loop is written once, as plain Python over numpy scalars, and compiled with
`kernel()` (numba, cached on disk); without numba the same loop runs interpreted (slow, same
result). Inside such a loop, `mix`, `seed` and `kept_hash` stand for hash_keys and bytes_hash."""
from __future__ import annotations

import numpy as np

SEED = 0x243F6A8885A308D3
_M1, _M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9

try:  # pragma: no cover - depends on the environment
    import numba

    def kernel(fn):
        return numba.njit(cache=True)(fn)

    def _inline(fn):
        return numba.njit(cache=True, inline="always")(fn)
except Exception:  # noqa: BLE001 - numba missing or unusable: the interpreted loop gives the same keys
    def kernel(fn):
        return fn

    def _inline(fn):
        return fn


@_inline
def seed():
    """hash_keys' starting value."""
    return np.uint64(SEED)


@_inline
def mix(h, x):
    """One column folded into a row hash, as util.arrays._mix does (x any integer >= 0)."""
    h = (np.uint64(h) ^ np.uint64(x)) * np.uint64(_M1)
    h ^= h >> np.uint64(29)
    h *= np.uint64(_M2)
    h ^= h >> np.uint64(31)
    return h


@_inline
def at(buf, o, w, j):
    """Byte j of the w-byte row starting at buf[o], clamped to the row's last byte (as
    util.arrays.bytes_at clamps) and to the buffer (as columns.gather clamps). A row kernel
    reads a payload matrix p as (p.ravel(), i * w, w) and a capture buffer as (buf, pay_off, w):
    the same bytes, without gathering the matrix."""
    k = o + (j if j < w else w - 1)
    if k >= buf.shape[0]:
        k = buf.shape[0] - 1
    return np.int64(buf[max(k, 0)])


@_inline
def kept_hash(buf, o, w, base, width, start, end):
    """bytes_hash of the `width`-byte window of a row (see at) from column `base` (clamped as
    bytes_at clamps), keeping the window's bytes in [start, end) (window positions): the value
    bytes_hash(bytes_at(p, base, width), keep) has for that row."""
    h = np.uint64(SEED)
    for j0 in range(0, width, 8):
        x = np.uint64(0)
        for b in range(8):
            j = j0 + b
            if j < width and j >= start and j < end:
                x |= np.uint64(at(buf, o, w, base + j)) << np.uint64(8 * b)
        h = mix(h, x)
    return h


@_inline
def span_hash_row(buf, o, w, start, end, split):
    """util.arrays.span_hash for a row (see at; split = min(SPAN_SPLIT, w))."""
    head = kept_hash(buf, o, w, 0, split, start, end)
    tail = np.uint64(0)
    if end > split:
        tail = kept_hash(buf, o, w, split, w - split, start - split, end - split)
    return mix(mix(np.uint64(SEED), head), tail)


def on_matrix(rows_fn, p, plen, from_client, l4, sport, dport):
    """A row recogniser on a payload matrix (the Routine signature): its rows read in place."""
    n, w = p.shape
    flat = np.ascontiguousarray(p).reshape(-1)
    return rows_fn(flat, np.arange(n, dtype=np.int64) * w, w, plen, from_client, l4, sport, dport)


def recogniser(rows_fn):
    """The Routine function of a row recogniser: fn(p, ...) over a matrix, with fn.rows the
    same recogniser over a buffer (rows_fn(buf, base, width, plen, from_client, l4, sport, dport))."""
    def fn(p, plen, from_client, l4, sport, dport):
        return on_matrix(rows_fn, p, plen, from_client, l4, sport, dport)
    fn.rows = rows_fn
    fn.__name__, fn.__qualname__, fn.__doc__, fn.__module__ = (rows_fn.__name__, rows_fn.__qualname__,
                                                              rows_fn.__doc__, rows_fn.__module__)
    return fn
