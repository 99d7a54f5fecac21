"""The columnar flow table: bidirectional 5-tuple + VLAN conversations kept in arrays (one row
per flow), updated a chunk at a time from the decoded columns, never packet by packet.

A flow's identity is (IP protocol, IP version, outer VLAN, endpoint A, endpoint B) with the
endpoints in a canonical order. The keys are made from the columns as arrays; each row is then
matched to its table row, and the counters updated, by compiled loops (flowkernels.py) through
an open-addressing index on a 64-bit hash of the key, the full key compared. Orientation
(client/server) follows deep.orient on the flow's first packet.

The table is capped: when it holds more than max_flows, the least recently seen flows are
folded into aggregate "other" flows (per client /24 or /64, server and port) and counted."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plantguard.capture import flowkernels
from plantguard.capture.columns import ip_text, mac_text
from plantguard.capture.layers import L4_NAMES, TUNNEL_KEYS
from plantguard.model import Flow
from plantguard.util.arrays import hash_keys

NONE_SEQ = np.iinfo(np.int64).max


@dataclass
class Groups:
    """Rows of a chunk grouped by flow: order sorts rows by group (stable, so frame order
    holds inside a group); starts/ends index into order; first/last are row indices."""
    order: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    gid: np.ndarray      # group of each row (in row order)
    first: np.ndarray
    last: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)


def group_rows(h: np.ndarray, keys: tuple[np.ndarray, ...]) -> Groups:
    """Group rows by hash; if two different keys share a hash inside the chunk (astronomically
    rare) fall back to exact grouping on the full key."""
    order = np.argsort(h, kind="stable")
    hs = h[order]
    brk = np.empty(len(hs), bool)
    if len(hs):
        brk[0] = True
        np.not_equal(hs[1:], hs[:-1], out=brk[1:])
    gid_sorted = np.cumsum(brk) - 1
    starts = np.flatnonzero(brk)
    rep = order[starts]
    for k in keys:
        if not np.array_equal(k[order], k[rep][gid_sorted]):
            return _exact_groups(keys)
    return _finish_groups(order, starts, gid_sorted)


def _exact_groups(keys) -> Groups:
    mat = np.ascontiguousarray(np.stack([k.astype(np.uint64) for k in keys], axis=1))
    void = mat.view(np.dtype((np.void, mat.shape[1] * 8))).ravel()
    _u, inv = np.unique(void, return_inverse=True)
    order = np.argsort(inv.ravel(), kind="stable")
    s = inv.ravel()[order]
    brk = np.r_[True, s[1:] != s[:-1]] if len(s) else np.zeros(0, bool)
    return _finish_groups(order, np.flatnonzero(brk), np.cumsum(brk) - 1)


def _finish_groups(order, starts, gid_sorted) -> Groups:
    n = len(order)
    ends = np.r_[starts[1:], n]
    gid = np.empty(n, np.int64)
    gid[order] = gid_sorted
    return Groups(order, starts, ends, gid, order[starts], order[ends - 1], ends - starts)


class FlowTable:
    FIELDS = {
        "h": np.uint64, "k0": np.uint64, "k1": np.uint64, "k2": np.uint64, "k3": np.uint64,
        "k4": np.uint64, "client_is_a": bool, "cmac": np.int64, "smac": np.int64,
        "packets": np.int64, "bytes": np.int64, "pts": np.int64, "bts": np.int64,
        "first": np.float64, "last": np.float64, "last_seq": np.int64, "cap_idx": np.int32,
        "first_frame": np.int64, "module": np.int16, "tries": np.int16, "cls_seq": np.int64,
        "active": bool, "next_c": np.int64, "next_s": np.int64, "tunnel": np.int8,
    }

    def __init__(self, max_flows: int = 1_000_000, known_tcp=None, known_udp=None):
        self.max_flows = max_flows
        self.size = 0                        # rows ever allocated (high-water mark)
        self.capacity = 0
        self.cols: dict[str, np.ndarray] = {}
        self.index = np.zeros(0, np.int64)   # key hash -> row + 1 (0: empty), at most half full
        self.free = np.zeros(0, np.int64)    # rows of evicted flows, reused last-freed first
        self.nfree = 0
        self._grow(1024)
        self.n_active = 0
        self.ops: dict[int, dict[str, int]] = {}
        self.other: dict[tuple, Flow] = {}   # aggregated evicted flows
        self.evicted = 0
        self.known_tcp = known_tcp if known_tcp is not None else np.zeros(65536, bool)
        self.known_udp = known_udp if known_udp is not None else np.zeros(65536, bool)
        self.on_evict = None                 # callback(rows) so the engine drops per-flow state

    # ---- storage ----
    def _grow(self, need: int) -> None:
        cap = max(need, self.capacity * 2)
        for name, dt in self.FIELDS.items():
            a = np.zeros(cap, dt)
            if name in self.cols:
                # rows past size were never used: left untouched, so not resident
                a[:self.size] = self.cols[name][:self.size]
            self.cols[name] = a
            setattr(self, name, a)
        self.capacity = cap
        self._reindex()

    def _reindex(self) -> None:
        """The index made again for the active rows, twice the table's capacity (a power of 2)."""
        size = 1 << max(4, (2 * self.capacity - 1).bit_length())
        self.index = np.zeros(size, np.int64)
        flowkernels.rebuild(self.index, self.h, self.active, self.size)

    # ---- per chunk ----
    def assign(self, c, seq: np.ndarray, ts: np.ndarray, wirelen: np.ndarray, cap_idx: int,
               frames: np.ndarray):
        """Match the rows of decoded L4 columns `c` (already subset to TCP/UDP rows) to flows,
        creating new ones (oriented as deep.orient does); update counters. Returns (row -> flow
        slot, from_client), by row. The loop is compiled (flowkernels.assign)."""
        n = len(c)
        slot = np.empty(n, np.int64)
        from_client = np.empty(n, bool)
        done = 0
        while True:
            n_new, self.nfree, self.size, done = flowkernels.assign(
                c.src_hi, c.src_lo, c.dst_hi, c.dst_lo, c.sport, c.dport, c.l4, c.ip_version, c.vlan, c.tcp_flags,
                c.src_mac, c.dst_mac, c.tunnel, wirelen, ts, seq, frames, cap_idx, self.known_tcp, self.known_udp,
                self.index, self.free, self.nfree, self.size,
                self.h, self.k0, self.k1, self.k2, self.k3, self.k4, self.client_is_a, self.cmac, self.smac,
                self.packets, self.bytes, self.pts, self.bts, self.first, self.last, self.last_seq, self.cap_idx,
                self.first_frame, self.module, self.tries, self.cls_seq, self.active, self.next_c, self.next_s,
                self.tunnel, NONE_SEQ, slot, from_client, done)
            self.n_active += n_new
            if done == n:
                return slot, from_client
            self._grow(self.size + 1)        # full: twice the room, and on from the row it stopped at

    # ---- operations ----
    def add_ops(self, slot: int, ops: dict[str, int], times: int = 1) -> None:
        d = self.ops.get(slot)
        if d is None:
            d = self.ops[slot] = {}
        for k, v in ops.items():
            d[k] = d.get(k, 0) + v * times

    # ---- cap ----
    def enforce_cap(self, names: list[str], modules: list, captures: list[str]) -> int:
        """Fold the least recently seen flows into aggregates until the table is at 90% of its
        cap. Returns how many flows were evicted."""
        if self.n_active <= self.max_flows:
            return 0
        target = int(self.max_flows * 0.9)
        act = np.flatnonzero(self.active[:self.size])
        k = self.n_active - target
        victims = act[np.argpartition(self.last_seq[act], k - 1)[:k]] if k < len(act) else act
        # first seen first: an aggregate made now takes its capture, first frame and server MAC
        # from its earliest flow, whatever slots the flows had
        victims = victims[np.lexsort((self.first_frame[victims], self.cap_idx[victims]))]
        if self.on_evict is not None:
            self.on_evict(victims)
        self._aggregate(victims, modules, captures)
        for row in victims.tolist():
            self.ops.pop(row, None)
        self.active[victims] = False
        if self.nfree + len(victims) > len(self.free):
            self.free = np.concatenate([self.free[:self.nfree], np.zeros(max(len(victims), self.nfree), np.int64)])
        self.free[self.nfree:self.nfree + len(victims)] = victims
        self.nfree += len(victims)
        self._reindex()
        self.n_active -= len(victims)
        self.evicted += len(victims)
        return len(victims)

    def _aggregate(self, v: np.ndarray, modules: list, captures: list[str]) -> None:
        """Add evicted flows to aggregates keyed by (protocol, VLAN, client /24 or /64, server,
        server port, app), summing their counters with array operations."""
        cia = self.client_is_a[v]
        k0 = self.k0[v]
        ver = (k0 >> np.uint64(8)) & np.uint64(0xF)
        c_hi = np.where(cia, self.k1[v], self.k3[v])
        c_lo = np.where(cia, self.k2[v], self.k4[v])
        s_hi = np.where(cia, self.k3[v], self.k1[v])
        s_lo = np.where(cia, self.k4[v], self.k2[v])
        sport = np.where(cia, k0 >> np.uint64(48), (k0 >> np.uint64(32)) & np.uint64(0xFFFF))
        v4 = ver == 4
        n_hi = np.where(v4, np.uint64(0), c_hi)
        n_lo = np.where(v4, c_lo & np.uint64(0xFFFFFF00), np.uint64(0))
        head = (k0 & np.uint64(0x1FFFFFF)) | (sport << np.uint64(32))
        keys = (head, n_hi, n_lo, s_hi, s_lo, (self.module[v].astype(np.int64) + 1).astype(np.uint64))  # app index + 1
        g = group_rows(hash_keys(keys), keys)
        o = g.order
        st = g.starts
        sums = {name: np.add.reduceat(self.cols[name][v][o], st)
                for name in ("packets", "bytes", "pts", "bts")}
        first = np.minimum.reduceat(self.first[v][o], st)
        last = np.maximum.reduceat(self.last[v][o], st)
        rep = g.first
        key_lists = [k[rep].tolist() for k in keys]
        smacs = self.smac[v][rep].tolist()
        caps = self.cap_idx[v][rep].tolist()
        ffs = self.first_frame[v][rep].tolist()
        vals = [sums[n].tolist() for n in ("packets", "bytes", "pts", "bts")] + [first.tolist(), last.tolist()]
        bucket_of_group = []
        limit = max(1000, self.max_flows // 10)
        for gi in range(len(g)):
            head_v, nh, nl, sh, sl, mod = (kl[gi] for kl in key_lists)
            key = (head_v, nh, nl, sh, sl, mod)
            f = self.other.get(key)
            if f is None and len(self.other) >= limit:
                key = (head_v & 0xFFFFFFFFFFFF, 0, 0, 0, 0, mod)      # one per service port
                f = self.other.get(key)
            if f is None:
                f = self._new_aggregate(key, head_v, nh, nl, sh, sl, mod, smacs[gi], modules,
                                        captures[caps[gi]], ffs[gi], vals[4][gi])
                self.other[key] = f
            f.packets += vals[0][gi]
            f.bytes += vals[1][gi]
            f.packets_to_server += vals[2][gi]
            f.bytes_to_server += vals[3][gi]
            f.first = min(f.first, vals[4][gi])
            f.last = max(f.last, vals[5][gi])
            bucket_of_group.append(f)
        tun = self.tunnel[v]
        for i in np.flatnonzero(tun).tolist():          # an aggregate keeps the first mark folded in
            b = bucket_of_group[g.gid[i]]
            if b.tunnel is None:
                b.tunnel = TUNNEL_KEYS[int(tun[i])]
        if self.ops:
            gid = g.gid.tolist()
            for i, row in enumerate(v.tolist()):
                d = self.ops.get(row)
                if d:
                    b = bucket_of_group[gid[i]]
                    for cat, cnt in d.items():
                        b.operations[cat] = b.operations.get(cat, 0) + cnt

    @staticmethod
    def _new_aggregate(key, head, nh, nl, sh, sl, mod, smac, modules, capture, first_frame, first) -> Flow:
        l4 = head & 0xFF
        ver = (head >> 8) & 0xF
        vlan = ((head >> 12) & 0x1FFF) - 1
        port = (head >> 32) & 0xFFFF
        coarse = key[1:5] == (0, 0, 0, 0) and (nh, nl, sh, sl) != (0, 0, 0, 0)
        if coarse:
            client = server = "0.0.0.0/0" if ver == 4 else "::/0"
        else:
            client = ip_text(ver, nh, nl) + ("/24" if ver == 4 else "/64")
            server = ip_text(ver, sh, sl)
        return Flow(L4_NAMES.get(int(l4), str(l4)), client, server, 0, port, None if vlan < 0 else vlan,
                    None, None if coarse else mac_text(smac), modules[mod - 1].SPEC.name if mod > 0 else None,
                    0, 0, 0, 0, first, first, capture, first_frame, {})

    # ---- output ----
    def _build(self, rows: np.ndarray, modules: list, captures: list[str]) -> list[Flow]:
        out = []
        k0 = self.k0[rows]
        l4s = (k0 & np.uint64(0xFF)).tolist()
        vers = ((k0 >> np.uint64(8)) & np.uint64(0xF)).tolist()
        vlans = ((k0 >> np.uint64(12)) & np.uint64(0x1FFF)).astype(np.int64).tolist()
        aps = ((k0 >> np.uint64(32)) & np.uint64(0xFFFF)).tolist()
        bps = (k0 >> np.uint64(48)).tolist()
        cols = [self.cols[n][rows].tolist() for n in (
            "k1", "k2", "k3", "k4", "client_is_a", "cmac", "smac", "packets", "bytes", "pts", "bts",
            "first", "last", "cap_idx", "first_frame", "module", "tunnel")]
        for i, row in enumerate(rows.tolist()):
            (ahi, alo, bhi, blo, cia, cmac, smac, pk, by, pts, bts, first, last, capi, ff, mod, tun) = (
                c[i] for c in cols)
            a = ip_text(vers[i], ahi, alo)
            b = ip_text(vers[i], bhi, blo)
            if cia:
                client, cport, server, sport = a, aps[i], b, bps[i]
            else:
                client, cport, server, sport = b, bps[i], a, aps[i]
            f = Flow(L4_NAMES.get(l4s[i], str(l4s[i])), client, server, cport, sport,
                     None if vlans[i] == 0 else vlans[i] - 1, mac_text(cmac), mac_text(smac),
                     modules[mod].SPEC.name if mod >= 0 else None, pk, by, pts, bts, first, last,
                     captures[capi], ff, dict(self.ops.get(row, {})), TUNNEL_KEYS.get(tun))
            out.append(f)
        return out

    def flows(self, modules: list, captures: list[str]) -> list[Flow]:
        act = np.flatnonzero(self.active[:self.size])
        # first-seen order, as the reference lists them
        act = act[np.lexsort((self.first_frame[act], self.cap_idx[act]))]
        return self._build(act, modules, captures) + list(self.other.values())
