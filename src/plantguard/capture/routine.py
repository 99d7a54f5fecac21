"""Routine packets, recognised with array operations: the polling bulk of a plant (Modbus read
requests and responses, CIP reads in connected messaging, S7 read-var jobs and acks, TLS
application data, CIP implicit I/O, DNP3 reads and their responses, BACnet/IP reads, their
ACKs and unconfirmed notifications).

For each such packet recognise() gives a *routine key*: a hash of the fields the protocol
module's output depends on, leaving out what changes from poll to poll (transaction ids,
sequence numbers, CRCs, and register values the module does not report). The engine sends the
first packets of each (flow, key) to the deep tier; once two in a row give the same
observations, later packets with that key replay them (counts and operation totals) without
a Python object per packet. A key that never settles keeps going to the deep tier, so a
wrong guess here costs speed, not correctness (unless the module reports something the key
leaves out).

Each protocol declares its recognisers in its SPEC (ProtocolSpec.routine), beside the decoder
whose output the key must cover; this module runs them, then the generic short-payload one."""
from __future__ import annotations

import zlib

import numpy as np

from plantguard.capture.columns import gather
from plantguard.util.arrays import bytes_hash, col, hash_keys

SHORT = 24


def short_payload(p, plen, from_client, l4, sport, dport):
    """Any protocol: a short payload (keep-alives, empty data units, acks at the application
    layer) keyed on all its bytes. Learning still decides whether replaying it is exact."""
    ok = (plen > 0) & (plen <= SHORT)
    pos = np.arange(p.shape[1])[None, :]
    key = hash_keys((col(from_client), col(plen), bytes_hash(p, pos < plen[:, None])))
    return ok, key


def recognisers(modules) -> list[tuple]:
    """Per module index: the (fn, width, salt, transport) recognisers to try in order, empty
    when the module forbids replay. The salt keeps keys of different recognisers apart."""
    out = []
    for m in modules:
        spec = m.SPEC
        rules = ([(r.fn, r.width, r.transport) for r in spec.routine] + [(short_payload, SHORT, 0)]
                 if spec.replay else [])
        out.append([(fn, width, np.uint64(zlib.crc32(f"{spec.name}:{fn.__name__}".encode())), transport)
                    for fn, width, transport in rules])
    return out


def recognise(arr: np.ndarray, rules: list[list[tuple]], mod: np.ndarray, pay_off: np.ndarray,
              pay_len: np.ndarray, from_client: np.ndarray, l4: np.ndarray, sport: np.ndarray,
              dport: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(routine mask, routine key) for delivered packets; mod is each packet's module index
    into `rules` (from recognisers()), negative for an unclassified flow."""
    n = len(mod)
    routine = np.zeros(n, bool)
    key = np.zeros(n, np.uint64)
    for mi in np.unique(mod).tolist():
        if mi < 0:
            continue
        sel = np.flatnonzero(mod == mi)
        for fn, width, salt, transport in rules[mi]:
            if not len(sel):
                break
            offer = sel if not transport else sel[l4[sel] == transport]
            if not len(offer):
                continue
            rows = getattr(fn, "rows", None)   # a row kernel reads the buffer in place (util.rowhash)
            if rows is not None and len(arr):
                ok, k = rows(arr, pay_off[offer], width, pay_len[offer], from_client[offer], l4[offer], sport[offer],
                             dport[offer])
            else:
                p = gather(arr, pay_off[offer], width)
                ok, k = fn(p, pay_len[offer], from_client[offer], l4[offer], sport[offer], dport[offer])
            hit = offer[ok]
            routine[hit] = True
            key[hit] = k[ok] ^ salt
            sel = sel[~routine[sel]]
    return routine, key


def holds(modules) -> list:
    """Per module index: its ProtocolSpec.hold, or None."""
    return [m.SPEC.hold if m.SPEC.replay else None for m in modules]


def held(arr: np.ndarray, hold_specs: list, mod: np.ndarray, slot: np.ndarray, pay_off: np.ndarray,
         pay_len: np.ndarray, from_client: np.ndarray, l4: np.ndarray, sport: np.ndarray,
         dport: np.ndarray, state_of, whole: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For delivered packets (in capture order) of modules that keep state later packets' output
    depends on (ProtocolSpec.hold): (start, after). `start`: packets that may start such state,
    never replayed. `after`: the other packets of a flow whose state held some at the chunk's
    start, or that come after a start in the chunk: replayed only if the state holds nothing
    when the deep loop reaches them. state_of(slot) gives a flow's module state (None before its
    first decode); `whole` marks reassembled datagrams, taken as starts (their bytes are not in arr)."""
    start = np.zeros(len(mod), bool)
    after = np.zeros(len(mod), bool)
    for mi in np.unique(mod).tolist():
        h = hold_specs[mi] if mi >= 0 else None
        if h is None:
            continue
        sel = np.flatnonzero(mod == mi)
        p = gather(arr, pay_off[sel], h.width)
        st = h.rows(p, pay_len[sel], from_client[sel], l4[sel], sport[sel], dport[sel])
        if whole is not None:
            st = st | whole[sel]
        uslots, inv = np.unique(slot[sel], return_inverse=True)
        # from which of the flow's packets on (its index in sel): 0 when its state holds already
        first = np.full(len(uslots), len(sel), np.int64)
        held_now = np.fromiter((bool(h.state(state_of(s))) for s in uslots.tolist()), bool, len(uslots))
        first[held_now] = 0
        idx = np.flatnonzero(st)
        np.minimum.at(first, inv[idx], idx)
        start[sel] = st
        after[sel] = ~st & (np.arange(len(sel)) >= first[inv])
    return start, after
