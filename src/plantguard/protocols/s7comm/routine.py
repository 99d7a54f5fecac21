"""Routine recognition for S7comm (capture/routine.py calls this on whole chunks, one row per
packet): read/write-variable jobs and their acks in one whole TPKT / COTP DT. The key must cover
every field the decoder reports for such a packet.

The recogniser is declared in the package's SPEC and reports the package as its module (as
numpy's public functions report `numpy`): it is the protocol's, defined here beside it."""
from __future__ import annotations

import numpy as np

from plantguard.protocols.s7comm.cotp import (
    COTP_DT_HEADER,
    EOT,
    S7_PORT,
    TPKT,
    TPKT_VERSION,
)
from plantguard.protocols.s7comm.s7 import (
    ACK,
    ACK_DATA,
    JOB,
    S7_ACK_HEADER,
    S7_HEADER,
    S7_PROTOCOL,
)
from plantguard.protocols.s7comm.s7plus import (
    CREATE_OBJECT,
    INTEGRITY_DIGEST,
    INTEGRITY_SIZE,
    NOTIFICATION,
    REQUEST,
    S7P_FRAME,
    S7P_HEADER,
    S7P_PROTOCOL,
    S7P_REQUEST,
)
from plantguard.util.arrays import bytes_at, bytes_hash, col, hash_keys, u16

_DT = TPKT.size                              # the COTP DT header
_S7 = TPKT.size + COTP_DT_HEADER.size        # the S7 header
_JOB_PARAM = _S7 + S7_HEADER.size            # parameters of a job
_ACK_PARAM = _S7 + S7_ACK_HEADER.size        # parameters of an ack (after error class / code)
_VAR_FUNCTIONS = (0x04, 0x05)                # Read Variable, Write Variable


def s7_job_ack_routine(p, plen, from_client, l4, sport, dport):
    """One whole TPKT/COTP DT (last unit) S7 PDU: read/write-variable jobs, keyed on their
    parameter block (the items, not the data written); acks keyed on error class/code and the
    function echoed in the parameters."""
    w = p.shape[1]
    t, c, h = TPKT.offset, COTP_DT_HEADER.offset, S7_ACK_HEADER.offset
    ok = (l4 == 6) & (plen >= _ACK_PARAM) & (p[:, t.version] == TPKT_VERSION) & (p[:, t.reserved] == 0) \
        & (u16(p, t.length) == plen)
    ok &= (p[:, _DT + c.length] == COTP_DT_HEADER.size - 1) & (p[:, _DT + c.pdu_type] == 0xF0) \
        & ((p[:, _DT + c.tpdu_nr] & EOT) != 0) & (p[:, _S7 + h.protocol] == S7_PROTOCOL)
    ros = p[:, _S7 + h.rosctr]
    par, dat = u16(p, _S7 + h.param_length), u16(p, _S7 + h.data_length)
    one = (dport == S7_PORT) != (sport == S7_PORT)
    request = np.where(one, dport == S7_PORT, from_client)
    job = ok & request & (ros == JOB) & (plen == _JOB_PARAM + par + dat) & np.isin(p[:, _JOB_PARAM], _VAR_FUNCTIONS) \
        & (_JOB_PARAM + par <= w)
    ack = ok & ~request & np.isin(ros, (ACK, ACK_DATA)) & (plen == _ACK_PARAM + par + dat) & (plen >= _ACK_PARAM + 2) \
        & np.isin(p[:, _ACK_PARAM], _VAR_FUNCTIONS)
    pos = np.arange(w)[None, :]
    keep = job[:, None] & (pos >= _JOB_PARAM) & (pos < (_JOB_PARAM + par)[:, None])
    err_class, err_code = p[:, _S7 + h.error_class], p[:, _S7 + h.error_code]
    key = hash_keys((col(request), col(ros), bytes_hash(p, keep),
                     col(np.where(ack, (err_class.astype(np.int64) << 16) | (err_code.astype(np.int64) << 8)
                                   | p[:, _ACK_PARAM], 0))))
    return job | ack, key


PIPELINED = 8          # TPKTs in one segment the pipelined recogniser looks at
PDU_WIDTH = 128        # bytes of each handed to the single-PDU recogniser (as its own rule reads)


