"""The compiled flow-table and stream-tracking loops (capture/flowkernels.py) against plain
restatements: a dict of keys for the flow table, a per-segment walk for the stream marks.
The engine-equivalence tests hold the whole engine to the reference decoder on real captures;
these go where real captures rarely do (probe chains, evictions, wrapping sequence numbers)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from plantguard.capture import flowkernels
from plantguard.capture.deep import orient
from plantguard.capture.flows import FlowTable
from plantguard.protocols import registry
from plantguard.protocols._pdustream import REORDER_WINDOW, RETRANSMIT_WINDOW


class _Cols(SimpleNamespace):
    def __len__(self):
        return len(self.l4)


def _columns(rng, n, hosts=6, ports=(502, 102, 44818, 40000, 40001, 53), few=False):
    """n TCP/UDP/ICMP rows between a few hosts and ports, many repeating each other (few: TCP
    over IPv4 only, at most 10 flows)."""
    src = rng.integers(1, hosts + 1, n).astype(np.uint64)
    dst = rng.integers(1, hosts + 1, n).astype(np.uint64)
    l4 = rng.choice(np.array([6] if few else [6, 6, 6, 17, 1], np.int8), n)
    sport = rng.choice(np.array(ports, np.int32), n)
    dport = rng.choice(np.array(ports, np.int32), n)
    sport = np.where(l4 == 1, rng.choice(np.array([0, 8], np.int32), n), sport).astype(np.int32)
    flags = rng.choice(np.array([0x10, 0x02, 0x12, 0x18], np.int32), n)
    ver = rng.choice(np.array([4] if few else [4, 6], np.int8), n)
    hi = np.where(ver == 6, np.uint64(0x20010DB8) << np.uint64(32), np.uint64(0)).astype(np.uint64)
    return _Cols(
        src_hi=hi, src_lo=src, dst_hi=hi.copy(), dst_lo=dst, sport=sport, dport=dport, l4=l4, ip_version=ver,
        vlan=rng.choice(np.array([-1] if few else [-1, 10], np.int32), n), tcp_flags=flags,
        src_mac=(src * np.uint64(7)).astype(np.int64), dst_mac=(dst * np.uint64(7)).astype(np.int64),
        tunnel=rng.choice(np.array([0, 0, 0, 2], np.int8), n))


def _key(c, r):
    a = (int(c.src_hi[r]), int(c.src_lo[r]), int(c.sport[r]))
    b = (int(c.dst_hi[r]), int(c.dst_lo[r]), int(c.dport[r]))
    lo, hi = (a, b) if a <= b else (b, a)
    return (int(c.l4[r]), int(c.ip_version[r]), int(c.vlan[r]), lo, hi)


def _table(small_index: bool) -> FlowTable:
    """A table with the registry's server ports, as the engine makes it."""
    tcp, udp, _eth, _any = registry.port_tables()
    known_tcp, known_udp = np.zeros(65536, bool), np.zeros(65536, bool)
    known_tcp[[p for p in tcp if 0 <= p < 65536]] = True
    known_udp[[p for p in udp if 0 <= p < 65536]] = True
    t = FlowTable(10_000, known_tcp, known_udp)
    if small_index:   # a 32-entry index for at most 10 flows: keys probe past others
        t._reindex = lambda: _small_reindex(t)
        t._reindex()
    return t


def _small_reindex(t: FlowTable) -> None:
    t.index = np.zeros(32, np.int64)
    flowkernels.rebuild(t.index, t.h, t.active, t.size)


