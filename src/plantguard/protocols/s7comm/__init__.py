"""Siemens S7comm and S7comm-plus over ISO-on-TCP (TPKT + COTP, TCP 102).

Observations: service (once per flow and protocol, with the COTP TSAPs when the connection
request was seen); operation per S7 job and user-data request and per S7comm-plus request
(category from the function: read/write variables, block upload/download and PI services,
PLC stop, SZL reads, clock, password); error for rejected jobs and user-data replies; identity
from SZL 0x0011 (order number, firmware) and 0x001C (PLC name, module, serial, plant id,
copyright) replies, reassembled when the reply comes in several user-data fragments.

One module per layer: cotp (TPKT, COTP, TSAPs, the service observation), s7 (S7comm classic),
szl (SZL requests, reassembly and identity), s7plus (S7comm-plus), routine (array recogniser).
This module decodes a packet, reassembles COTP DT fragments and hands each S7 PDU to
s7._observe_s7 or s7plus._observe_s7plus.
"""
from __future__ import annotations

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import tcp_pdus
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.s7comm import s7, s7plus
from plantguard.protocols.s7comm.cotp import (
    COTP_CC,
    COTP_CR,
    COTP_DT,
    COTP_TYPES,
    MAX_COTP_REASSEMBLY,
    MAX_PDUS_PER_SEGMENT,
    MAX_TPKT,
    MIN_TPKT,
    NAME,
    S7_PORT,
    TPKT,
    TPKT_VERSION,
    Cotp,
    frame_len,
    is_request,
    parse_cotp,
    s7_tsap,
    tsap_text,
)
from plantguard.protocols.s7comm.routine import (
    s7_job_ack_routine,
    s7_pipelined_routine,
    s7plus_routine,
)
from plantguard.protocols.s7comm.s7 import (
    ACK,
    ACK_DATA,
    FUNCTIONS,
    JOB,
    PI_SERVICES,
    ROSCTR,
    S7_PROTOCOL,
    UD_SUBFUNCTIONS,
    USERDATA,
    S7Pdu,
    block_filename,
    describe_job,
    describe_userdata,
    parse_s7,
    pi_service,
    plc_stop_name,
    upload_fields,
    userdata_name,
)
from plantguard.protocols.s7comm.s7plus import (
    S7P_FUNCTIONS,
    S7P_OPCODES,
    S7P_PROTOCOL,
    S7PlusPdu,
    parse_s7plus,
)
from plantguard.protocols.s7comm.szl import (
    SZL_RETURN,
    identity_from_szl,
    szl_reply_header,
    szl_request,
)

__all__ = ["ACK", "ACK_DATA", "COTP_TYPES", "FUNCTIONS", "JOB", "NAME", "PI_SERVICES", "ROSCTR", "S7P_FUNCTIONS",
           "S7P_OPCODES", "S7_PORT", "SPEC", "SZL_RETURN", "UD_SUBFUNCTIONS", "USERDATA", "Cotp", "S7Pdu",
           "S7PlusPdu", "block_filename", "decode", "describe_job", "describe_userdata", "frame_len",
           "identity_from_szl", "is_request", "parse_cotp", "parse_s7", "parse_s7plus", "pi_service",
           "plc_stop_name", "s7_job_ack_routine", "s7_pipelined_routine", "signature", "szl_reply_header", "szl_request",
           "upload_fields", "userdata_name"]


def signature(payload: bytes) -> bool:
    """TPKT + COTP whose user data is S7comm (0x32) or S7comm-plus (0x72), or a COTP
    connection request/confirm with S7 TSAPs (rack/slot style or 'SIMATIC-...')."""
    if len(payload) < MIN_TPKT:
        return False
    version, reserved, length = TPKT.struct.unpack_from(payload, 0)
    if version != TPKT_VERSION or reserved != 0 or length < MIN_TPKT:
        return False
    cotp = parse_cotp(payload[TPKT.size:length])
    if cotp is None:
        return False
    if cotp.code == COTP_DT:
        return bool(cotp.payload) and cotp.payload[0] in (S7_PROTOCOL, S7P_PROTOCOL)
    if cotp.code in (COTP_CR, COTP_CC):
        # MMS (IEC 61850) uses TSAPs 0x00nn; its confirm also echoes 0x0200, which alone looks S7
        tsaps = cotp.tsaps.values()
        return any(s7_tsap(t) for t in tsaps) and not any(len(t) == 2 and t[0] == 0 for t in tsaps)
    return False


def decode(pkt: Packet) -> list[Observation]:
    out: list[Observation] = []
    request = is_request(pkt)
    for raw in tcp_pdus(pkt, frame_len, MAX_TPKT, MAX_PDUS_PER_SEGMENT):
        cotp = parse_cotp(raw[TPKT.size:])
        if cotp is not None:
            out.extend(_observe_cotp(pkt, cotp, request))
    return out


def _observe_cotp(pkt: Packet, cotp: Cotp, request: bool) -> list[Observation]:
    st = pkt.state
    if cotp.code == COTP_CR and request:
        st["tsaps"] = {k: tsap_text(v) for k, v in cotp.tsaps.items()}
        return []
    if cotp.code != COTP_DT:
        return []
    # reassemble an S7 PDU sent in several DT fragments (EOT on the last)
    key = "cotp_c2s" if request else "cotp_s2c"
    if not cotp.eot:
        buf = st.get(key, b"") + cotp.payload
        st[key] = buf if len(buf) <= MAX_COTP_REASSEMBLY else b""
        return []
    payload = st.pop(key, b"") + cotp.payload
    if not payload:
        return []
    if payload[0] == S7_PROTOCOL:
        pdu = parse_s7(payload)
        return s7._observe_s7(pkt, pdu, request) if pdu is not None else []
    if payload[0] == S7P_PROTOCOL:
        plus = parse_s7plus(payload, st, request)
        return s7plus._observe_s7plus(pkt, plus, request) if plus is not None else []
    return []


SPEC = ProtocolSpec(
    name=NAME, title="S7comm, S7comm-plus", layer="industrial",
    decode=decode, signature=signature,
    tcp_ports=(S7_PORT,),
    # second passes on what the first rules left: S7comm-plus notifications past 128 bytes, and
    # several jobs or acks in one segment
    routine=(Routine(s7_job_ack_routine, 128, transport=6), Routine(s7plus_routine, 128, transport=6), Routine(s7plus_routine, 512, transport=6),
             Routine(s7_pipelined_routine, 512, transport=6)),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    server_role="plc",
    observes=("error", "identity", "operation", "service"),
)
