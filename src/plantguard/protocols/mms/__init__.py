"""IEC 61850 MMS: ISO 9506 over the OSI upper layers on ISO-on-TCP (TPKT + COTP, TCP 102),
as IEC 61850-8-1 and ICCP / TASE.2 use it.

Observations: service (once per flow: the COTP TSAPs of the connection request, the MMS version
and PDU size the initiate PDU proposes or grants); operation per confirmed service request
(category from the service: reads, writes, domain downloads as program, program invocation
start / stop / reset / kill and take / relinquish control as control; a write to an IEC 61850
control object, "...$CO$...$Oper", is control), naming the objects it addresses; identity from
Identify responses (vendor, model, revision); error per confirmed / cancel / initiate / conclude
error PDU, per reject PDU and per ACSE association the responder refused; credential when the
association request carries an ACSE password (in clear). MMS has no authentication of its own
and the IED need not ask for one.

One module per layer: stack (session, presentation, ACSE), pdu (MMS BER), services (numbers),
routine (array recogniser for read polling and reports).
TPKT and COTP are S7comm's (s7comm.cotp, by import): TCP 102 carries both, and the signatures
split it (S7's refuses the 2-byte 0x00nn TSAPs MMS stations use, ours every S7 PDU)."""
from __future__ import annotations

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import tcp_pdus
from plantguard.protocols._spec import ProtocolSpec, Routine
from plantguard.protocols.base import once
from plantguard.protocols.mms import stack
from plantguard.protocols.mms.pdu import MmsPdu, parse_pdu
from plantguard.protocols.mms.routine import mms_routine
from plantguard.protocols.mms.services import (
    CONFIRMED_REQUEST,
    CONFIRMED_RESPONSE,
    ERROR_CLASSES,
    INITIATE_REQUEST,
    INITIATE_RESPONSE,
    PDUS,
    REJECT,
    REJECT_REASONS,
    SERVICES,
    WRITE,
    is_control_variable,
    service_name,
)
from plantguard.protocols.s7comm.cotp import (
    COTP_CC,
    COTP_CR,
    COTP_DT,
    MAX_COTP_REASSEMBLY,
    MIN_TPKT,
    TPKT,
    TPKT_VERSION,
    frame_len,
    is_request,
    parse_cotp,
    s7_tsap,
    tsap_text,
)

NAME = "mms"
MMS_PORT = 102
MAX_TPKT = 0xFFFF
MAX_PDUS_PER_SEGMENT = 128
MAX_DETAIL = 256

__all__ = ["NAME", "PDUS", "SERVICES", "SPEC", "MmsPdu", "decode", "describe", "parse_pdu", "signature", "stack"]

# the first byte of a COTP DT's user data: a session SPDU MMS stations send, or a bare MMS PDU
_SESSION_FIRST = frozenset({stack.SPDU_CONNECT, stack.SPDU_ACCEPT, stack.SPDU_GIVE_TOKENS, stack.SPDU_FINISH,
                            stack.SPDU_DISCONNECT, stack.SPDU_REFUSE, stack.SPDU_ABORT, stack.SPDU_ABORT_ACCEPT,
                            stack.SPDU_PLEASE_TOKENS})


def signature(payload: bytes) -> bool:
    """TPKT + COTP: a connection request / confirm with an MMS-style TSAP (2 bytes 0x00nn, or
    one starting 0x00 with no S7 TSAP beside it), or data whose user data is a session SPDU or
    an MMS PDU. Never an S7 PDU (0x32 / 0x72): S7comm owns those."""
    if len(payload) < MIN_TPKT:
        return False
    if payload[0] != TPKT_VERSION:
        return _split_connect(payload)
    version, reserved, length = TPKT.struct.unpack_from(payload, 0)
    if version != TPKT_VERSION or reserved != 0 or length < MIN_TPKT:
        return False
    cotp = parse_cotp(payload[TPKT.size:length])
    if cotp is None:
        return False
    if cotp.code in (COTP_CR, COTP_CC):
        return _mms_tsaps(list(cotp.tsaps.values()))
    if cotp.code != COTP_DT or not cotp.payload:
        return False
    first = cotp.payload[0]
    if first in stack.MMS_FIRST_BYTES:
        return parse_pdu(cotp.payload) is not None or not cotp.eot
    if first in _SESSION_FIRST:
        try:
            if first in (stack.SPDU_GIVE_TOKENS, stack.SPDU_PLEASE_TOKENS):
                return cotp.payload[:4] == b"\x01\x00\x01\x00" or cotp.payload[:2] == b"\x02\x00"
            stack.session_unit(cotp.payload, 0, len(cotp.payload))
            return True
        except ValueError:
            return False
    return False


def _split_connect(payload: bytes) -> bool:
    """A COTP connection request / confirm alone in its segment, its TPKT header sent in the
    segment before (some ICCP stacks write the 4 header bytes first): the TPDU fills the
    payload exactly and carries an MMS-style TSAP. The decoder picks the stream up at the next
    TPKT."""
    if len(payload) < 2 or payload[0] + 1 != len(payload) or payload[1] >> 4 not in (COTP_CR, COTP_CC):
        return False
    cotp = parse_cotp(payload)
    return cotp is not None and _mms_tsaps(list(cotp.tsaps.values()))


def _mms_tsaps(tsaps: list) -> bool:
    if any(len(t) == 2 and t[0] == 0 for t in tsaps):
        return True
    return bool(tsaps) and not any(s7_tsap(t) for t in tsaps) and any(t[:1] == b"\x00" for t in tsaps)