def s7_pipelined_routine(p, plen, from_client, l4, sport, dport):
    """Several whole TPKTs in one segment (a client pipelining its read jobs, a PLC its acks),
    each one that s7_job_ack_routine takes on its own, or an empty COTP DT that is not the last
    unit (it adds nothing to the PDU being reassembled); the key chains their keys. Runs on the
    rows the single-PDU rules left."""
    n, w = p.shape
    c = COTP_DT_HEADER.offset
    ok = l4 == 6
    done = np.zeros(n, bool)
    off = np.zeros(n, np.int64)
    key = np.zeros(n, np.uint64)
    for _ in range(PIPELINED):
        live = ok & ~done
        if not live.any():
            break
        v = bytes_at(p, off, PDU_WIDTH)
        tlen = u16(v, TPKT.offset.length)
        # the PDU lies in the segment, and what the single-PDU rule reads of it in the matrix
        ok &= ~live | ((tlen >= _S7) & (off + tlen <= plen) & (off + np.minimum(tlen, PDU_WIDTH) <= w))
        live &= ok
        m, k = s7_job_ack_routine(v, tlen, from_client, l4, sport, dport)
        empty = (tlen == _S7) & (v[:, TPKT.offset.version] == TPKT_VERSION) & (v[:, TPKT.offset.reserved] == 0) \
            & (v[:, _DT + c.length] == COTP_DT_HEADER.size - 1) \
            & (v[:, _DT + c.pdu_type] == 0xF0) & ((v[:, _DT + c.tpdu_nr] & EOT) == 0)
        k = np.where(empty, np.uint64(1), k)
        m |= empty
        ok &= ~live | m
        live &= ok
        key = np.where(live, hash_keys((key, k)), key)
        off = np.where(live, off + tlen, off)
        done |= live & (off == plen)
    return ok & done, key


def s7plus_routine(p, plen, from_client, l4, sport, dport):
    """One whole S7comm-plus message in one TPKT / COTP DT (last unit): header, data, and the
    trailer. Requests keyed on version, function and session id (not the sequence number, nor a
    V2/V3 integrity digest); responses other than Create Object's (which names the PLC) keyed on
    version and function; the PLC's notifications on their version."""
    w = p.shape[1]
    t, c, h = TPKT.offset, COTP_DT_HEADER.offset, S7P_HEADER.offset
    ok = (l4 == 6) & (plen >= _S7 + S7P_HEADER.size) & (p[:, t.version] == TPKT_VERSION) & (p[:, t.reserved] == 0) \
        & (u16(p, t.length) == plen)
    ok &= (p[:, _DT + c.length] == COTP_DT_HEADER.size - 1) & (p[:, _DT + c.pdu_type] == 0xF0) \
        & ((p[:, _DT + c.tpdu_nr] & EOT) != 0) & (p[:, _S7 + h.protocol] == S7P_PROTOCOL)
    version = p[:, _S7 + h.version].astype(np.int64)
    body = _S7 + S7P_HEADER.size
    end = body + u16(p, _S7 + h.data_length)                       # where the trailer starts
    ok &= plen == end + S7P_HEADER.size
    trailer = bytes_at(p, end, S7P_HEADER.size)
    ok &= (end + S7P_HEADER.size <= w) & (trailer[:, 0] == S7P_PROTOCOL) & (trailer[:, 2] == 0) & (trailer[:, 3] == 0)
    digest = np.isin(version, (2, 3)) & (p[:, body] == INTEGRITY_DIGEST)
    off = body + np.where(digest, INTEGRITY_SIZE, 0)        # as parse_s7plus reads it
    f = S7P_REQUEST.offset
    v = bytes_at(p, off, S7P_REQUEST.size)
    opcode = v[:, f.opcode].astype(np.int64)
    function = u16(v, f.function)
    session = (u16(v, f.session).astype(np.uint64) << np.uint64(16)) | u16(v, f.session + 2).astype(np.uint64)
    one = (dport == S7_PORT) != (sport == S7_PORT)
    request = np.where(one, dport == S7_PORT, from_client)
    req = ok & request & (opcode == REQUEST) & (off + S7P_REQUEST.size <= np.minimum(end, w))
    rsp = ok & ~request & np.isin(opcode, (0x32, 0x02)) & (off + S7P_FRAME.size <= np.minimum(end, w)) \
        & (function != CREATE_OBJECT)
    notification = ok & ~request & (opcode == NOTIFICATION)                  # only its version is read
    key = hash_keys((col(request), col(version), col(opcode), col(np.where(notification, 0, function)),
                     np.where(req, session, 0)))
    return req | rsp | notification, key
