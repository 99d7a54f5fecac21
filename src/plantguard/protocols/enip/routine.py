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
from plantguard.util.arrays import SPAN_SPLIT, col, hash_keys, le16
from plantguard.util.rowhash import at, kernel, mix, recogniser, seed, span_hash_row

# CIP services left to the deep tier: Identity-capable reads (their replies give identity
# through request pairing), Multiple Service Packet and Unconnected Send (wrappers).
_CIP_DEEP = (0x01, 0x03, 0x0E, MULTIPLE_SERVICE_PACKET, UNCONNECTED_SEND)
_CPF = ENCAP.size + SEND_DATA.size          # the CPF item count of SendRRData / SendUnitData
_ITEM1 = _CPF + 2                           # the first item's header (an address item)
_MIN_PDU = _ITEM1 + 2 * CPF_ITEM.size + 4   # null address item, data item, 4 bytes of CIP
MSP_MAX = 32  # inner messages looked at; larger packets stay deep


@recogniser
def enip_cip_routine(buf, base, width, plen, from_client, l4, sport, dport):
    """SendRRData / SendUnitData with exactly one CIP message. Requests key on the service and
    path (and the PCCC command and function for Execute PCCC); replies on service and status.
    Multiple Service Packet: requests key on the whole message; replies on the inner services
    when every inner reply succeeded."""
    return _run(_cip_rows, buf, base, width, plen, from_client, l4, sport, dport)


def _run(rows_kernel, buf, base, width, plen, from_client, l4, sport, dport):
    ok = np.empty(len(base), bool)
    key = np.empty(len(base), np.uint64)
    rows_kernel(buf, np.asarray(base, np.int64), width, np.asarray(plen, np.int64), np.asarray(from_client, np.bool_),
                np.asarray(sport, np.int64), np.asarray(dport, np.int64), np.asarray(l4, np.int64),
                min(SPAN_SPLIT, width), ok, key)
    return ok, key


_E, _I = ENCAP.offset, CPF_ITEM.offset
_ENCAP, _ITEM = ENCAP.size, CPF_ITEM.size     # plain ints: the row kernel reads them as constants


@kernel
def _le16(buf, o, w, j):
    return at(buf, o, w, j) | (at(buf, o, w, j + 1) << 8)


@kernel
def _deep_service(s):
    return s == 0x01 or s == 0x03 or s == 0x0E or s == MULTIPLE_SERVICE_PACKET or s == UNCONNECTED_SEND


