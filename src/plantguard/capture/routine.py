"""Routine packets, recognised with array operations: the polling bulk of a plant (Modbus read
requests and responses, CIP reads in connected messaging, S7 read-var jobs and acks, TLS
application data, CIP implicit I/O, DNP3 reads and their responses).

For each such packet recognise() gives a *routine key*: a hash of the fields the protocol
module's output depends on, leaving out what changes from poll to poll (transaction ids,
sequence numbers, CRCs, and register values the module does not report). The engine sends the
first packets of each (flow, key) to the deep tier; once two in a row give the same
observations, later packets with that key replay them (counts and operation totals) without
a Python object per packet. A key that never settles keeps going to the deep tier, so a
wrong guess here costs speed, not correctness (unless the module reports something the key
leaves out)."""
from __future__ import annotations

import zlib

import numpy as np

from plantguard.capture.columns import gather
from plantguard.capture.flows import hash_keys

HEAD = 64           # payload bytes looked at for most protocols
ENIP_HEAD = 512     # a Multiple Service Packet of ~30 tag reads, whole
DNP3_HEAD = 292     # one whole DNP3 link frame (10-byte header + 16 blocks of 16+2)


def _u16(m, i):
    return (m[:, i].astype(np.int64) << 8) | m[:, i + 1]


def _le16(m, i):
    return m[:, i].astype(np.int64) | (m[:, i + 1].astype(np.int64) << 8)


def _col(x) -> np.ndarray:
    return np.asarray(x).astype(np.uint64)


