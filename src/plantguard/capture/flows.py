"""The columnar flow table: bidirectional 5-tuple + VLAN conversations kept in arrays (one row
per flow), updated a chunk at a time from the decoded columns, never packet by packet.

A flow's identity is (IP protocol, IP version, outer VLAN, endpoint A, endpoint B) with the
endpoints in a canonical order. Packets of a chunk are grouped by a 64-bit hash of that key
(sort + run boundaries), checked against the full key, then matched to table rows through a
dict. Orientation (client/server) follows deep.orient on the flow's first packet.

The table is capped: when it holds more than max_flows, the least recently seen flows are
folded into aggregate "other" flows (per client /24 or /64, server and port) and counted."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plantguard.capture.columns import ip_text, mac_text
from plantguard.capture.layers import L4_NAMES, TUNNEL_KEYS
from plantguard.model import Flow
from plantguard.util.arrays import hash_keys  # noqa: F401 (the engine imports it from here)

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
        self._grow(1024)
        self.index: dict[int, int] = {}      # key hash -> row
        self.exact: dict[tuple, int] = {}    # full key -> row, for the rare hash collision
        self.in_exact: set[int] = set()
        self.free: list[int] = []
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
                a[:self.capacity] = self.cols[name][:self.capacity]
            self.cols[name] = a
            setattr(self, name, a)
        self.capacity = cap

    def _alloc(self, n: int) -> np.ndarray:
        take = min(n, len(self.free))
        rows = [self.free.pop() for _ in range(take)]
        fresh = n - take
        if fresh:
            if self.size + fresh > self.capacity:
                self._grow(self.size + fresh)
            rows.extend(range(self.size, self.size + fresh))
            self.size += fresh
        return np.asarray(rows, np.int64)

    # ---- per chunk ----
    def assign(self, c, seq: np.ndarray, ts: np.ndarray, wirelen: np.ndarray, cap_idx: int,
               frames: np.ndarray):
        """Match the rows of decoded L4 columns `c` (already subset to TCP/UDP rows) to flows,
        creating new ones; update counters. Returns (row -> flow slot, from_client)."""
        a_is_src = ((c.src_hi < c.dst_hi) | ((c.src_hi == c.dst_hi) & (
            (c.src_lo < c.dst_lo) | ((c.src_lo == c.dst_lo) & (c.sport <= c.dport)))))
        a_hi = np.where(a_is_src, c.src_hi, c.dst_hi)
        a_lo = np.where(a_is_src, c.src_lo, c.dst_lo)
        b_hi = np.where(a_is_src, c.dst_hi, c.src_hi)
        b_lo = np.where(a_is_src, c.dst_lo, c.src_lo)
        a_port = np.where(a_is_src, c.sport, c.dport).astype(np.uint64)
        b_port = np.where(a_is_src, c.dport, c.sport).astype(np.uint64)
        k0 = (c.l4.astype(np.uint64) | (c.ip_version.astype(np.uint64) << np.uint64(8))
              | ((c.vlan + 1).astype(np.uint64) << np.uint64(12))
              | (a_port << np.uint64(32)) | (b_port << np.uint64(48)))
        keys = (k0, a_hi, a_lo, b_hi, b_lo)
        h = hash_keys(keys)
        g = group_rows(h, keys)
        rep = g.first
        gh = h[rep]
        index = self.index
        slots = np.fromiter((index.get(x, -1) for x in gh.tolist()), np.int64, len(gh))
        found = slots >= 0
        if found.any():
            fs, fr = slots[found], rep[found]
            bad = ((self.k0[fs] != k0[fr]) | (self.k1[fs] != a_hi[fr]) | (self.k2[fs] != a_lo[fr])
                   | (self.k3[fs] != b_hi[fr]) | (self.k4[fs] != b_lo[fr]))
            if bad.any():
                for gi in np.flatnonzero(found)[bad].tolist():
                    r = rep[gi]
                    slots[gi] = self.exact.get(tuple(int(k[r]) for k in keys), -1)
        new = np.flatnonzero(slots < 0)
        if len(new) and self.exact:
            for gi in new.tolist():
                r = rep[gi]
                slots[gi] = self.exact.get(tuple(int(k[r]) for k in keys), -1)
            new = np.flatnonzero(slots < 0)
        if len(new):
            rows = self._alloc(len(new))
            slots[new] = rows
            for gi, row in zip(new.tolist(), rows.tolist()):
                hv = int(gh[gi])
                if hv in index:
                    r = rep[gi]
                    self.exact[tuple(int(k[r]) for k in keys)] = row
                    self.in_exact.add(row)
                else:
                    index[hv] = row
            self._init_flows(rows, rep[new], c, a_is_src, keys, gh[new], ts, cap_idx, frames)
        # per-row slot and direction
        slot = slots[g.gid]
        self_flow = (c.src_hi == c.dst_hi) & (c.src_lo == c.dst_lo) & (c.sport == c.dport)
        from_client = self_flow | (a_is_src == self.client_is_a[slot])
        # counters per group, from the rows sorted by group
        o = g.order
        wl = wirelen[o].astype(np.int64)
        fc = from_client[o]
        st = g.starts
        self.packets[slots] += g.counts
        self.bytes[slots] += np.add.reduceat(wl, st)
        self.pts[slots] += np.add.reduceat(fc.astype(np.int64), st)
        self.bts[slots] += np.add.reduceat(np.where(fc, wl, 0), st)
        self.last[slots] = ts[g.last]
        self.last_seq[slots] = seq[g.last]
        # The tunnel is a mark, not part of the key: one conversation seen inside a tunnel and
        # outside it (a mirror on both sides of a GRE router) is one flow, as in the reference.
        if c.tunnel.any():
            tr = np.flatnonzero(c.tunnel)
            ts_, first = np.unique(slot[tr], return_index=True)
            unset = self.tunnel[ts_] == 0
            self.tunnel[ts_[unset]] = c.tunnel[tr[first[unset]]]
        return slot, from_client, g

    def _init_flows(self, rows, r, c, a_is_src, keys, hashes, ts, cap_idx, frames) -> None:
        k0, a_hi, a_lo, b_hi, b_lo = keys
        self.h[rows] = hashes
        self.k0[rows], self.k1[rows], self.k2[rows] = k0[r], a_hi[r], a_lo[r]
        self.k3[rows], self.k4[rows] = b_hi[r], b_lo[r]
        client_is_src = self._orient(c, r)
        self.client_is_a[rows] = client_is_src == a_is_src[r]
        self.cmac[rows] = np.where(client_is_src, c.src_mac[r], c.dst_mac[r])
        self.smac[rows] = np.where(client_is_src, c.dst_mac[r], c.src_mac[r])
        for name in ("packets", "bytes", "pts", "bts"):
            self.cols[name][rows] = 0
        self.first[rows] = ts[r]
        self.cap_idx[rows] = cap_idx
        self.first_frame[rows] = frames[r]
        self.module[rows] = -1
        self.tries[rows] = 0
        self.cls_seq[rows] = NONE_SEQ
        self.next_c[rows] = -1
        self.next_s[rows] = -1
        self.tunnel[rows] = 0
        self.active[rows] = True
        self.n_active += len(rows)

    def _orient(self, c, r) -> np.ndarray:
        """deep.orient, vectorised: True where the client is the packet's source."""
        tcp = c.l4[r] == 6
        flags = c.tcp_flags[r]
        sp, dp = c.sport[r], c.dport[r]
        known_s = np.where(tcp, self.known_tcp[sp], self.known_udp[sp])
        known_d = np.where(tcp, self.known_tcp[dp], self.known_udp[dp])
        out = np.ones(len(r), bool)
        out = np.where(~known_s & ~known_d & (sp < 1024) & (dp >= 1024), False, out)
        out = np.where(known_d & ~known_s, True, out)
        out = np.where(known_s & ~known_d, False, out)
        out = np.where(tcp & ((flags & 0x02) != 0), True, out)
        out = np.where(tcp & ((flags & 0x12) == 0x12), False, out)
        icmp = (c.l4[r] == 1) | (c.l4[r] == 58) | (c.l4[r] == 2)
        return np.where(icmp, sp == 0, out)   # ICMP, IGMP: the requester is on "port" 0

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
        if self.on_evict is not None:
            self.on_evict(victims)
        self._aggregate(victims, modules, captures)
        for row in victims.tolist():
            if row in self.in_exact:
                self.in_exact.discard(row)
                self.exact = {k2: v for k2, v in self.exact.items() if v != row}
        hs = self.h[victims].tolist()
        index = self.index
        for hv, row in zip(hs, victims.tolist()):
            if index.get(hv) == row:
                del index[hv]
        for row in victims.tolist():
            self.ops.pop(row, None)
        self.active[victims] = False
        self.free.extend(victims.tolist())
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