@kernel
def _cip_row(buf, o, w, b, plen, client, sport, dport, l4, split):
    """(recognised, key) of enip_cip_routine for the encapsulation PDU of plen bytes at column b
    of a row (b = 0: the whole segment)."""
    room = w - b                       # the row's bytes from the PDU on
    lim = min(plen, room)
    cmd = _le16(buf, o, w, b + _E.command)
    ok = l4 == 6 and plen >= _MIN_PDU and plen == _ENCAP + _le16(buf, o, w, b + _E.length) \
        and (cmd == SEND_RR_DATA or cmd == SEND_UNIT_DATA) and _le16(buf, o, w, b + _E.status) == 0 \
        and _le16(buf, o, w, b + _E.status + 2) == 0 and _le16(buf, o, w, b + _CPF) == 2
    t1, len1 = _le16(buf, o, w, b + _ITEM1 + _I.type), _le16(buf, o, w, b + _ITEM1 + _I.length)
    ok = ok and ((t1 == ITEM_NULL and len1 == 0) or (t1 == ITEM_CONNECTED_ADDRESS and len1 == 4))
    i2 = _ITEM1 + _ITEM + len1
    t2, len2 = _le16(buf, o, w, b + i2), _le16(buf, o, w, b + i2 + 2)
    ok = ok and ((t2 == ITEM_UNCONNECTED_DATA and t1 == ITEM_NULL)
                 or (t2 == ITEM_CONNECTED_DATA and t1 == ITEM_CONNECTED_ADDRESS))
    ok = ok and plen == i2 + _ITEM + len2
    # the CIP message (after the sequence count in connected data)
    cip = i2 + _ITEM + (2 if t2 == ITEM_CONNECTED_DATA else 0)
    ok = ok and cip + 4 <= lim
    if not ok:
        return False, np.uint64(0)
    svc = at(buf, o, w, b + cip)
    request = (dport == ENCAP_PORT) if (dport == ENCAP_PORT) != (sport == ENCAP_PORT) else client
    path_end = cip + 2 + 2 * at(buf, o, w, b + cip + 1)
    status = at(buf, o, w, b + cip + 2)
    req = request and svc < 0x80 and not _deep_service(svc) and path_end + 8 <= lim
    rsp = (not request) and svc >= 0x80 and not _deep_service(svc & 0x7F) and (status == 0 or status == 6)
    # Execute PCCC: the command and function bytes after the requestor id
    rl = at(buf, o, w, b + path_end)
    valid = rl >= 7 and path_end + rl + 5 <= plen
    req = req and (svc != EXECUTE_PCCC or not valid or path_end + rl + 5 <= room)
    pccc = 0
    if req and svc == EXECUTE_PCCC:
        pccc = (rl << 24) | (np.int64(valid) << 16)
        if valid:
            pccc |= (at(buf, o, w, b + path_end + rl) << 8) | at(buf, o, w, b + path_end + rl + 4)
    # Multiple Service Packet
    msp_req = request and svc == MULTIPLE_SERVICE_PACKET and plen <= room
    msp_rsp = (not request) and svc == (MULTIPLE_SERVICE_PACKET | 0x80) and status == 0
    inner = np.uint64(0)
    if msp_req or msp_rsp:
        data = path_end if msp_req else cip + 4 + 2 * at(buf, o, w, b + cip + 3)
        count = _le16(buf, o, w, b + data)
        good = count >= 1 and count <= MSP_MAX
        for k in range(MSP_MAX):
            if not good or k >= count:
                break
            mo = data + _le16(buf, o, w, b + data + 2 + 2 * k)     # the inner message
            isvc = at(buf, o, w, b + mo)
            inner_status = at(buf, o, w, b + mo + 2)
            bad_req = msp_req and (isvc >= 0x80 or _deep_service(isvc))
            bad_rsp = msp_rsp and (isvc < 0x80 or _deep_service(isvc & 0x7F)
                                   or not (inner_status == 0 or inner_status == 6))
            good = not (mo + 4 > lim or bad_req or bad_rsp)
            inner = mix(mix(seed(), inner), isvc)
        msp_req, msp_rsp = msp_req and good, msp_rsp and good
        if not msp_rsp:
            inner = np.uint64(0)
    end = plen if msp_req else (path_end if req else 0)
    reply = (status | (at(buf, o, w, b + cip + 3) << 8)) if rsp else 0
    key = mix(mix(mix(mix(mix(mix(mix(seed(), request), cmd), svc), pccc), span_hash_row(buf, o, w, b + cip, b + end, split)),
                  reply), inner)
    return req or rsp or msp_req or msp_rsp, key


@kernel
def _cip_rows(buf, base, w, plen, from_client, sport, dport, l4, split, ok_out, key_out):
    for i in range(len(base)):
        ok_out[i], key_out[i] = _cip_row(buf, base[i], w, 0, plen[i], from_client[i], sport[i], dport[i], l4[i], split)


PIPELINED = 16          # encapsulation PDUs in one segment the pipelined recogniser looks at
PIPELINED_WIDTH = 1536  # bytes of the segment it reads: a full Ethernet frame's payload


@recogniser
def enip_pipelined_routine(buf, base, width, plen, from_client, l4, sport, dport):
    """Several whole encapsulation PDUs in one segment (a scanner pipelining its SendUnitData
    reads, a PLC its replies), each one enip_cip_routine takes on its own and all inside the
    matrix; the key chains their keys. Runs on the rows the single-PDU rules left."""
    return _run(_pipelined_rows, buf, base, width, plen, from_client, l4, sport, dport)


@kernel
def _pipelined_rows(buf, base, w, plen, from_client, sport, dport, l4, split, ok_out, key_out):
    for i in range(len(base)):
        o = base[i]
        ok = l4[i] == 6
        done = False
        off = 0
        key = np.uint64(0)
        for _ in range(PIPELINED):
            if not ok or done:
                break
            size = _ENCAP + _le16(buf, o, w, off + _E.length)
            if off + size > min(plen[i], w):
                ok = False
                break
            m, k = _cip_row(buf, o, w, off, size, from_client[i], sport[i], dport[i], l4[i], split)
            if not m:
                ok = False
                break
            key = mix(mix(seed(), key), k)
            off += size
            done = off == plen[i]
        ok_out[i] = ok and done
        key_out[i] = key


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
