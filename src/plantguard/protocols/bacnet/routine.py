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

from plantguard.protocols.bacnet.names import DEVICE, IDENTITY_PROPERTIES, NPDU_FUNCTIONS
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
    header_only, value, value_end = _unread(at, ok, off, head, plen)
    ok &= header_only | (plen <= p.shape[1])
    keep &= ~(header_only[:, None] & (pos >= (off + 2)[:, None]))
    keep &= ~((pos >= value[:, None]) & (pos < value_end[:, None]))
    return ok, hash_keys((col(from_client), col(np.where(header_only, 0, plen)), bytes_hash(p, keep)))


def _unread(at, ok, off, head, plen):
    """Bytes the decoder's output does not depend on. (1) Unconfirmed services it reads no
    parameters of (COV and event notifications, private transfers, ...): all after the service
    choice; `header_only` marks them. (2) A ReadProperty-ACK of one primitive number (unsigned,
    signed, real, enumerated) that is no device identity property: the number's bytes, from
    [value, value_end) (empty: none)."""
    header_only = ok & (head >> 4 == UNCONFIRMED) & ~np.isin(at(off + 1), READ_UNCONFIRMED)
    o = off + 3                                        # after type, invoke, service choice
    rp_ack = ok & (head == 0x30) & (at(off + 2) == 12) & (at(o) == 0x0C)
    otype = (at(o + 1) << 2) | (at(o + 2) >> 6)
    short = at(o + 5) == 0x19                          # the property id in one byte, or two
    rp_ack &= short | (at(o + 5) == 0x1A)
    prop = np.where(short, at(o + 6), (at(o + 6) << 8) | at(o + 7))
    v = o + np.where(short, 7, 8)                      # the opening tag [3], no array index
    tag = at(v + 1)
    lvt = tag & 0x07
    rp_ack &= (at(v) == 0x3E) & np.isin(tag >> 4, (2, 3, 4, 9)) & ((tag & 0x08) == 0) & (lvt >= 1) & (lvt <= 4)
    rp_ack &= (v + 3 + lvt <= plen) & (at(v + 2 + lvt) == 0x3F)
    rp_ack &= ~((otype == DEVICE) & np.isin(prop, list(IDENTITY_PROPERTIES)))
    return header_only, np.where(rp_ack, v + 2, 0), np.where(rp_ack, v + 2 + lvt, 0)


def hold_rows(p, plen, from_client, l4, sport, dport):
    """Datagrams that may leave state later datagrams' output depends on: confirmed requests of
    the password services, segmented complex ACKs, and any whose APDU lies past the matrix."""
    ok, inside, off, at = _apdu(p, plen)
    head = at(off)
    ptype = head >> 4
    segmented_ack = (ptype == COMPLEX_ACK) & ((head & 0x08) > 0)
    service = at(off + np.where((head & 0x08) > 0, 5, 3))
    password = (ptype == CONFIRMED) & np.isin(service, PASSWORD_SERVICES)
    return ~inside | (ok & (segmented_ack | password))


def holds(state: dict | None) -> bool:
    """The flow waits on the reply to a password request: its replies and the client's next
    request report it, so decode them. (Segments being joined do not count: only segmented
    ACKs read them, and those are hold rows, always decoded.)"""
    return bool(state) and bool(state.get("pending"))


def prime(pkt) -> None:
    """A replayed datagram moves no state: it is no hold row (no password kept, no segment),
    its flow holds no password, and its sender is among the flow's servers already when it
    answers (the equal datagrams that taught its template were decoded before it)."""
