"""Compiled per-packet loops of the flow table and of the stream tracking (numba, cached on
disk; without numba the same loops run interpreted: slow, same result).

- assign: each TCP/UDP row's flow slot, through an open-addressing index (key hash -> slot + 1,
  linear probing, full key compared), new flows made in first-seen order (a slot from the free
  stack, then from the high-water mark) and oriented, then the flow's counters and the row's
  direction, one row at a time in capture order;
- track: how far each TCP segment starts behind the bytes already seen in its direction, and
  whether it or an earlier one of its direction jumped ahead (Engine._route's repeat test).

The index is never deleted from: when flows are evicted or the table grows, rebuild() makes it
again from the active rows, so a probe chain is never cut."""
from __future__ import annotations

import numpy as np

from plantguard.util.rowhash import kernel, mix, seed

MIN_REL = np.iinfo(np.int64).min // 2     # "nothing seen": below any relative sequence number


@kernel
def _known(l4, port, known_tcp, known_udp):
    if port < 0 or port >= known_tcp.shape[0]:
        return False
    return known_tcp[port] if l4 == 6 else known_udp[port]


@kernel
def client_is_source(l4, sport, dport, flags, known_tcp, known_udp):
    """deep.orient for one packet: is its source the flow's client? A SYN (no ACK) comes from
    the client, a SYN-ACK from the server; otherwise the side on a protocol's port is the server,
    else a port below 1024 talking to a higher one; ICMP and IGMP requesters use "port" 0."""
    if l4 == 1 or l4 == 58 or l4 == 2:
        return sport == 0
    tcp = l4 == 6
    if tcp and (flags & 0x12) == 0x12:
        return False
    if tcp and (flags & 0x02) != 0:
        return True
    ks = _known(l4, sport, known_tcp, known_udp)
    kd = _known(l4, dport, known_tcp, known_udp)
    if ks and not kd:
        return False
    if kd and not ks:
        return True
    return ks or kd or not (sport < 1024 and dport >= 1024)


@kernel
def assign(src_hi, src_lo, dst_hi, dst_lo, sport, dport, l4, ip_version, vlan, flags, src_mac, dst_mac,
           tunnel, wirelen, ts, seq, frames, cap_idx, known_tcp, known_udp, index, free, nfree, size,
           th, tk0, tk1, tk2, tk3, tk4, client_is_a, cmac, smac, packets, nbytes, pts, bts, first, last,
           last_seq, cap_of, first_frame, module, tries, cls_seq, active, next_c, next_s, tunnel_of,
           no_seq, slots, from_client, start):
    """FlowTable.assign, one row at a time in capture order: the row's canonical key (endpoint A
    the lower address, then port) and its hash, its flow found through the index (full key
    compared) or made (a slot from the top of free[:nfree], else `size`; oriented by its first
    packet), then the flow's counters. slots[r] and from_client[r] are written for the rows from
    `start` on, up to the first that needs a new slot when the table is full (no free slot,
    `size` at its capacity): the caller grows it and goes on from there. The caller keeps the
    index at most half full of the capacity. Returns (new flows, nfree, size, rows done)."""
    mask = np.uint64(index.shape[0] - 1)
    n_new = 0
    capacity = th.shape[0]
    for r in range(start, src_hi.shape[0]):
        shi, slo, dhi, dlo = src_hi[r], src_lo[r], dst_hi[r], dst_lo[r]
        sp, dp = sport[r], dport[r]
        a_is_src = shi < dhi or (shi == dhi and (slo < dlo or (slo == dlo and sp <= dp)))
        if a_is_src:
            a, b, c, d, pa, pb = shi, slo, dhi, dlo, sp, dp
        else:
            a, b, c, d, pa, pb = dhi, dlo, shi, slo, dp, sp
        k0 = (np.uint64(l4[r]) | (np.uint64(ip_version[r]) << np.uint64(8))
              | (np.uint64(vlan[r] + 1) << np.uint64(12))
              | (np.uint64(pa) << np.uint64(32)) | (np.uint64(pb) << np.uint64(48)))
        h = mix(mix(mix(mix(mix(seed(), k0), a), b), c), d)
        i = h & mask
        s = np.int64(-1)
        probes = np.uint64(0)
        while True:
            v = index[i]
            if v == 0:
                break
            t = v - 1
            if th[t] == h and tk0[t] == k0 and tk1[t] == a and tk2[t] == b and tk3[t] == c and tk4[t] == d:
                s = t
                break
            i = (i + np.uint64(1)) & mask
            probes += np.uint64(1)
            if probes > mask:     # cannot happen while the index is kept half empty
                raise MemoryError("flow index full")
        if s < 0:
            if nfree > 0:
                nfree -= 1
                s = free[nfree]
            elif size < capacity:
                s = size
                size += 1
            else:
                return n_new, nfree, size, r
            index[i] = s + 1
            n_new += 1
            th[s] = h
            tk0[s] = k0
            tk1[s] = a
            tk2[s] = b
            tk3[s] = c
            tk4[s] = d
            src_client = client_is_source(l4[r], sp, dp, flags[r], known_tcp, known_udp)
            client_is_a[s] = src_client == a_is_src
            cmac[s] = src_mac[r] if src_client else dst_mac[r]
            smac[s] = dst_mac[r] if src_client else src_mac[r]
            packets[s] = 0
            nbytes[s] = 0
            pts[s] = 0
            bts[s] = 0
            first[s] = ts[r]
            cap_of[s] = cap_idx
            first_frame[s] = frames[r]
            module[s] = -1
            tries[s] = 0
            cls_seq[s] = no_seq
            next_c[s] = -1
            next_s[s] = -1
            tunnel_of[s] = 0
            active[s] = True
        slots[r] = s
        # a flow from an endpoint to itself: every packet goes client -> server
        fc = (shi == dhi and slo == dlo and sp == dp) or (a_is_src == client_is_a[s])
        from_client[r] = fc
        w = np.int64(wirelen[r])
        packets[s] += 1
        nbytes[s] += w
        if fc:
            pts[s] += 1
            bts[s] += w
        last[s] = ts[r]
        last_seq[s] = seq[r]
        # the tunnel is a mark, not part of the key: the first one seen stays
        if tunnel[r] != 0 and tunnel_of[s] == 0:
            tunnel_of[s] = tunnel[r]
    return n_new, nfree, size, src_hi.shape[0]


