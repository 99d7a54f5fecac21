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
from plantguard.util.arrays import bytes_hash, col, hash_keys, u16

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
