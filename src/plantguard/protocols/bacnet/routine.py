"""Routine recognition for BACnet/IP (capture/routine.py calls these on whole chunks, one row per
datagram): polling requests (ReadProperty, ReadPropertyMultiple, ...), their ACKs, errors,
rejects and aborts, and unconfirmed services (I-Am, COV notifications, Who-Is).

The key hashes every payload byte but the invoke id, which changes with every request (and but
the bytes the decoder never reports: the number a ReadProperty-ACK returns for no identity
property, the parameters of unconfirmed services it does not read), so templates settle. The
decoder's output for these datagrams depends on the invoke id only through the flow's state:
a password request waiting for its reply (paired by invoke id, or reported by the client's next
request) and segments being joined. `hold_rows` marks the datagrams that may start such state,
which are never replayed, and `holds` a flow waiting on a password's reply, whose datagrams
the engine then decodes (ProtocolSpec.hold). The NPDU is walked here exactly as apdu.parse
walks it, so the invoke id masked is the byte parse reads."""
from __future__ import annotations

import numpy as np

from plantguard.protocols.bacnet.names import DEVICE, IDENTITY_PROPERTIES, NPDU_FUNCTIONS, OBJECT_NAME
from plantguard.util.arrays import bytes_hash, col, hash_keys

CONFIRMED, UNCONFIRMED, COMPLEX_ACK = 0, 1, 3
PASSWORD_SERVICES = (17, 20)   # DeviceCommunicationControl, ReinitializeDevice: may carry a password
READ_UNCONFIRMED = (0, 1, 7, 8)   # I-Am, I-Have, Who-Has, Who-Is: apdu._unconfirmed_request reads these
# the shortest APDU each PDU type's reader accepts (shorter ones raise Malformed: no output)
_MIN_APDU = np.array([4, 2, 3, 3, 4, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0], np.int64)


def _apdu(p: np.ndarray, plen: np.ndarray):
    """Where each row's APDU starts as apdu.parse finds it, and whether parse reaches an APDU
    reader with bytes enough for it (False: no output, or a datagram without an APDU).
    Offsets past the matrix width are left unresolved: `inside` says which are known."""
    w = p.shape[1]
    rows = np.arange(len(p))

    def at(i):
        return p[rows, np.minimum(i, w - 1)].astype(np.int64)

    start = np.where(p[:, 1] == 0x04, 10, 4)
    ok = (plen >= 4) & (p[:, 0] == 0x81) & np.isin(p[:, 1], NPDU_FUNCTIONS)
    ok &= (start + 2 <= plen) & (at(start) == 1)
    control = at(start + 1)
    off = start + 2
    dnet, snet = (control & 0x20) > 0, (control & 0x08) > 0
    inside = off + 3 <= w
    ok &= ~dnet | (off + 3 <= plen)
    off = np.where(dnet, off + 3 + at(off + 2), off)
    inside &= ~snet | (off + 3 <= w)
    ok &= ~snet | (off + 3 <= plen)
    off = np.where(snet, off + 3 + at(off + 2), off)
    off = off + dnet                                   # the hop count
    ok &= (off < plen) & ((control & 0x80) == 0)       # network-layer messages have no APDU
    inside &= off + 6 <= w                             # the APDU head: type, invoke, service
    ptype = at(off) >> 4
    ok &= (ptype < 8) & (plen - off >= _MIN_APDU[np.minimum(ptype, 15)])
    return ok & inside, inside, off, at


def bacnet_routine(p, plen, from_client, l4, sport, dport):
    """Whole datagrams within the matrix, keyed on all their bytes but the invoke id (and what
    the decoder does not read: see _unread); confirmed requests that may carry a password and
    segmented messages are left to the decoder."""
    ok, _inside, off, at = _apdu(p, plen)
    ok &= l4 == 17
    head = at(off)
    ptype = head >> 4
    segmented = (head & 0x08) > 0
    ok &= ~(((ptype == CONFIRMED) | (ptype == COMPLEX_ACK)) & segmented)
    ok &= ~((ptype == CONFIRMED) & np.isin(at(off + 3), PASSWORD_SERVICES))
    invoke = np.where(ptype == CONFIRMED, off + 2, np.where(ptype == UNCONFIRMED, -1, off + 1))
    pos = np.arange(p.shape[1])[None, :]
    keep = (pos < plen[:, None]) & (pos != invoke[:, None])
    header_only, quiet = _unread(p, at, ok, off, head, plen)
    ok &= header_only | quiet | (plen <= p.shape[1])
    keep &= ~quiet[:, None] & ~(header_only[:, None] & (pos >= (off + 2)[:, None]))
    kind = np.where(quiet, 2, np.where(header_only, 1, 0))
    return ok, hash_keys((col(from_client), col(kind), col(np.where(kind > 0, 0, plen)), bytes_hash(p, keep)))