def decode(pkt: Packet) -> list[Observation]:
    out: list[Observation] = []
    request = is_request(pkt)
    for raw in tcp_pdus(pkt, frame_len, MAX_TPKT, MAX_PDUS_PER_SEGMENT):
        cotp = parse_cotp(raw[TPKT.size:])
        if cotp is None:
            continue
        if cotp.code == COTP_CR and request:
            pkt.state["tsaps"] = {k: tsap_text(v) for k, v in cotp.tsaps.items()}
            continue
        if cotp.code != COTP_DT:
            continue
        # an MMS PDU split over COTP DT units (end of TSDU on the last), bounded
        key = "cotp_c2s" if request else "cotp_s2c"
        if not cotp.eot:
            buf = pkt.state.get(key, b"") + cotp.payload
            pkt.state[key] = buf if len(buf) <= MAX_COTP_REASSEMBLY else b""
            continue
        tsdu = pkt.state.pop(key, b"") + cotp.payload
        pdus, acse = stack.unwrap(tsdu)
        for a in acse:
            out.extend(_observe_acse(pkt, a, request))
        for raw_pdu in pdus:
            parsed = parse_pdu(raw_pdu)
            if parsed is not None:
                out.extend(_observe_pdu(pkt, parsed, request))
    return out


def _service(pkt: Packet, subject: str, pdu: MmsPdu) -> list[Observation]:
    if not once(pkt, "service"):
        return []
    data = {"name": NAME}
    if "version" in pdu.params:
        data["protocol_version"] = str(pdu.params["version"])
    if "max_pdu" in pdu.params:
        data["max_pdu"] = pdu.params["max_pdu"]
    if "parameter_cbb" in pdu.params:
        data["parameter_cbb"] = pdu.params["parameter_cbb"]
    for k, v in pkt.state.get("tsaps", {}).items():
        data[f"{k}_tsap"] = v
    return [pkt.observe("service", NAME, subject=subject, **data)]


def _observe_acse(pkt: Packet, a: stack.Acse, request: bool) -> list[Observation]:
    if a.apdu == stack.AARQ and a.password is not None:
        # ACSE password authentication (IEC 61850-8-1): the password crosses in clear. The
        # result is not looked up in the AARE (stateless, so replay stays exact)
        return [pkt.observe("credential", NAME, subject="dst", user=None, password=a.password,
                            secret_type="password", cleartext=True, result=None)]
    if a.apdu == stack.AARE and a.result:
        return [pkt.observe("error", NAME, subject="src", code=a.result,
                            name="association " + stack.AARE_RESULTS.get(a.result, f"result {a.result}"))]
    return []


def _observe_pdu(pkt: Packet, pdu: MmsPdu, request: bool) -> list[Observation]:
    """Observations of one MMS PDU. Which side serves is the initiate's when it is one, else the
    port's (in ICCP both ends send requests: the PDU says request or response, not the port)."""
    server = {INITIATE_REQUEST: "dst", INITIATE_RESPONSE: "src"}.get(pdu.kind, "dst" if request else "src")
    out = _service(pkt, server, pdu)
    if pdu.kind == CONFIRMED_REQUEST and pdu.service is not None:
        name, category, detail = describe(pdu)
        out.append(pkt.observe("operation", NAME, subject="dst", category=category, code=pdu.service,
                               name=name, detail=detail))
    elif pdu.kind == CONFIRMED_RESPONSE and pdu.identity:
        ident = {"vendor": pdu.identity.get("vendor"), "model": pdu.identity.get("model"),
                 "firmware": pdu.identity.get("revision")}
        ident = {k: v for k, v in ident.items() if v}
        if ident:
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
    elif pdu.error is not None:
        out.append(pkt.observe("error", NAME, subject="src", **error_fields(pdu)))
    return out


def error_fields(pdu: MmsPdu) -> dict:
    """code "class/code" and its name, for a ServiceError or a reject reason."""
    n, code = pdu.error
    if pdu.kind == REJECT:
        what, codes = REJECT_REASONS.get(n, (f"reason {n}", {}))
        return {"code": f"{what}/{code}", "name": f"reject {what}: {codes.get(code, f'code {code}')}"}
    what, codes = ERROR_CLASSES.get(n, (f"class {n}", {}))
    data = {"code": f"{what}/{code}", "name": f"{PDUS[pdu.kind]} {what}: {codes.get(code, f'code {code}')}"}
    return data


def describe(pdu: MmsPdu) -> tuple[str, str, str]:
    """(service name, category, detail) of a confirmed service request."""
    code = pdu.service
    name = service_name(code)
    category = SERVICES.get(code, (name, "other"))[1]
    if code == WRITE and any(is_control_variable(item) for _d, item in pdu.names):
        category = "control"
    parts = [f"{d}/{i}" if d else i for d, i in pdu.names[:8]]
    if pdu.identifiers:
        parts.append("name=" + ",".join(pdu.identifiers[:4]))
    if pdu.files:
        parts.append("file=" + ",".join(pdu.files[:4]))
    if len(pdu.names) > 8:
        parts.append(f"+{len(pdu.names) - 8} more")
    return name, category, " ".join(parts)[:MAX_DETAIL]


SPEC = ProtocolSpec(
    name=NAME, title="IEC 61850 MMS", layer="industrial",
    decode=decode, signature=signature,
    tcp_ports=(MMS_PORT,),
    # read polling, its responses and the IED's reports, one whole PDU per segment
    routine=(Routine(mms_routine, 512, transport=6),),
    traits=frozenset({"industrial", "unauthenticated-control", "controller-server"}),
    # an IEC 61850 IED (protection relay, bay controller) or an ICCP peer: a substation field
    # device answering a station or control centre client, as IEC 104 and DNP3 outstations do
    server_role="rtu",
    observes=("credential", "error", "identity", "operation", "service"),
)
