"""The template store's compiled replay counting (capture/replay.py): counts kept on templates
by id, applied when the store flushes; dropped templates never matched again; ids reused and
the index made again as it fills. The engine-equivalence tests hold the engine with it to the
reference decoder on real captures; these go through the store's own paths one by one."""
from __future__ import annotations

import numpy as np

from plantguard.capture.aggregate import ObservationAggregator
from plantguard.capture.flows import FlowTable
from plantguard.capture.replay import TemplateStore, count_routine
from plantguard.model import Observation


def _store(limit=1000):
    agg = ObservationAggregator()
    table = FlowTable(100)
    return TemplateStore(agg, table, limit=limit), agg, table


def _ready(store, agg, key, op="read"):
    """A template for key, taught twice the same output: READY."""
    t = store.make(key)
    o = agg.add(Observation(kind="operation", proto="modbus", capture="c", src="10.0.0.1", dst="10.0.0.2",
                            frame=1, ts=1.0, data={"category": op, "key": key[1]}), pos=0)
    t.learn([o], {op: 1}, False)
    t.learn([o], {op: 1}, False)
    assert t.ready and store.ready[t.tid]
    return t, o


def _count(store, rows, defer=None):
    slot = np.array([r[0] for r in rows], np.int64)
    rkey = np.array([r[1] for r in rows], np.uint64)
    n = len(rows)
    pos = np.arange(10, 10 + n, dtype=np.int64)
    tid, done = np.empty(n, np.int64), np.empty(n, bool)
    k = count_routine(slot, rkey, np.zeros(n, bool) if defer is None else np.array(defer), pos + 1, pos / 10.0, pos,
                      store.index, store.tslot, store.tkey, store.ready, store.count, store.lframe, store.lts,
                      store.lpos, tid, done)
    return k, tid, done


def test_ready_rows_are_counted_and_applied_at_flush_the_latest_row_winning():
    store, agg, table = _store()
    t, o = _ready(store, agg, (3, 77))
    store.make((3, 78))                                      # learning: not replayed
    k, tid, done = _count(store, [(3, 77), (3, 78), (3, 77), (4, 77), (3, 77)], defer=[0, 0, 0, 0, 1])
    assert k == 2 and done.tolist() == [True, False, True, False, False]
    assert tid[0] == tid[2] == tid[4] == t.tid and tid[3] == -1 and tid[1] >= 0
    assert o.count == 1 and not table.ops                    # nothing applied before the flush
    store.flush()
    assert o.count == 3 and o.last_frame == 13 and table.ops == {3: {"read": 2}}
    store.flush()                                            # applied once
    assert o.count == 3 and table.ops == {3: {"read": 2}}


def test_drop_flow_applies_its_counts_then_its_templates_match_nothing():
    store, agg, table = _store()
    t, o = _ready(store, agg, (5, 1))
    _count(store, [(5, 1)] * 4)
    store.drop_flow(5)
    assert o.count == 5 and table.ops == {5: {"read": 4}} and t.never and not t.ready
    assert store.get((5, 1)) is None and len(store) == 0
    k, tid, _done = _count(store, [(5, 1)])
    assert k == 0 and tid.tolist() == [-1]
    # the same key again gets a new template (the dropped id reused), learning from scratch
    t2 = store.make((5, 1))
    assert t2.tid == t.tid and not t2.ready and store.get((5, 1)) is t2


def test_ids_reused_and_index_remade_as_it_fills():
    store, agg, _table = _store(limit=100_000)
    made = {}
    for round_ in range(6):                                  # make and drop over and over
        for sl in range(round_ * 300, round_ * 300 + 300):
            for rk in range(4):
                made[(sl, rk)] = store.make((sl, rk))
        for sl in range(round_ * 300, round_ * 300 + 150):
            store.drop_flow(sl)
            for rk in range(4):
                del made[(sl, rk)]
    assert len(store) == len(made) == 6 * 150 * 4
    assert len(store.templates) < 6 * 300 * 4, "dropped ids were reused"
    assert store.entries * 2 <= len(store.index)
    for key, t in made.items():
        assert store.get(key) is t
    assert store.get((0, 0)) is None


def test_a_full_store_makes_no_template():
    store, _agg, _table = _store(limit=3)
    assert all(store.make((1, k)) is not None for k in range(3))
    assert store.make((1, 3)) is None and len(store) == 3
