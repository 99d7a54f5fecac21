"""Routine recognition for MMS (capture/routine.py calls this on whole chunks, one row per
packet): the polling bulk of an IEC 61850 or ICCP association, each in one whole TPKT / COTP DT
(last unit) / GIVE TOKENS + DATA TRANSFER / fully-encoded data with one PDV: confirmed read
requests, the read and write responses, and unconfirmed PDUs (informationReport). The key
covers every byte the decoder's output depends on for such a packet.

Declared in the package's SPEC; defined here beside the decoder whose output it must match."""
from __future__ import annotations

import numpy as np

from plantguard.protocols.s7comm.cotp import S7_PORT, TPKT_VERSION
from plantguard.util.arrays import bytes_at, bytes_hash, col, hash_keys, u16

_SESSION = np.array([0x01, 0x00, 0x01, 0x00], np.uint8)   # GIVE TOKENS, DATA TRANSFER
_PRES = 11                                                # fully-encoded data, after TPKT, COTP, session
_REQUEST, _RESPONSE, _UNCONFIRMED = 0xA0, 0xA1, 0xA3
_READ = 0xA4                                              # [4] read, constructed
_RESPONSES = (0xA4, 0xA5)                                 # read / write responses: no output


def _ber_len(p, off):
    """(content length, header length after the tag, ok) of a definite BER length at off."""
    b = bytes_at(p, off, 3).astype(np.int64)
    first = b[:, 0]
    short, one, two = first < 0x80, first == 0x81, first == 0x82
    length = np.where(short, first, np.where(one, b[:, 1], (b[:, 1] << 8) | b[:, 2]))
    return length, np.where(short, 1, np.where(one, 2, 3)), short | one | two


def _element(p, off, tag, plen):
    """Content start of the element with `tag` at off that runs to the end of the packet."""
    n, h, ok = _ber_len(p, off + 1)
    start = off + 1 + h
    tag_ok = bytes_at(p, off, 1)[:, 0] == tag if tag is not None else True
    return start, ok & tag_ok & (start + n == plen)


def mms_routine(p, plen, from_client, l4, sport, dport):
    """Read requests keyed on everything after the invoke id (the variables named), read /
    write responses on the service tag, unconfirmed PDUs on the service tag (the decoder says
    nothing of either); never the invoke id."""
    w = p.shape[1]
    ok = (l4 == 6) & (plen >= _PRES + 12) & (plen <= w) & (p[:, 0] == TPKT_VERSION) & (p[:, 1] == 0) \
        & (u16(p, 2) == plen) & (p[:, 4] == 2) & (p[:, 5] == 0xF0) & (p[:, 6] == 0x80) \
        & np.all(p[:, 7:_PRES] == _SESSION, axis=1)
    pdv, m = _element(p, np.full(len(p), _PRES), 0x61, plen)
    ok &= m
    ctx, m = _element(p, pdv, 0x30, plen)
    ok &= m & np.all(bytes_at(p, ctx, 2) == np.array([0x02, 0x01], np.uint8), axis=1)
    single = ctx + 3
    pdu_at, m = _element(p, single, 0xA0, plen)
    ok &= m
    tag = bytes_at(p, pdu_at, 1)[:, 0]
    body, m = _element(p, pdu_at, None, plen)
    ok &= m & np.isin(tag, (_REQUEST, _RESPONSE, _UNCONFIRMED))
    head = bytes_at(p, body, 2).astype(np.int64)
    confirmed = np.isin(tag, (_REQUEST, _RESPONSE))
    invoke_ok = (head[:, 0] == 0x02) & (head[:, 1] >= 1) & (head[:, 1] <= 4)
    svc = np.where(confirmed, body + 2 + head[:, 1], body)
    stag = bytes_at(p, svc, 1)[:, 0]
    ok &= ~confirmed | invoke_ok
    ok &= svc < plen
    request = ok & (tag == _REQUEST) & (stag == _READ)
    response = ok & (tag == _RESPONSE) & np.isin(stag, _RESPONSES)
    unconfirmed = ok & (tag == _UNCONFIRMED)
    hit = request | response | unconfirmed
    pos = np.arange(w)[None, :]
    keep = request[:, None] & (pos >= svc[:, None]) & (pos < plen[:, None])
    one = (dport == S7_PORT) != (sport == S7_PORT)
    toward = np.where(one, dport == S7_PORT, from_client)
    key = hash_keys((col(toward), col(from_client), col(np.where(hit, tag, 0)), col(np.where(hit, stag, 0)),
                     bytes_hash(p, keep)))
    return hit, key
