"""Column helpers shared by the capture engine and the protocols' routine recognisers: a 64-bit
row hash over several columns, and readers of big/little-endian fields in a byte matrix (one row
per packet, one column per payload byte)."""
from __future__ import annotations

import numpy as np

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_S29, _S31 = np.uint64(29), np.uint64(31)
SPAN_SPLIT = 256   # bytes hashed for every row; only the rows that need more hash the rest


def _mix(h: np.ndarray, x: np.ndarray) -> np.ndarray:
    h = (h ^ x) * _M1
    h ^= h >> _S29
    h *= _M2
    h ^= h >> _S31
    return h


def hash_keys(cols: tuple[np.ndarray, ...]) -> np.ndarray:
    """One uint64 per row, mixing the rows' values of every column (order matters)."""
    h = np.full(len(cols[0]), 0x243F6A8885A308D3, np.uint64)
    for c in cols:
        h = _mix(h, c)
    return h


def u16(m: np.ndarray, i: int) -> np.ndarray:
    """Big-endian 16-bit field at byte offset i of every row."""
    return (m[:, i].astype(np.int64) << 8) | m[:, i + 1]


def le16(m: np.ndarray, i: int) -> np.ndarray:
    """Little-endian 16-bit field at byte offset i of every row."""
    return m[:, i].astype(np.int64) | (m[:, i + 1].astype(np.int64) << 8)


def bytes_at(m: np.ndarray, off: np.ndarray, width: int) -> np.ndarray:
    """The `width` bytes of every row from its own offset `off` (a field after a variable-length
    part), as a matrix; past the row's end, its last byte (the caller checks the lengths)."""
    idx = np.minimum(np.asarray(off, np.int64)[:, None] + np.arange(width)[None, :], m.shape[1] - 1)
    return np.take_along_axis(m, idx, axis=1)


def col(x) -> np.ndarray:
    """A column as uint64, ready for hash_keys."""
    return np.asarray(x).astype(np.uint64)


def bytes_hash(m: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Hash of each row's bytes where keep is True (others count as zero)."""
    kernel = _compiled_bytes_hash()
    if kernel is not None:
        keep = np.broadcast_to(keep, m.shape)
        return kernel(m, keep, np.empty(len(m), np.uint64))
    z = np.where(keep, m, 0).astype(np.uint8)
    width = -(-z.shape[1] // 8) * 8
    if width != z.shape[1]:
        z = np.pad(z, ((0, 0), (0, width - z.shape[1])))
    words = np.ascontiguousarray(z).view("<u8")
    return hash_keys(tuple(words[:, i] for i in range(words.shape[1])))


def _bytes_hash_nb(m, keep, out):
    """bytes_hash one row at a time, the same value: the kept bytes as little-endian 64-bit words
    (the last one zero-padded), mixed in order from the seed as hash_keys mixes columns."""
    n, w = m.shape
    m1, m2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)
    s29, s31 = np.uint64(29), np.uint64(31)
    for i in range(n):
        h = np.uint64(0x243F6A8885A308D3)
        for j0 in range(0, w, 8):
            x = np.uint64(0)
            for b in range(8):
                j = j0 + b
                if j < w and keep[i, j]:
                    x |= np.uint64(m[i, j]) << np.uint64(8 * b)
            h = (h ^ x) * m1
            h ^= h >> s29
            h *= m2
            h ^= h >> s31
        out[i] = h
    return out


_KERNELS: dict = {}


def _compiled_bytes_hash():
    """The compiled bytes_hash, made on first use (numba is imported only by the capture path
    that needs it; cached on disk after the first run); None without numba: the array path."""
    if "bytes_hash" not in _KERNELS:
        try:
            import numba
            _KERNELS["bytes_hash"] = numba.njit(cache=True)(_bytes_hash_nb)
        except Exception:  # noqa: BLE001 - numba missing or unusable: the array path gives the same
            _KERNELS["bytes_hash"] = None
    return _KERNELS["bytes_hash"]


def span_hash(p: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Hash of each row's bytes in [start, end) (the same for a row whatever the other rows
    of its chunk need: the tail past SPAN_SPLIT is hashed apart, 0 when empty)."""
    split = min(SPAN_SPLIT, p.shape[1])
    pos = np.arange(split)[None, :]
    head = bytes_hash(p[:, :split], (pos >= start[:, None]) & (pos < end[:, None]))
    long = np.flatnonzero(end > split)
    tail = np.zeros(len(p), np.uint64)
    if len(long):
        pos = np.arange(split, p.shape[1])[None, :]
        keep = (pos >= start[long, None]) & (pos < end[long, None])
        tail[long] = bytes_hash(p[long, split:], keep)
    return hash_keys((head, tail))