@kernel
def rebuild(index, th, active, size):
    """The index made again from the active rows of the table (index all zeros on entry)."""
    mask = np.uint64(index.shape[0] - 1)
    for s in range(size):
        if active[s]:
            i = th[s] & mask
            while index[i] != 0:
                i = (i + np.uint64(1)) & mask
            index[i] = s + 1


@kernel
def _signed32(x):
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


@kernel
def track(di, l4, slot, from_client, seq, plen, next_c, next_s, holey_dirs, retransmit_window,
          reorder_window, behind, holey, jumped, new_holey):
    """Engine._track_streams for the delivered rows di (TCP ones only; the others stay 0/False),
    in capture order. Each direction's sequence numbers are taken relative to its first in the
    chunk (signed 32-bit distances), where a running maximum of segment ends is meaningful;
    its mark from earlier chunks (next_c / next_s, -1: none) starts that maximum. A segment
    starting before the maximum by at most retransmit_window is that far behind; one starting
    past it by at most reorder_window jumped ahead, and makes its direction holey from there on
    (holey_dirs, sorted: directions, slot * 2 + from_client, holey from an earlier chunk).
    Updates next_c / next_s; new_holey[:n] gets the directions that jumped. Returns n."""
    m = di.shape[0]
    cap = 16
    while cap < 2 * m:
        cap *= 2
    where = np.full(cap, -1, np.int64)      # direction -> its group, open addressing
    keys = np.empty(m, np.int64)
    base = np.empty(m, np.int64)
    run = np.empty(m, np.int64)
    known0 = np.empty(m, np.bool_)
    hflag = np.empty(m, np.bool_)
    ahead_any = np.empty(m, np.bool_)
    n_groups = 0
    mask = cap - 1
    for t in range(m):
        r = di[t]
        if l4[r] != 6:
            continue
        s = slot[r]
        f = from_client[r]
        dkey = s * 2 + (1 if f else 0)
        i = (dkey * 0x9E3779B1) & mask
        g = -1
        while where[i] >= 0:
            if keys[where[i]] == dkey:
                g = where[i]
                break
            i = (i + 1) & mask
        first = g < 0
        if first:
            g = n_groups
            n_groups += 1
            where[i] = g
            keys[g] = dkey
            base[g] = seq[r]
            carry = next_c[s] if f else next_s[s]
            known0[g] = carry >= 0
            run[g] = _signed32(carry - seq[r]) if carry >= 0 else MIN_REL
            k = np.searchsorted(holey_dirs, dkey)
            hflag[g] = k < holey_dirs.shape[0] and holey_dirs[k] == dkey
            ahead_any[g] = False
        rel = _signed32(seq[r] - base[g])
        prev = run[g]
        if (not first) or known0[g]:
            d = (prev - rel) & 0xFFFFFFFF
            if d > 0 and d <= retransmit_window:
                behind[t] = d
            gap = rel - prev
            if gap > 0 and gap <= reorder_window:
                jumped[t] = True
                hflag[g] = True
                ahead_any[g] = True
        holey[t] = hflag[g]
        e = rel + plen[r]
        if e > prev:
            run[g] = e
    n = 0
    for g in range(n_groups):
        s = keys[g] >> 1
        mark = (run[g] + base[g]) & 0xFFFFFFFF
        if keys[g] & 1:
            next_c[s] = mark
        else:
            next_s[s] = mark
        if ahead_any[g]:
            new_holey[n] = keys[g]
            n += 1
    return n