@pytest.mark.parametrize("small_index", [False, True])
def test_assign_equals_a_dict_of_keys(small_index):
    rng = np.random.default_rng(7)
    t = _table(small_index)
    seen: dict[tuple, int] = {}
    want: dict[tuple, dict] = {}
    pos = 0
    hosts = 2 if small_index else 6     # 4 endpoints, 10 flows at most
    ports = (502, 40000) if small_index else (502, 102, 44818, 40000, 40001, 53)
    for _chunk in range(4):
        n = 300
        c = _columns(rng, n, hosts, ports, few=small_index)
        seq = np.arange(pos, pos + n, dtype=np.int64)
        ts = seq.astype(np.float64) / 10
        wl = rng.integers(60, 1500, n).astype(np.int32)
        frames = seq + 1
        slot, fc = t.assign(c, seq, ts, wl, 0, frames)
        for r in range(n):
            k = _key(c, r)
            s = seen.setdefault(k, int(slot[r]))
            assert s == slot[r], "one key, one slot"
            if k not in want:
                src, sport = (int(c.src_lo[r]), int(c.sport[r]))
                if c.l4[r] in (6, 17):   # the reference's orientation of a first packet
                    lay = SimpleNamespace(l4="tcp" if c.l4[r] == 6 else "udp", tcp_flags=int(c.tcp_flags[r]),
                                          src=src, sport=sport, dst=int(c.dst_lo[r]), dport=int(c.dport[r]))
                    client = orient(lay)
                else:                    # ICMP: the requester is on "port" 0
                    client = (src, sport) if sport == 0 else (int(c.dst_lo[r]), int(c.dport[r]))
                want[k] = {"packets": 0, "bytes": 0, "pts": 0, "client": client, "first_frame": int(frames[r]),
                           "tunnel": 0}
            w = want[k]
            self_flow = c.src_lo[r] == c.dst_lo[r] and c.sport[r] == c.dport[r]
            to_server = self_flow or (int(c.src_lo[r]), int(c.sport[r])) == w["client"]
            assert bool(fc[r]) == to_server
            w["packets"] += 1
            w["bytes"] += int(wl[r])
            w["pts"] += int(to_server)
            w["last_seq"] = int(seq[r])
            if not w["tunnel"]:
                w["tunnel"] = int(c.tunnel[r])
        pos += n
    assert len(set(seen.values())) == len(seen), "different keys, different slots"
    for k, s in seen.items():
        w = want[k]
        assert (t.packets[s], t.bytes[s], t.pts[s], t.last_seq[s], t.first_frame[s], t.tunnel[s]) == (
            w["packets"], w["bytes"], w["pts"], w["last_seq"], w["first_frame"], w["tunnel"]), k
    assert t.n_active == len(seen)


def test_evicted_slots_are_reused_and_survivors_still_found():
    rng = np.random.default_rng(3)
    t = _table(False)
    t.max_flows = 20
    c = _columns(rng, 400, hosts=12)
    n = len(c)
    seq = np.arange(n, dtype=np.int64)
    slot, _fc = t.assign(c, seq, seq / 10.0, np.full(n, 60, np.int32), 0, seq + 1)
    keys = {_key(c, r): int(slot[r]) for r in range(n)}
    assert len(keys) > 30
    evicted = t.enforce_cap([None], [], ["cap"])
    assert evicted == len(keys) - 18 and t.n_active == 18
    alive = {k: s for k, s in keys.items() if t.active[s]}
    gone = {k: s for k, s in keys.items() if not t.active[s]}
    assert len(alive) == 18
    # the same records again: survivors keep their slots, evicted keys come back in freed slots
    slot2, _ = t.assign(c, seq + n, seq / 10.0 + 100, np.full(n, 60, np.int32), 0, seq + n + 1)
    again = {_key(c, r): int(slot2[r]) for r in range(n)}
    assert all(again[k] == s for k, s in alive.items())
    reused = {again[k] for k in gone}
    assert reused == set(gone.values()), "every freed slot reused, no new row while some were free"
    assert len(set(again.values())) == len(again)


def _s32(x: int) -> int:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _track_model(segs, next_c, next_s, holey):
    """The stream marks, a segment at a time: None where nothing came before in the direction."""
    state: dict[int, list] = {}
    out, new_holey = [], set()
    for sl, fc, seq, plen, l4 in segs:
        if l4 != 6:
            out.append((0, False, False))
            continue
        d = sl * 2 + fc
        if d not in state:
            carry = (next_c if fc else next_s)[sl]
            state[d] = [seq, _s32(carry - seq) if carry >= 0 else None, d in holey]
        base, run, hole = state[d]
        rel = _s32(seq - base)
        behind, jumped = 0, False
        if run is not None:
            dd = (run - rel) & 0xFFFFFFFF
            behind = dd if 0 < dd <= RETRANSMIT_WINDOW else 0
            if 0 < rel - run <= REORDER_WINDOW:
                jumped = hole = True
                new_holey.add(d)
        state[d][1] = rel + plen if run is None else max(run, rel + plen)
        state[d][2] = hole
        out.append((behind, hole, jumped))
    for d, (base, run, _h) in state.items():
        (next_c if d & 1 else next_s)[d >> 1] = (run + base) & 0xFFFFFFFF
    return out, new_holey


