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
from plantguard.util.rowhash import at, kept_hash, kernel, mix, recogniser, seed

_DT = TPKT.size                              # the COTP DT header
_S7 = TPKT.size + COTP_DT_HEADER.size        # the S7 header
_JOB_PARAM = _S7 + S7_HEADER.size            # parameters of a job
_ACK_PARAM = _S7 + S7_ACK_HEADER.size        # parameters of an ack (after error class / code)
_VAR_FUNCTIONS = (0x04, 0x05)                # Read Variable, Write Variable


@recogniser
def s7_job_ack_routine(buf, base, width, plen, from_client, l4, sport, dport):
    """One whole TPKT/COTP DT (last unit) S7 PDU: read/write-variable jobs, keyed on their
    parameter block (the items, not the data written); acks keyed on error class/code and the
    function echoed in the parameters."""
    return _rows(_job_ack_rows, buf, base, width, plen, from_client, l4, sport, dport)


PIPELINED = 8          # TPKTs in one segment the pipelined recogniser looks at
PDU_WIDTH = 128        # bytes of each handed to the single-PDU recogniser (as its own rule reads)


@recogniser
def s7_pipelined_routine(buf, base, width, plen, from_client, l4, sport, dport):
    """Several whole TPKTs in one segment (a client pipelining its read jobs, a PLC its acks),
    each one that s7_job_ack_routine takes on its own, or an empty COTP DT that is not the last
    unit (it adds nothing to the PDU being reassembled); the key chains their keys. Runs on the
    rows the single-PDU rules left."""
    return _rows(_pipelined_rows, buf, base, width, plen, from_client, l4, sport, dport)


def _rows(rows_kernel, buf, base, width, plen, from_client, l4, sport, dport):
    ok = np.empty(len(base), bool)
    key = np.empty(len(base), np.uint64)
    rows_kernel(buf, np.asarray(base, np.int64), width, np.asarray(plen, np.int64), np.asarray(from_client, np.bool_), np.asarray(l4, np.int64),
                np.asarray(sport, np.int64), np.asarray(dport, np.int64), ok, key)
    return ok, key


_T, _C, _H = TPKT.offset, COTP_DT_HEADER.offset, S7_ACK_HEADER.offset
_COTP_LEN = COTP_DT_HEADER.size - 1


@kernel
def _u16(buf, o, w, j):
    return (at(buf, o, w, j) << 8) | at(buf, o, w, j + 1)


@kernel
def _dt(buf, o, w, b):
    """The TPKT and COTP DT header fields both recognisers test (window from column b)."""
    return at(buf, o, w, b + _T.version) == TPKT_VERSION and at(buf, o, w, b + _T.reserved) == 0 \
        and at(buf, o, w, b + _DT + _C.length) == _COTP_LEN and at(buf, o, w, b + _DT + _C.pdu_type) == 0xF0


@kernel
def _pdu(buf, o, w, b, width, plen, client, l4, sport, dport):
    """(recognised, key) of the single-PDU rule on the `width`-byte window of row i from column b
    (clamped as bytes_at clamps), the PDU being plen bytes long."""
    ok = l4 == 6 and plen >= _ACK_PARAM and _dt(buf, o, w, b) and _u16(buf, o, w, b + _T.length) == plen \
        and (at(buf, o, w, b + _DT + _C.tpdu_nr) & EOT) != 0 and at(buf, o, w, b + _S7 + _H.protocol) == S7_PROTOCOL
    ros = at(buf, o, w, b + _S7 + _H.rosctr)
    par, dat = _u16(buf, o, w, b + _S7 + _H.param_length), _u16(buf, o, w, b + _S7 + _H.data_length)
    request = (dport == S7_PORT) if (dport == S7_PORT) != (sport == S7_PORT) else client
    fj, fa = at(buf, o, w, b + _JOB_PARAM), at(buf, o, w, b + _ACK_PARAM)
    job = ok and request and ros == JOB and plen == _JOB_PARAM + par + dat and (fj == 4 or fj == 5) \
        and _JOB_PARAM + par <= width
    ack = ok and (not request) and (ros == ACK or ros == ACK_DATA) and plen == _ACK_PARAM + par + dat \
        and plen >= _ACK_PARAM + 2 and (fa == 4 or fa == 5)
    items = kept_hash(buf, o, w, b, width, _JOB_PARAM, _JOB_PARAM + par) if job else kept_hash(buf, o, w, b, width, 0, 0)
    err = ((at(buf, o, w, b + _S7 + _H.error_class) << 16) | (at(buf, o, w, b + _S7 + _H.error_code) << 8) | fa) if ack else 0
    return job or ack, mix(mix(mix(mix(seed(), request), ros), items), err)