def _bytes_hash(m: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Hash of each row's bytes where keep is True (others count as zero)."""
    z = np.where(keep, m, 0).astype(np.uint8)
    width = -(-z.shape[1] // 8) * 8
    if width != z.shape[1]:
        z = np.pad(z, ((0, 0), (0, width - z.shape[1])))
    words = np.ascontiguousarray(z).view("<u8")
    return hash_keys(tuple(words[:, i] for i in range(words.shape[1])))


SPAN_SPLIT = 256   # bytes hashed for every row; only the rows that need more hash the rest


def _span_hash(p: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Hash of each row's bytes in [start, end) (the same for a row whatever the other rows
    of its chunk need: the tail past SPAN_SPLIT is hashed apart, 0 when empty)."""
    split = min(SPAN_SPLIT, p.shape[1])
    pos = np.arange(split)[None, :]
    head = _bytes_hash(p[:, :split], (pos >= start[:, None]) & (pos < end[:, None]))
    long = np.flatnonzero(end > split)
    tail = np.zeros(len(p), np.uint64)
    if len(long):
        pos = np.arange(split, p.shape[1])[None, :]
        keep = (pos >= start[long, None]) & (pos < end[long, None])
        tail[long] = _bytes_hash(p[long, split:], keep)
    return hash_keys((head, tail))


def modbus(p, plen, from_client, l4, sport, dport):
    """One whole ADU. Requests of the read/write codes the module describes from the first
    PDU bytes (start/address, quantity or value); any normal (non-exception) response except
    the codes whose responses it reads (17, 43, 90)."""
    ok = (l4 == 6) & (plen >= 8) & (_u16(p, 2) == 0)
    mlen = _u16(p, 4)
    ok &= plen == 6 + mlen
    fc = p[:, 7].astype(np.int64)
    req = ok & from_client & np.isin(fc, (1, 2, 3, 4, 5, 6, 15, 16, 23)) & (mlen >= 6)
    rsp = ok & ~from_client & (fc >= 1) & (fc < 0x80) & ~np.isin(fc, (17, 43, 90))
    width = np.where(fc == 23, 8, 4)
    pos = np.arange(p.shape[1])[None, :]
    keep = req[:, None] & (pos >= 8) & (pos < 8 + width[:, None]) & (pos < plen[:, None])
    key = hash_keys((_col(from_client), _col(p[:, 6]), _col(fc), _col(np.where(req, mlen, 0)),
                     _bytes_hash(p[:, :16], keep[:, :16])))
    return req | rsp, key


# CIP services left to the deep tier: Identity-capable reads (their replies give identity
# through request pairing), Multiple Service Packet and Unconnected Send (wrappers).
_CIP_DEEP = (0x01, 0x03, 0x0E, 0x0A, 0x52)


def enip_cip(p, plen, from_client, l4, sport, dport):
    """SendRRData / SendUnitData with exactly one CIP message. Requests key on the service and
    path (and the PCCC command and function for Execute PCCC); replies on service and status."""
    ok = (l4 == 6) & (plen >= 44) & (plen == 24 + _le16(p, 2))
    cmd = _le16(p, 0)
    ok &= ((cmd == 0x6F) | (cmd == 0x70)) & (p[:, 8] == 0) & (p[:, 9] == 0) & (p[:, 10] == 0) & (p[:, 11] == 0)
    ok &= _le16(p, 30) == 2
    t1, len1 = _le16(p, 32), _le16(p, 34)
    ok &= ((t1 == 0) & (len1 == 0)) | ((t1 == 0xA1) & (len1 == 4))
    i2 = 36 + len1
    rows = np.arange(len(p))
    w = p.shape[1]

    def at(i, sub=None):
        return p[rows if sub is None else sub, np.minimum(i, w - 1)].astype(np.int64)

    t2 = at(i2) | (at(i2 + 1) << 8)
    len2 = at(i2 + 2) | (at(i2 + 3) << 8)
    ok &= ((t2 == 0xB2) & (t1 == 0)) | ((t2 == 0xB1) & (t1 == 0xA1))
    ok &= plen == i2 + 4 + len2
    cip = i2 + 4 + np.where(t2 == 0xB1, 2, 0)
    ok &= cip + 4 <= np.minimum(plen, w)
    svc = at(cip)
    one = (dport == 44818) != (sport == 44818)
    request = np.where(one, dport == 44818, from_client)
    words = at(cip + 1)
    path_end = cip + 2 + 2 * words
    req = ok & request & (svc < 0x80) & ~np.isin(svc, _CIP_DEEP) & (path_end + 8 <= np.minimum(plen, w))
    rsp = ok & ~request & (svc >= 0x80) & ~np.isin(svc & 0x7F, _CIP_DEEP) & np.isin(at(cip + 2), (0, 6))
    # Execute PCCC: the command and function bytes after the requestor id
    d0 = path_end
    rl = at(d0)
    valid = (rl >= 7) & (d0 + rl + 5 <= plen)
    pccc = np.where(req & (svc == 0x4B),
                    (rl << 24) | (valid << 16) | np.where(valid, (at(d0 + rl) << 8) | at(d0 + rl + 4), 0), 0)
    # Multiple Service Packet: requests key on the whole message; replies on the inner
    # services when every inner reply succeeded
    msp_req, msp_rsp, inner = _msp(at, ok, request, svc, cip, path_end, plen, w)
    end = np.where(msp_req, plen, np.where(req, path_end, 0))
    key = hash_keys((_col(request), _col(cmd), _col(svc), _col(pccc), _span_hash(p, cip, end),
                     _col(np.where(rsp, at(cip + 2) | (at(cip + 3) << 8), 0)), inner))
    return req | rsp | msp_req | msp_rsp, key


MSP_MAX = 32  # inner messages looked at; larger packets stay deep


def _msp(at, ok, request, svc, cip, path_end, plen, w):
    n = len(svc)
    msp_req = ok & request & (svc == 0x0A) & (plen <= w)
    msp_rsp = ok & ~request & (svc == 0x8A) & (at(cip + 2) == 0)
    data = np.where(msp_req, path_end, cip + 4 + 2 * at(cip + 3))
    count = at(data) | (at(data + 1) << 8)
    good = (msp_req | msp_rsp) & (count >= 1) & (count <= MSP_MAX)
    # the inner loop looks at the candidate rows only (a few of an ENIP chunk)
    sel = np.flatnonzero(good)
    s_req, s_rsp, s_data, s_count = msp_req[sel], msp_rsp[sel], data[sel], count[sel]
    s_lim = np.minimum(plen[sel], w)
    s_good = np.ones(len(sel), bool)
    s_inner = np.zeros(len(sel), np.uint64)
    for i in range(MSP_MAX):
        live = s_good & (i < s_count)
        if not live.any():
            break
        o = s_data + (at(s_data + 2 + 2 * i, sel) | (at(s_data + 3 + 2 * i, sel) << 8))
        isvc = at(o, sel)
        bad = live & (o + 4 > s_lim)
        bad |= live & s_req & ((isvc >= 0x80) | np.isin(isvc, _CIP_DEEP))
        bad |= live & s_rsp & ((isvc < 0x80) | np.isin(isvc & 0x7F, _CIP_DEEP) | ~np.isin(at(o + 2, sel), (0, 6)))
        s_good &= ~bad
        s_inner = np.where(live, hash_keys((s_inner, isvc.astype(np.uint64))), s_inner)
    good[sel] = s_good
    inner = np.zeros(n, np.uint64)
    inner[sel] = s_inner
    return msp_req & good, msp_rsp & good, np.where(msp_rsp & good, inner, np.uint64(0))


def s7_job_ack(p, plen, from_client, l4, sport, dport):
    """One whole TPKT/COTP DT (last unit) S7 PDU: read/write-variable jobs, keyed on their
    parameter block (the items, not the data written); acks keyed on error class/code and the
    function echoed in the parameters."""
    w = p.shape[1]
    ok = (l4 == 6) & (plen >= 19) & (p[:, 0] == 3) & (p[:, 1] == 0) & (_u16(p, 2) == plen)
    ok &= (p[:, 4] == 2) & (p[:, 5] == 0xF0) & ((p[:, 6] & 0x80) != 0) & (p[:, 7] == 0x32)
    ros = p[:, 8]
    par, dat = _u16(p, 13), _u16(p, 15)
    one = (dport == 102) != (sport == 102)
    request = np.where(one, dport == 102, from_client)
    job = ok & request & (ros == 1) & (plen == 17 + par + dat) & np.isin(p[:, 17], (0x04, 0x05)) \
        & (17 + par <= w)
    ack = ok & ~request & np.isin(ros, (2, 3)) & (plen == 19 + par + dat) & (plen >= 21) \
        & np.isin(p[:, 19], (0x04, 0x05))
    pos = np.arange(w)[None, :]
    keep = job[:, None] & (pos >= 17) & (pos < (17 + par)[:, None])
    key = hash_keys((_col(request), _col(ros), _bytes_hash(p, keep),
                     _col(np.where(ack, (p[:, 17].astype(np.int64) << 16) | (p[:, 18].astype(np.int64) << 8)
                                   | p[:, 19], 0))))
    return job | ack, key


def tls_app_data(p, plen, from_client, l4, sport, dport):
    ok = (l4 == 6) & (plen >= 6) & (p[:, 0] == 0x17) & (p[:, 1] == 3) & (p[:, 2] <= 4)
    ok &= plen == 5 + _u16(p, 3)
    key = hash_keys((_col(from_client), _col(p[:, 1]), _col(p[:, 2])))
    return ok, key


def cip_io(p, plen, from_client, l4, sport, dport):
    ok = (l4 == 17) & ((sport == 2222) | (dport == 2222)) & (plen >= 18)
    ok &= (_le16(p, 0) == 2) & (_le16(p, 2) == 0x8002) & (_le16(p, 4) == 8) & (_le16(p, 14) == 0xB1)
    ok &= plen == 18 + _le16(p, 16)
    conn = _col(p[:, 6]) | (_col(p[:, 7]) << np.uint64(8)) | (_col(p[:, 8]) << np.uint64(16)) \
        | (_col(p[:, 9]) << np.uint64(24))
    key = hash_keys((_col(from_client), conn, _col(plen)))
    return ok, key


def dnp3_poll(p, plen, from_client, l4, sport, dport):
    """One whole link frame carrying a single-fragment read (1), response (129) or confirm (0).
    The key covers every byte but the CRCs, the FCB bit and the transport/application
    sequence numbers."""
    ok = (plen >= 15) & (p[:, 0] == 0x05) & (p[:, 1] == 0x64) & (p[:, 2] >= 5)
    user = p[:, 2].astype(np.int64) - 5
    ok &= plen == 10 + user + 2 * ((user + 15) // 16)
    ok &= ((p[:, 3] & 0x4F) == 0x43) | ((p[:, 3] & 0x4F) == 0x44)   # primary user data
    ok &= (p[:, 10] & 0xC0) == 0xC0                           # transport FIR and FIN
    fc = p[:, 12]
    ok &= np.isin(fc, (0, 1, 129))
    pos = np.arange(p.shape[1])[None, :]
    in_data = pos >= 10
    crc = (pos == 8) | (pos == 9) | (in_data & (((pos - 10) % 18) >= 16))
    keep = (pos < plen[:, None]) & ~crc
    m = p.copy()
    m[:, 3] &= 0xDF                    # FCB
    m[:, 10] &= 0xC0                   # transport sequence
    m[:, 11] &= 0xF0                   # application sequence
    key = hash_keys((_col(from_client), _col(plen), _bytes_hash(m, keep)))
    return ok, key


SHORT = 24


def short_payload(p, plen, from_client, l4, sport, dport):
    """Any protocol: a short payload (keep-alives, empty data units, acks at the application
    layer) keyed on all its bytes. Learning still decides whether replaying it is exact."""
    ok = (plen > 0) & (plen <= SHORT)
    pos = np.arange(p.shape[1])[None, :]
    key = hash_keys((_col(from_client), _col(plen), _bytes_hash(p, pos < plen[:, None])))
    return ok, key


# module NAME -> (recogniser, payload bytes it needs)
RECOGNISERS = {
    "modbus": (modbus, HEAD),
    "enip": (enip_cip, ENIP_HEAD),
    "s7comm": (s7_job_ack, 128),
    "tls": (tls_app_data, 8),
    "dnp3": (dnp3_poll, DNP3_HEAD),
}
# CIP implicit I/O may be owned by the EtherNet/IP module or a CIP one
IO_MODULES = ("enip", "cip")


def recognise(arr: np.ndarray, names: list[str | None], mod: np.ndarray, pay_off: np.ndarray,
              pay_len: np.ndarray, from_client: np.ndarray, l4: np.ndarray, sport: np.ndarray,
              dport: np.ndarray, replay_ok: list[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(routine mask, routine key) for delivered packets; mod is each packet's module index.
    Modules that declare ROUTINE_REPLAY = False (their output depends on the whole
    conversation, e.g. keystrokes or login attempts) get no routine packets."""
    n = len(mod)
    routine = np.zeros(n, bool)
    key = np.zeros(n, np.uint64)
    for mi in np.unique(mod).tolist():
        name = names[mi] if mi >= 0 else None
        if replay_ok is not None and mi >= 0 and not replay_ok[mi]:
            continue
        entry = RECOGNISERS.get(name)
        sel = np.flatnonzero(mod == mi)
        fns = []
        if entry is not None:
            fns.append(entry)
        if name in IO_MODULES:
            fns.append((cip_io, 24))
        if name is not None:
            fns.append((short_payload, SHORT))
        for fn, width in fns:
            if not len(sel):
                break
            p = gather(arr, pay_off[sel], width)
            ok, k = fn(p, pay_len[sel], from_client[sel], l4[sel], sport[sel], dport[sel])
            hit = sel[ok]
            routine[hit] = True
            key[hit] = k[ok] ^ np.uint64(zlib.crc32(fn.__name__.encode()))
            sel = sel[~ok]
    return routine, key
