"""Routine recognition for EtherNet/IP (capture/routine.py calls these on whole chunks, one row
per packet): CIP requests and replies in SendRRData / SendUnitData that carry exactly one message,
and implicit I/O. The key must cover every field the decoder reports for such a packet.

The recognisers are declared in the package's SPEC and report the package as their module (as
numpy's public functions report `numpy`): they are the protocol's, defined here beside it."""
from __future__ import annotations

import numpy as np

from plantguard.protocols.enip.cip import MULTIPLE_SERVICE_PACKET, UNCONNECTED_SEND
from plantguard.protocols.enip.encap import (
    CPF_ITEM,
    ENCAP,
    ENCAP_PORT,
    IO_PORT,
    ITEM_CONNECTED_ADDRESS,
    ITEM_CONNECTED_DATA,
    ITEM_NULL,
    ITEM_SEQUENCED_ADDRESS,
    ITEM_UNCONNECTED_DATA,
    SEND_DATA,
    SEND_RR_DATA,
    SEND_UNIT_DATA,
)
from plantguard.protocols.enip.io import IO_HEAD, SEQUENCED_ADDRESS
from plantguard.protocols.enip.pccc import EXECUTE_PCCC
from plantguard.util.arrays import col, hash_keys, le16, span_hash

# CIP services left to the deep tier: Identity-capable reads (their replies give identity
# through request pairing), Multiple Service Packet and Unconnected Send (wrappers).
_CIP_DEEP = (0x01, 0x03, 0x0E, MULTIPLE_SERVICE_PACKET, UNCONNECTED_SEND)
_CPF = ENCAP.size + SEND_DATA.size          # the CPF item count of SendRRData / SendUnitData
_ITEM1 = _CPF + 2                           # the first item's header (an address item)
_MIN_PDU = _ITEM1 + 2 * CPF_ITEM.size + 4   # null address item, data item, 4 bytes of CIP
MSP_MAX = 32  # inner messages looked at; larger packets stay deep


def enip_cip_routine(p, plen, from_client, l4, sport, dport):
    """SendRRData / SendUnitData with exactly one CIP message. Requests key on the service and
    path (and the PCCC command and function for Execute PCCC); replies on service and status."""
    e = ENCAP.offset
    ok = (l4 == 6) & (plen >= _MIN_PDU) & (plen == ENCAP.size + le16(p, e.length))
    cmd = le16(p, e.command)
    ok &= ((cmd == SEND_RR_DATA) | (cmd == SEND_UNIT_DATA))
    for i in range(e.status, e.status + 4):
        ok &= p[:, i] == 0
    ok &= le16(p, _CPF) == 2
    t1, len1 = le16(p, _ITEM1 + CPF_ITEM.offset.type), le16(p, _ITEM1 + CPF_ITEM.offset.length)
    ok &= ((t1 == ITEM_NULL) & (len1 == 0)) | ((t1 == ITEM_CONNECTED_ADDRESS) & (len1 == 4))
    i2 = _ITEM1 + CPF_ITEM.size + len1
    rows = np.arange(len(p))
    w = p.shape[1]

    def at(i, sub=None):
        return p[rows if sub is None else sub, np.minimum(i, w - 1)].astype(np.int64)

    t2 = at(i2) | (at(i2 + 1) << 8)
    len2 = at(i2 + 2) | (at(i2 + 3) << 8)
    ok &= ((t2 == ITEM_UNCONNECTED_DATA) & (t1 == ITEM_NULL)) | ((t2 == ITEM_CONNECTED_DATA) & (t1 == ITEM_CONNECTED_ADDRESS))
    ok &= plen == i2 + CPF_ITEM.size + len2
    # the CIP message (after the sequence count in connected data): service, path size in
    # words / reply status, extended status size
    cip = i2 + CPF_ITEM.size + np.where(t2 == ITEM_CONNECTED_DATA, 2, 0)
    ok &= cip + 4 <= np.minimum(plen, w)
    svc = at(cip)
    one = (dport == ENCAP_PORT) != (sport == ENCAP_PORT)
    request = np.where(one, dport == ENCAP_PORT, from_client)
    words = at(cip + 1)
    path_end = cip + 2 + 2 * words
    req = ok & request & (svc < 0x80) & ~np.isin(svc, _CIP_DEEP) & (path_end + 8 <= np.minimum(plen, w))
    rsp = ok & ~request & (svc >= 0x80) & ~np.isin(svc & 0x7F, _CIP_DEEP) & np.isin(at(cip + 2), (0, 6))
    # Execute PCCC: the command and function bytes after the requestor id
    d0 = path_end
    rl = at(d0)
    valid = (rl >= 7) & (d0 + rl + 5 <= plen)
    req &= (svc != EXECUTE_PCCC) | ~valid | (d0 + rl + 5 <= w)   # the PCCC bytes keyed lie in the matrix
    pccc = np.where(req & (svc == EXECUTE_PCCC),
                    (rl << 24) | (valid << 16) | np.where(valid, (at(d0 + rl) << 8) | at(d0 + rl + 4), 0), 0)
    # Multiple Service Packet: requests key on the whole message; replies on the inner
    # services when every inner reply succeeded
    msp_req, msp_rsp, inner = _msp(at, ok, request, svc, cip, path_end, plen, w)
    end = np.where(msp_req, plen, np.where(req, path_end, 0))
    key = hash_keys((col(request), col(cmd), col(svc), col(pccc), span_hash(p, cip, end),
                     col(np.where(rsp, at(cip + 2) | (at(cip + 3) << 8), 0)), inner))
    return req | rsp | msp_req | msp_rsp, key


def _msp(at, ok, request, svc, cip, path_end, plen, w):
    n = len(svc)
    msp_req = ok & request & (svc == MULTIPLE_SERVICE_PACKET) & (plen <= w)
    msp_rsp = ok & ~request & (svc == MULTIPLE_SERVICE_PACKET | 0x80) & (at(cip + 2) == 0)
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


def cip_io_routine(p, plen, from_client, l4, sport, dport):
    io = IO_HEAD.offset
    ok = (l4 == 17) & ((sport == IO_PORT) | (dport == IO_PORT)) & (plen >= IO_HEAD.size)
    ok &= (le16(p, io.count) == 2) & (le16(p, io.address_type) == ITEM_SEQUENCED_ADDRESS)
    ok &= (le16(p, io.address_length) == SEQUENCED_ADDRESS.size) & (le16(p, io.data_type) == ITEM_CONNECTED_DATA)
    ok &= plen == IO_HEAD.size + le16(p, io.data_length)
    c = io.connection_id
    conn = col(p[:, c]) | (col(p[:, c + 1]) << np.uint64(8)) | (col(p[:, c + 2]) << np.uint64(16)) \
        | (col(p[:, c + 3]) << np.uint64(24))
    key = hash_keys((col(from_client), conn, col(plen)))
    return ok, key