@kernel
def _job_ack_rows(buf, base, w, plen, from_client, l4, sport, dport, ok_out, key_out):
    for i in range(len(base)):
        o = base[i]
        ok_out[i], key_out[i] = _pdu(buf, o, w, 0, w, plen[i], from_client[i], l4[i], sport[i], dport[i])


@kernel
def _pipelined_rows(buf, base, w, plen, from_client, l4, sport, dport, ok_out, key_out):
    for i in range(len(base)):
        o = base[i]
        ok = l4[i] == 6
        done = False
        off = 0
        key = np.uint64(0)
        for _ in range(PIPELINED):
            if not ok or done:
                break
            tlen = _u16(buf, o, w, off + _T.length)
            if not (tlen >= _S7 and off + tlen <= plen[i] and off + min(tlen, PDU_WIDTH) <= w):
                ok = False
                break
            m, k = _pdu(buf, o, w, off, PDU_WIDTH, tlen, from_client[i], l4[i], sport[i], dport[i])
            if tlen == _S7 and _dt(buf, o, w, off) and (at(buf, o, w, off + _DT + _C.tpdu_nr) & EOT) == 0:
                m, k = True, np.uint64(1)   # an empty DT that is not the last unit
            if not m:
                ok = False
                break
            key = mix(mix(seed(), key), k)
            off += tlen
            done = off == plen[i]
        ok_out[i] = ok and done
        key_out[i] = key


@recogniser
def s7plus_routine(buf, base, width, plen, from_client, l4, sport, dport):
    """One whole S7comm-plus message in one TPKT / COTP DT (last unit): header, data, and the
    trailer. Requests keyed on version, function and session id (not the sequence number, nor a
    V2/V3 integrity digest); responses other than Create Object's (which names the PLC) keyed on
    version and function; the PLC's notifications on their version."""
    return _rows(_s7plus_rows, buf, base, width, plen, from_client, l4, sport, dport)


_P, _PQ = S7P_HEADER.offset, S7P_REQUEST.offset
_BODY = _S7 + S7P_HEADER.size                # the S7comm-plus data, after its header
_TRAILER = S7P_HEADER.size                   # the trailer repeats the header's size
_REQ, _FRAME = S7P_REQUEST.size, S7P_FRAME.size


@kernel
def _s7plus_rows(buf, base, w, plen, from_client, l4, sport, dport, ok_out, key_out):
    for i in range(len(base)):
        o, n = base[i], plen[i]
        ok = l4[i] == 6 and n >= _BODY and at(buf, o, w, _T.version) == TPKT_VERSION \
            and at(buf, o, w, _T.reserved) == 0 and _u16(buf, o, w, _T.length) == n \
            and at(buf, o, w, _DT + _C.length) == _COTP_LEN and at(buf, o, w, _DT + _C.pdu_type) == 0xF0 \
            and (at(buf, o, w, _DT + _C.tpdu_nr) & EOT) != 0 and at(buf, o, w, _S7 + _P.protocol) == S7P_PROTOCOL
        version = at(buf, o, w, _S7 + _P.version)
        end = _BODY + _u16(buf, o, w, _S7 + _P.data_length)          # where the trailer starts
        ok = ok and n == end + _TRAILER and end + _TRAILER <= w \
            and at(buf, o, w, end) == S7P_PROTOCOL and at(buf, o, w, end + 2) == 0 and at(buf, o, w, end + 3) == 0
        digest = (version == 2 or version == 3) and at(buf, o, w, _BODY) == INTEGRITY_DIGEST
        off = _BODY + (INTEGRITY_SIZE if digest else 0)             # as parse_s7plus reads it
        opcode = at(buf, o, w, off + _PQ.opcode)
        function = _u16(buf, o, w, off + _PQ.function)
        session = (np.uint64(_u16(buf, o, w, off + _PQ.session)) << np.uint64(16)) \
            | np.uint64(_u16(buf, o, w, off + _PQ.session + 2))
        request = (dport[i] == S7_PORT) if (dport[i] == S7_PORT) != (sport[i] == S7_PORT) else from_client[i]
        req = ok and request and opcode == REQUEST and off + _REQ <= min(end, w)
        rsp = ok and not request and (opcode == 0x32 or opcode == 0x02) and off + _FRAME <= min(end, w) \
            and function != CREATE_OBJECT
        notification = ok and not request and opcode == NOTIFICATION        # only its version is read
        ok_out[i] = req or rsp or notification
        key_out[i] = mix(mix(mix(mix(mix(seed(), request), version), opcode), 0 if notification else function),
                         session if req else np.uint64(0))
