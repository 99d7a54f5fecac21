"""The OSI upper layers between COTP and MMS (IEC 61850-8-1's profile): the ISO 8327 session
SPDU (CONNECT / ACCEPT carrying user data in a parameter, GIVE TOKENS + DATA TRANSFER in front
of the data), the ISO 8823 presentation PPDU (CP / CPA type, a SET whose normal-mode parameters
hold the user data; fully-encoded data: a list of PDVs), and ACSE (AARQ / AARE with the MMS
initiate PDU in user-information).

unwrap() gives the MMS PDUs and ACSE facts inside one COTP TSDU. Test tools also send MMS PDUs
straight over COTP (no session, presentation or ACSE); tshark decodes those as MMS and so do we.
Malformed layers give nothing; nothing here raises."""
from __future__ import annotations

from dataclasses import dataclass

from plantguard.protocols._ber import BerError, elements, read_element, to_int, to_oid
from plantguard.protocols.base import printable

# session SPDU identifiers (ISO 8327-1)
SPDU_CONNECT, SPDU_ACCEPT, SPDU_DATA, SPDU_GIVE_TOKENS = 0x0D, 0x0E, 0x01, 0x01
SPDU_FINISH, SPDU_DISCONNECT, SPDU_REFUSE, SPDU_ABORT, SPDU_ABORT_ACCEPT = 0x09, 0x0A, 0x0C, 0x19, 0x1A
SPDU_PLEASE_TOKENS = 0x02
WITH_USER_DATA = frozenset({SPDU_CONNECT, SPDU_ACCEPT, SPDU_FINISH, SPDU_DISCONNECT, SPDU_REFUSE, SPDU_ABORT})
SESSION_USER_DATA, EXTENDED_USER_DATA = 0xC1, 0xC2
MAX_SPDU_PARAMS = 32

APPLICATION, CONTEXT = 0x40, 0x80
PRESENTATION_SET = 0x31                 # CP-type / CPA-PPDU: SET
FULLY_ENCODED = 1                       # [APPLICATION 1] fully-encoded-data
NORMAL_MODE = 2                         # [2] normal-mode-parameters
AARQ, AARE, RLRQ, RLRE, ABRT = 0, 1, 2, 3, 4   # ACSE APDUs: [APPLICATION n]
ACSE_NAMES = {AARQ: "AARQ", AARE: "AARE", RLRQ: "RLRQ", RLRE: "RLRE", ABRT: "ABRT"}
AARE_RESULTS = {0: "accepted", 1: "rejected (permanent)", 2: "rejected (transient)"}
USER_INFORMATION, AARE_RESULT = 30, 2
MECHANISM_NAME, AUTHENTICATION_VALUE = 11, 12     # AARQ: [11] mechanism-name, [12] authentication-value
PASSWORD_MECHANISM = "2.2.3.1"                   # ISO 8650 password authentication (IEC 61850-8-1)
MAX_PDVS = 8
# MMS PDUs are context-class [0]..[13]: constructed 0xA0-0xAD, primitive cancel / conclude
MMS_FIRST_BYTES = frozenset(range(0xA0, 0xAE)) | {0x85, 0x86, 0x8B, 0x8C}


@dataclass(slots=True)
class Acse:
    apdu: int                  # AARQ, AARE, ...
    result: int | None = None  # AARE result (0 accepted)
    mechanism: str | None = None   # AARQ mechanism-name OID
    password: str | None = None    # AARQ authentication-value charstring: a password in clear


def unwrap(tsdu: bytes) -> tuple[list[bytes], list[Acse]]:
    """(MMS PDUs, ACSE APDUs) in one COTP TSDU."""
    if not tsdu:
        return [], []
    try:
        if tsdu[0] in MMS_FIRST_BYTES:
            return [tsdu], []
        user = session_user_data(tsdu)
        if user is None:
            return [], []
        return presentation(user)
    except (BerError, IndexError, ValueError):
        return [], []


