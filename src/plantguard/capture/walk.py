"""Walking the record headers of a classic pcap: each record's position depends on the length
of the one before, so this step cannot be vectorised. It runs compiled (numba) when numba is
installed and as a plain loop otherwise; both give the same answer.

walk_pcap(arr, off, max_records, big_endian, max_record) ->
    (offsets, caplen, wirelen, sec, frac, next_off, status)
status: 0 = more may follow (or clean end), 1 = truncated record header, 2 = corrupt length,
3 = truncated packet data. next_off is where the walk stopped."""
from __future__ import annotations

import struct

import numpy as np

OK, TRUNC_HEADER, CORRUPT_LEN, TRUNC_DATA = 0, 1, 2, 3


def _walk_py(arr, off, max_records, big_endian, max_record):
    size = len(arr)
    data = arr.data if isinstance(arr, np.ndarray) else arr
    unpack = struct.Struct(">IIII" if big_endian else "<IIII").unpack_from
    offs = np.empty(max_records, np.int64)
    caps = np.empty(max_records, np.int32)
    wires = np.empty(max_records, np.int32)
    secs = np.empty(max_records, np.int64)
    fracs = np.empty(max_records, np.int64)
    n = 0
    status = OK
    ol, cl, wl, sl, fl = [], [], [], [], []
    while n < max_records:
        if off + 16 > size:
            if off < size:
                status = TRUNC_HEADER
            break
        sec, frac, incl, orig = unpack(data, off)
        if incl > max_record:
            status = CORRUPT_LEN
            break
        if off + 16 + incl > size:
            status = TRUNC_DATA
            break
        ol.append(off + 16)
        cl.append(incl)
        wl.append(orig)
        sl.append(sec)
        fl.append(frac)
        off += 16 + incl
        n += 1
    if n:
        offs[:n] = ol
        caps[:n] = cl
        wires[:n] = np.minimum(np.asarray(wl, np.int64), 2**31 - 1)
        secs[:n] = sl
        fracs[:n] = fl
    return offs[:n], caps[:n], wires[:n], secs[:n], fracs[:n], off, status


def _u32(arr, i, big):
    if big:
        return (np.int64(arr[i]) << 24) | (np.int64(arr[i + 1]) << 16) | (np.int64(arr[i + 2]) << 8) | np.int64(arr[i + 3])
    return (np.int64(arr[i + 3]) << 24) | (np.int64(arr[i + 2]) << 16) | (np.int64(arr[i + 1]) << 8) | np.int64(arr[i])


def _walk_nb(arr, off, max_records, big_endian, max_record):
    size = arr.shape[0]
    offs = np.empty(max_records, np.int64)
    caps = np.empty(max_records, np.int32)
    wires = np.empty(max_records, np.int32)
    secs = np.empty(max_records, np.int64)
    fracs = np.empty(max_records, np.int64)
    n = 0
    status = 0
    while n < max_records:
        if off + 16 > size:
            if off < size:
                status = 1
            break
        incl = _u32j(arr, off + 8, big_endian)
        if incl > max_record:
            status = 2
            break
        if off + 16 + incl > size:
            status = 3
            break
        orig = _u32j(arr, off + 12, big_endian)
        offs[n] = off + 16
        caps[n] = incl
        wires[n] = min(orig, 2147483647)
        secs[n] = _u32j(arr, off, big_endian)
        fracs[n] = _u32j(arr, off + 4, big_endian)
        off += 16 + incl
        n += 1
    return offs[:n], caps[:n], wires[:n], secs[:n], fracs[:n], off, status


def _gather_nb(arr, base, width):
    n = base.shape[0]
    size = arr.shape[0]
    out = np.empty((n, width), np.uint8)
    for i in range(n):
        b = base[i]
        for k in range(width):
            j = b + k
            if j >= size:
                j = size - 1
            if j < 0:
                j = 0
            out[i, k] = arr[j]
    return out


try:  # pragma: no cover - depends on the environment
    import numba

    _u32j = numba.njit(cache=True, inline="always")(_u32)
    _walk_compiled = numba.njit(cache=True)(_walk_nb)
    gather_compiled = numba.njit(cache=True)(_gather_nb)
    COMPILED = True
except Exception:  # numba missing or unusable: the plain loop does the same job
    _walk_compiled = None
    gather_compiled = None
    COMPILED = False


def walk_pcap(arr, off: int, max_records: int, big_endian: bool, max_record: int):
    if _walk_compiled is not None and isinstance(arr, np.ndarray):
        return _walk_compiled(arr, off, max_records, big_endian, max_record)
    return _walk_py(arr, off, max_records, big_endian, max_record)