def test_track_equals_a_per_segment_walk():
    rng = np.random.default_rng(11)
    for _trial in range(300):
        nslots = int(rng.integers(1, 5))
        next_c = np.where(rng.random(nslots) < 0.5, rng.integers(0, 2**32, nslots), -1).astype(np.int64)
        next_s = np.where(rng.random(nslots) < 0.5, rng.integers(0, 2**32, nslots), -1).astype(np.int64)
        holey = {int(x) for x in rng.integers(0, 2 * nslots, int(rng.integers(0, 3)))}
        n = int(rng.integers(1, 50))
        slot = rng.integers(0, nslots, n).astype(np.int64)
        fc = rng.random(n) < 0.5
        l4 = np.where(rng.random(n) < 0.9, 6, 17).astype(np.int8)
        plen = rng.integers(0, 300, n).astype(np.int32)
        seq = np.zeros(n, np.int64)
        cur: dict = {}
        for i in range(n):   # in order, repeats, jumps ahead, and random numbers (wraps included)
            d = (int(slot[i]), bool(fc[i]))
            start = (next_c if fc[i] else next_s)[slot[i]]
            c0 = cur.get(d, int(start) if start >= 0 else int(rng.integers(0, 2**32)))
            r = rng.random()
            s = c0 if r < 0.6 else c0 - int(rng.integers(0, 2000)) if r < 0.75 else \
                c0 + int(rng.integers(0, 200_000)) if r < 0.9 else int(rng.integers(0, 2**32))
            seq[i] = s % 2**32
            cur[d] = (int(seq[i]) + int(plen[i])) % 2**32
        di = np.sort(rng.choice(n, int(rng.integers(1, n + 1)), replace=False)).astype(np.int64)
        mc, ms = next_c.copy(), next_s.copy()
        want, want_holey = _track_model([(int(slot[r]), int(fc[r]), int(seq[r]), int(plen[r]), int(l4[r]))
                                         for r in di.tolist()], mc, ms, holey)
        m = len(di)
        behind, hole, jumped = np.zeros(m, np.int64), np.zeros(m, bool), np.zeros(m, bool)
        new = np.empty(m, np.int64)
        k = flowkernels.track(di, l4, slot, fc, seq, plen, next_c, next_s, np.array(sorted(holey), np.int64),
                              RETRANSMIT_WINDOW, REORDER_WINDOW, behind, hole, jumped, new)
        assert list(zip(behind.tolist(), hole.tolist(), jumped.tolist())) == want
        assert set(new[:k].tolist()) == want_holey
        assert next_c.tolist() == mc.tolist() and next_s.tolist() == ms.tolist()


def test_track_across_the_wrap():
    """The worked example of docs/engine.md: a repeat just after the sequence numbers wrap."""
    di = np.arange(3, dtype=np.int64)
    next_c, next_s = np.array([4294967200], np.int64), np.array([-1], np.int64)
    behind, hole, jumped, new = np.zeros(3, np.int64), np.zeros(3, bool), np.zeros(3, bool), np.empty(3, np.int64)
    flowkernels.track(di, np.full(3, 6, np.int8), np.zeros(3, np.int64), np.ones(3, bool),
                      np.array([4294967200, 4, 4], np.int64), np.full(3, 100, np.int32), next_c, next_s,
                      np.zeros(0, np.int64), RETRANSMIT_WINDOW, REORDER_WINDOW, behind, hole, jumped, new)
    assert behind.tolist() == [0, 0, 100] and not jumped.any()
    assert next_c.tolist() == [104] and next_s.tolist() == [-1]


def test_a_full_index_raises_instead_of_probing_forever():
    t = _table(False)
    t.index = np.zeros(2, np.int64)   # broken on purpose: the table keeps it half empty
    c = _columns(np.random.default_rng(5), 50)
    seq = np.arange(50, dtype=np.int64)
    with pytest.raises(MemoryError, match="flow index full"):
        t.assign(c, seq, seq / 10.0, np.full(50, 60, np.int32), 0, seq + 1)


def test_a_chunk_with_more_new_flows_than_the_table_holds_grows_it_mid_way():
    """The loop stops at the first flow that finds the table full; assign grows it and goes on
    from that row (the table starts with room for 1,024 flows)."""
    rng = np.random.default_rng(9)
    t = _table(False)
    start = t.capacity
    n = 6000
    c = _columns(rng, n)
    c.src_lo = rng.integers(1, 2500, n).astype(np.uint64)   # about 2,400 sources: ~4,000 flows
    seq = np.arange(n, dtype=np.int64)
    slot, _fc = t.assign(c, seq, seq / 10.0, np.full(n, 60, np.int32), 0, seq + 1)
    keys: dict[tuple, int] = {}
    for r in range(n):
        assert keys.setdefault(_key(c, r), int(slot[r])) == slot[r]
    assert len(keys) > 2 * start and t.capacity >= len(keys) and len(set(keys.values())) == len(keys)
    counts = np.bincount(slot, minlength=t.size)
    assert np.array_equal(t.packets[:t.size], counts) and t.n_active == len(keys) == t.size