def session_user_data(b: bytes) -> bytes | None:
    """The presentation bytes an SPDU (or a GIVE TOKENS + DATA TRANSFER pair) carries."""
    si, start, end = _spdu(b, 0)
    if si in (SPDU_GIVE_TOKENS, SPDU_PLEASE_TOKENS) and end < len(b):
        # category 0 SPDU, then the DATA TRANSFER whose user information is the rest
        si2, _s2, end2 = _spdu(b, end)
        return b[end2:] if si2 == SPDU_DATA else None
    if si not in WITH_USER_DATA:
        return None
    off = start
    for _ in range(MAX_SPDU_PARAMS):
        if off >= end:
            break
        code, ps, pe = session_unit(b, off, end)
        if code in (SESSION_USER_DATA, EXTENDED_USER_DATA):
            return b[ps:pe]
        off = pe
    return None


def _spdu(b: bytes, off: int) -> tuple[int, int, int]:
    """(SI, parameters start, parameters end) of the SPDU at off."""
    si, ps, pe = session_unit(b, off, len(b))
    return si, ps, pe


def session_unit(b: bytes, off: int, end: int) -> tuple[int, int, int]:
    """(code, value start, value end) of an SPDU or a PI / PGI unit (length 0xFF: 2 more bytes)."""
    if off + 2 > end:
        raise ValueError("truncated session unit")
    code, n = b[off], b[off + 1]
    off += 2
    if n == 0xFF:
        if off + 2 > end:
            raise ValueError("truncated session length")
        n = int.from_bytes(b[off:off + 2], "big")
        off += 2
    if off + n > end:
        raise ValueError("session unit beyond buffer")
    return code, off, off + n


def presentation(b: bytes) -> tuple[list[bytes], list[Acse]]:
    cls, cons, n, s, e = read_element(b, 0)
    if (cls, cons, n) == (0, True, 17):           # SET: CP-type / CPA-PPDU
        for ccls, ccons, cn, cs, ce in elements(b, s, e, 16):
            if ccls == CONTEXT and ccons and cn == NORMAL_MODE:
                for ucls, ucons, un, us, ue in elements(b, cs, ce, 32):
                    if ucls == APPLICATION and ucons and un == FULLY_ENCODED:
                        return _pdvs(b, us, ue)
        return [], []
    if (cls, cons, n) == (APPLICATION, True, FULLY_ENCODED):
        return _pdvs(b, s, e)
    return [], []


def _pdvs(b: bytes, s: int, e: int) -> tuple[list[bytes], list[Acse]]:
    mms: list[bytes] = []
    acse: list[Acse] = []
    for cls, cons, n, ps, pe in elements(b, s, e, MAX_PDVS):
        if (cls, cons, n) != (0, True, 16):
            continue
        for vcls, vcons, vn, vs, ve in elements(b, ps, pe, 4):
            if vcls == CONTEXT and vcons and vn == 0:        # single-ASN1-type
                _value(b[vs:ve], mms, acse)
    return mms, acse


def _value(v: bytes, mms: list, acse: list) -> None:
    if not v:
        return
    if v[0] in MMS_FIRST_BYTES:
        mms.append(v)
        return
    cls, cons, n, s, e = read_element(v, 0)
    if cls != APPLICATION or not cons or n not in ACSE_NAMES:
        return
    apdu = Acse(n)
    acse.append(apdu)
    for ccls, ccons, cn, cs, ce in elements(v, s, e, 32):
        if n == AARE and ccls == CONTEXT and cn == AARE_RESULT and ccons:
            for _r in elements(v, cs, ce, 1):
                if _r[3] < _r[4]:
                    apdu.result = to_int(v[_r[3]:_r[4]])
        elif n == AARQ and ccls == CONTEXT and cn == MECHANISM_NAME and not ccons and ce > cs:
            apdu.mechanism = to_oid(v[cs:ce])
        elif n == AARQ and ccls == CONTEXT and cn == AUTHENTICATION_VALUE and ccons:
            for acls, acons, an, as_, ae in elements(v, cs, ce, 1):
                if acls == CONTEXT and an == 0 and not acons:          # charstring
                    apdu.password = printable(v[as_:ae], 128)
        elif ccls == CONTEXT and cn == USER_INFORMATION and ccons:
            for xcls, xcons, xn, xs, xe in elements(v, cs, ce, 4):    # EXTERNAL
                if (xcls, xn) != (0, 8):
                    continue
                for ecls, econs, en, es, ee in elements(v, xs, xe, 6):
                    if ecls == CONTEXT and econs and en == 0 and ee > es:   # single-ASN1-type
                        mms.append(v[es:ee])