def _unread(p, at, ok, off, head, plen):
    """Datagrams whose output the decoder takes from some bytes only. `header_only`: unconfirmed
    services it reads no parameters of (COV and event notifications, private transfers, ...):
    only the bytes up to the service choice count. `quiet`: a ReadProperty-ACK that reports
    nothing (no identity property, no object name) and whose value apdu.parse reads without a
    raise: nothing but its being one counts (_quiet_values checks the value's tags)."""
    header_only = ok & (head >> 4 == UNCONFIRMED) & ~np.isin(at(off + 1), READ_UNCONFIRMED)
    o = off + 3                                        # after type, invoke, service choice
    ptag = at(o + 5)                                   # the property id [1], 1 to 4 bytes
    plvt = ptag & 0x07
    rp_ack = ok & (head == 0x30) & (at(off + 2) == 12) & (at(o) == 0x0C) & (ptag >= 0x19) & (ptag <= 0x1C)
    sel = np.flatnonzero(rp_ack)
    quiet = np.zeros(len(ok), bool)
    if not len(sel):
        return header_only, quiet
    w = p.shape[1]

    def at_s(i):
        return p[sel, np.minimum(i, w - 1)].astype(np.int64)

    o, plvt, lim = o[sel], plvt[sel], np.minimum(plen[sel], w)
    otype = (at_s(o + 1) << 2) | (at_s(o + 2) >> 6)
    prop = np.zeros(len(sel), np.int64)
    for k in range(4):
        prop = np.where(k < plvt, (prop << 8) | at_s(o + 6 + k), prop)
    i = o + 6 + plvt
    index = (at_s(i) >= 0x29) & (at_s(i) <= 0x2C)      # the optional array index [2]
    i = np.where(index, i + 1 + (at_s(i) & 0x07), i)
    good = (o + 6 + plvt <= lim) & (i < lim) & (at_s(i) == 0x3E)
    good &= (prop != OBJECT_NAME) & ~((otype == DEVICE) & np.isin(prop, list(IDENTITY_PROPERTIES)))
    quiet[sel] = good & _quiet_values(at_s, i + 1, lim)
    return header_only, quiet


def _quiet_values(at_s, pos, lim, max_tags: int = 24):
    """Whether tags.read_tag and _values_until_close read the value from pos to its closing tag
    [3] without a raise, every tag header inside the matrix (lim: the row's readable end). The
    values it decodes cannot raise (tags.application_value), so they need not be looked at."""
    n = len(pos)
    depth = np.zeros(n, np.int64)
    done = np.zeros(n, bool)
    bad = np.zeros(n, bool)
    for _ in range(max_tags):
        live = ~done & ~bad
        if not live.any():
            break
        h = at_s(pos)
        number, context, lvt = h >> 4, (h & 0x08) > 0, h & 0x07
        bad |= live & ((pos >= lim) | (number == 15))
        opening, closing = context & (lvt == 6), context & (lvt == 7)
        boolean = ~context & (number == 1)
        ext = ~opening & ~closing & ~boolean & (lvt == 5)
        ext_len = at_s(pos + 1)
        bad |= live & ext & ((pos + 1 >= lim) | (ext_len >= 254))
        length = np.where(ext, ext_len, np.where(opening | closing | boolean, 0, lvt))
        end = pos + 1 + ext + length
        bad |= live & (end > lim)
        top = closing & (depth == 0)
        bad |= live & top & (number != 3)
        done |= live & ~bad & top
        depth = np.where(live & opening, depth + 1, np.where(live & closing & ~top, depth - 1, depth))
        pos = np.where(live, end, pos)
    return done & ~bad


def hold_rows(p, plen, from_client, l4, sport, dport):
    """Datagrams that may leave state later datagrams' output depends on: confirmed requests of
    the password services, segmented complex ACKs, and any NPDU whose APDU lies past the matrix."""
    ok, inside, off, at = _apdu(p, plen)
    head = at(off)
    ptype = head >> 4
    segmented_ack = (ptype == COMPLEX_ACK) & ((head & 0x08) > 0)
    service = at(off + np.where((head & 0x08) > 0, 5, 3))
    password = (ptype == CONFIRMED) & np.isin(service, PASSWORD_SERVICES)
    npdu = (p[:, 0] == 0x81) & np.isin(p[:, 1], NPDU_FUNCTIONS)   # only those reach an APDU
    return (npdu & ~inside) | (ok & (segmented_ack | password))


def holds(state: dict | None) -> bool:
    """The flow waits on the reply to a password request: its replies and the client's next
    request report it, so decode them. (Segments being joined do not count: only segmented
    ACKs read them, and those are hold rows, always decoded.)"""
    return bool(state) and bool(state.get("pending"))


def prime(pkt) -> None:
    """A replayed datagram moves no state: it is no hold row (no password kept, no segment),
    its flow holds no password, and its sender is among the flow's servers already when it
    answers (the equal datagrams that taught its template were decoded before it)."""
