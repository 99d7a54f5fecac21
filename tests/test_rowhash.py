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
        flat = p.reshape(-1)
        got = [rowhash.kept_hash(flat, i * width, width, base, span, int(start[i]), int(end[i])) for i in range(len(p))]
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
    flat = p.reshape(-1)
    got = [int(rowhash.span_hash_row(flat, i * width, width, int(start[i]), int(end[i]), split)) for i in range(len(p))]
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


def _recognisers():
    from plantguard.protocols import registry
    return [(m.SPEC.name, r) for m in registry.protocol_modules() for r in m.SPEC.routine if hasattr(r.fn, "rows")]


def test_row_recognisers_read_the_buffer_as_the_matrix():
    """A row recogniser run on the capture buffer in place (fn.rows, what capture/routine.py
    calls) gives the masks and keys it gives on the gathered matrix (fn, the Routine
    signature), including rows near the buffer's end, where both clamp."""
    from plantguard.capture.columns import gather
    rng = np.random.default_rng(11)
    found = _recognisers()
    assert {name for name, _ in found} >= {"modbus", "s7comm", "enip"}
    for name, r in found:
        # hostile bytes around real-looking headers: random buffer, rows at random offsets
        buf = rng.integers(0, 256, 40_000, dtype=np.uint8)
        buf[::97] = 0
        n = 2000
        base = np.sort(rng.integers(0, len(buf), n))
        base[-5:] = len(buf) - np.arange(1, 6)          # rows running past the buffer
        plen = rng.integers(0, r.width + 40, n)
        fc = rng.random(n) < 0.5
        l4 = np.where(rng.random(n) < 0.9, 6, 17)
        sport = np.where(fc, 40000, rng.choice([502, 102, 44818], n))
        dport = np.where(fc, rng.choice([502, 102, 44818], n), 40000)
        args = (plen, fc, l4, sport, dport)
        ok1, k1 = r.fn(gather(buf, base, r.width), *args)
        ok2, k2 = r.fn.rows(buf, base, r.width, *args)
        assert np.array_equal(ok1, ok2) and np.array_equal(k1[ok1], k2[ok1]), (name, r.fn.__name__)


REAL = ("ICS-Security-Tools/ModbusTCP/ModbusTCP.pcap", "ICS-Security-Tools/s7/s7comm_varservice_libnodavedemo_bench.pcap",
        "ICS-Security-Tools/EthernetIP/EthernetIP-CIP.pcap", "ICS-Security-Tools/CIP/cip_only.pcap",
        "icsnpp-s7comm/s7comm_plus.pcap", "ICS-Security-Tools/s7/S7-1511_db3_var1_HMI.pcap")


def test_row_recognisers_on_real_polls_read_the_buffer_as_the_matrix():
    """The same on real polling captures (and a copy with 1 % of the bytes overwritten): every
    payload row of the capture buffer, as the engine hands them over."""
    import pytest

    from conftest import SHARED_DATA
    from plantguard.capture import columns, formats
    paths = [SHARED_DATA / "pcaps" / r for r in REAL if (SHARED_DATA / "pcaps" / r).exists()]
    if not paths:
        pytest.skip("shared captures not found")
    rng = np.random.default_rng(5)
    accepted = 0
    for path in paths:
        chunk = next(formats.read_chunks(path, formats.ReadStats(str(path)), 65536))
        arr = chunk.arr if chunk.arr is not None else np.frombuffer(chunk.buf, np.uint8)
        cols = columns.decode(arr, chunk.offsets, chunk.caplen, chunk.linktype)
        rows = np.flatnonzero(cols.pay_len > 0)
        hostile = arr.copy()
        hit = rng.random(len(hostile)) < 0.01
        hostile[hit] = rng.integers(0, 256, int(hit.sum()))
        args = (cols.pay_len[rows], cols.sport[rows] > cols.dport[rows], cols.l4[rows], cols.sport[rows], cols.dport[rows])
        for buf in (arr, hostile):
            for name, r in _recognisers():
                ok1, k1 = r.fn(columns.gather(buf, cols.pay_off[rows], r.width), *args)
                ok2, k2 = r.fn.rows(buf, cols.pay_off[rows], r.width, *args)
                assert np.array_equal(ok1, ok2) and np.array_equal(k1[ok1], k2[ok1]), (path.name, r.fn.__name__)
                accepted += int(ok1.sum())
    assert accepted > 5000


def test_a_recogniser_declared_for_one_transport_takes_no_row_of_the_other():
    """Routine.transport is what lets capture/routine.py offer a recogniser only the rows of its
    transport: on the real captures' payload rows of the other transport (as TCP, then as UDP,
    whatever they were), each such recogniser recognises none."""
    import pytest

    from conftest import SHARED_DATA
    from plantguard.capture import columns, formats
    from plantguard.protocols import registry
    paths = [SHARED_DATA / "pcaps" / r for r in REAL if (SHARED_DATA / "pcaps" / r).exists()]
    if not paths:
        pytest.skip("shared captures not found")
    declared = [(m.SPEC.name, r) for m in registry.protocol_modules() for r in m.SPEC.routine if r.transport]
    assert {name for name, _ in declared} >= {"modbus", "s7comm", "enip", "bacnet"}
    for path in paths:
        chunk = next(formats.read_chunks(path, formats.ReadStats(str(path)), 65536))
        arr = chunk.arr if chunk.arr is not None else np.frombuffer(chunk.buf, np.uint8)
        cols = columns.decode(arr, chunk.offsets, chunk.caplen, chunk.linktype)
        rows = np.flatnonzero(cols.pay_len > 0)
        for name, r in declared:
            other = np.full(len(rows), 17 if r.transport == 6 else 6)
            p = columns.gather(arr, cols.pay_off[rows], r.width)
            ok, _key = r.fn(p, cols.pay_len[rows], cols.sport[rows] > cols.dport[rows], other, cols.sport[rows],
                            cols.dport[rows])
            assert not ok.any(), (path.name, name, r.fn.__name__)
