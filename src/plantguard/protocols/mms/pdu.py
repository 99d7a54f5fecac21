"""MMS PDUs (ISO 9506-2, BER): which MMSpdu choice, the invoke id, the confirmed service, the
object names a PDU carries (domain-specific names, program invocation and domain identifiers,
file names), the Identify response (vendor, model, revision), the initiate parameters, and the
error of error and reject PDUs. parse_pdu never raises: malformed BER is None.

Everything is bounded: names are at most MAX_NAMES per PDU of at most MAX_NAME characters, the
tree walk visits at most MAX_NODES elements and goes at most MAX_DEPTH deep."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from plantguard.protocols._ber import BerError, elements, read_element, to_int, to_uint
from plantguard.protocols.base import printable
from plantguard.protocols.mms.services import (
    CANCEL_ERROR,
    CANCEL_REQUEST,
    CANCEL_RESPONSE,
    CONCLUDE_ERROR,
    CONFIRMED_ERROR,
    CONFIRMED_REQUEST,
    CONFIRMED_RESPONSE,
    IDENTIFY,
    INITIATE_ERROR,
    INITIATE_REQUEST,
    INITIATE_RESPONSE,
    PDUS,
    REJECT,
    UNCONFIRMED,
)

CONTEXT, UNIVERSAL = 0x80, 0x00
VISIBLE_STRING, GRAPHIC_STRING, SEQUENCE = 26, 25, 16
MAX_NAMES = 16
MAX_NAME = 128
MAX_NODES = 512
MAX_DEPTH = 16
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,127}$")


@dataclass(slots=True)
class MmsPdu:
    kind: int                            # MMSpdu choice (services.PDUS)
    invoke_id: int | None = None
    service: int | None = None           # confirmed service choice, or unconfirmed service
    names: list = field(default_factory=list)        # (domainId, itemId) of domain-specific ObjectNames
    identifiers: list = field(default_factory=list)  # identifiers the service names (program, domain)
    files: list = field(default_factory=list)        # file names (GraphicString parts joined by '/')
    identity: dict = field(default_factory=dict)     # Identify response: vendor, model, revision
    error: tuple | None = None           # (error class, code) of a ServiceError / (reason, code) of a reject
    params: dict = field(default_factory=dict)       # initiate: max_pdu, version, parameter_cbb

    @property
    def pdu_name(self) -> str:
        return PDUS.get(self.kind, f"MMS PDU [{self.kind}]")


def parse_pdu(b: bytes) -> MmsPdu | None:
    """The MMS PDU that `b` starts with (context-class tag 0..13); None when it is not one."""
    try:
        cls, constructed, number, s, e = read_element(b, 0)
    except BerError:
        return None
    if cls != CONTEXT or number not in PDUS:
        return None
    pdu = MmsPdu(number)
    try:
        _fill(pdu, b, constructed, s, e)
    except BerError:
        return None
    return pdu


def _fill(pdu: MmsPdu, b: bytes, constructed: bool, s: int, e: int) -> None:
    k = pdu.kind
    if k in (CONFIRMED_REQUEST, CONFIRMED_RESPONSE) and constructed:
        kids = list(elements(b, s, e, 8))
        if not kids or kids[0][:3] != (UNIVERSAL, False, 2):
            raise BerError("no invokeID")
        pdu.invoke_id = to_uint(b[kids[0][3]:kids[0][4]])
        # the service is the first context-class element after the invoke id (a request may
        # carry a listOfModifier SEQUENCE first)
        svc = next((el for el in kids[1:] if el[0] == CONTEXT), None)
        if svc is None:
            return
        pdu.service = svc[2]
        _names(pdu, b, svc)
        if k == CONFIRMED_RESPONSE and pdu.service == IDENTIFY and svc[1]:
            pdu.identity = _identify(b, svc[3], svc[4])
    elif k == CONFIRMED_ERROR and constructed:
        for cls, cons, n, cs, ce in elements(b, s, e, 8):
            if cls == CONTEXT and n == 0 and not cons:
                pdu.invoke_id = to_uint(b[cs:ce])
            elif cls == CONTEXT and n == 2 and cons:
                pdu.error = _service_error(b, cs, ce)
    elif k == CANCEL_ERROR and constructed:
        for cls, cons, n, cs, ce in elements(b, s, e, 8):
            if cls == CONTEXT and n == 0 and not cons:
                pdu.invoke_id = to_uint(b[cs:ce])
            elif cls == CONTEXT and n == 1 and cons:
                pdu.error = _service_error(b, cs, ce)
    elif k in (INITIATE_ERROR, CONCLUDE_ERROR) and constructed:
        pdu.error = _service_error(b, s, e)
    elif k == REJECT and constructed:
        for cls, cons, n, cs, ce in elements(b, s, e, 8):
            if cls != CONTEXT or cons:
                continue
            if n == 0:
                pdu.invoke_id = to_uint(b[cs:ce])
            else:
                pdu.error = (n, to_int(b[cs:ce]))
    elif k == UNCONFIRMED and constructed:
        svc = next((el for el in elements(b, s, e, 8) if el[0] == CONTEXT), None)
        if svc is not None:
            pdu.service = svc[2]
            _names(pdu, b, svc)
    elif k in (INITIATE_REQUEST, INITIATE_RESPONSE) and constructed:
        pdu.params = _initiate(b, s, e)
    elif k in (CANCEL_REQUEST, CANCEL_RESPONSE) and not constructed and e > s:   # the invoke id
        pdu.invoke_id = to_uint(b[s:e])


def _service_error(b: bytes, s: int, e: int) -> tuple | None:
    """(errorClass choice, its code) of a ServiceError."""
    for cls, cons, n, cs, ce in elements(b, s, e, 8):
        if cls == CONTEXT and n == 0 and cons:
            for ccls, _ccons, cn, vs, ve in elements(b, cs, ce, 2):
                if ccls == CONTEXT:
                    return cn, to_int(b[vs:ve]) if ve > vs else 0
    return None


def _identify(b: bytes, s: int, e: int) -> dict:
    out = {}
    for cls, cons, n, cs, ce in elements(b, s, e, 8):
        if cls == CONTEXT and not cons and n in (0, 1, 2):
            text = printable(b[cs:ce], MAX_NAME)
            if text:
                out[("vendor", "model", "revision")[n]] = text
    return out


def _initiate(b: bytes, s: int, e: int) -> dict:
    out = {}
    for cls, cons, n, cs, ce in elements(b, s, e, 8):
        if cls != CONTEXT:
            continue
        if n == 0 and not cons and ce > cs:
            out["max_pdu"] = to_int(b[cs:ce])
        elif n == 4 and cons:
            for dcls, dcons, dn, ds, de in elements(b, cs, ce, 8):
                if dcls == CONTEXT and dn == 0 and not dcons and de > ds:
                    out["version"] = to_int(b[ds:de])
                elif dcls == CONTEXT and dn == 1 and not dcons and de > ds:
                    out["parameter_cbb"] = b[ds + 1:de].hex()   # after the unused-bits byte
    return out


def _names(pdu: MmsPdu, b: bytes, svc: tuple) -> None:
    """Object names inside a service element, in order: domain-specific ObjectNames (a [1]
    holding two VisibleStrings), file names (SEQUENCE OF GraphicString), and the identifier the
    service itself is (deleteDomain [36] IMPLICIT Identifier) or names first ([0] programName)."""
    _cls, cons, _n, s, e = svc
    if not cons:
        text = _identifier(b[s:e])
        if text:
            pdu.identifiers.append(text)
        return
    stack = [(s, e, 0)]
    nodes = 0
    while stack and nodes < MAX_NODES:
        s, e, depth = stack.pop()
        kids = list(elements(b, s, e, 64))
        nodes += len(kids)
        for cls, kcons, n, ks, ke in reversed(kids):
            if kcons and depth < MAX_DEPTH:
                stack.append((ks, ke, depth + 1))
        for cls, kcons, n, ks, ke in kids:
            if cls == CONTEXT and kcons:
                pair = _object_name(b, ks, ke, n)
                if pair and len(pdu.names) < MAX_NAMES:
                    pdu.names.append(pair)
            elif cls == UNIVERSAL and n == SEQUENCE and kcons:
                parts = _file_name(b, ks, ke)
                if parts and len(pdu.files) < MAX_NAMES:
                    pdu.files.append(parts)
            elif depth == 0 and cls == CONTEXT and n == 0 and not kcons:
                text = _identifier(b[ks:ke])
                if text:
                    pdu.identifiers.append(text)


def _object_name(b: bytes, s: int, e: int, n: int) -> tuple | None:
    """(domain, item) of an ObjectName: domain-specific is [1] holding two VisibleStrings;
    vmd-specific [0] / aa-specific [2] Identifier are primitive, so they show as the one child
    of the explicit tag around the ObjectName (VariableSpecification name [0], variableListName
    [1], semaphoreName [0]): domain "" then."""
    kids = list(elements(b, s, e, 3))
    if n == 1 and len(kids) == 2 and all(k[:3] == (UNIVERSAL, False, VISIBLE_STRING) for k in kids):
        domain, item = (printable(b[k[3]:k[4]], MAX_NAME) for k in kids)
        return (domain, item) if domain or item else None
    if len(kids) == 1 and kids[0][0] == CONTEXT and not kids[0][1] and kids[0][2] in (0, 2):
        text = _identifier(b[kids[0][3]:kids[0][4]])
        return ("", text) if text else None
    return None


def _file_name(b: bytes, s: int, e: int) -> str | None:
    kids = list(elements(b, s, e, 8))
    if not kids or not all(k[:3] == (UNIVERSAL, False, GRAPHIC_STRING) for k in kids):
        return None
    return "/".join(printable(b[k[3]:k[4]], MAX_NAME) for k in kids)[:MAX_NAME] or None


def _identifier(raw: bytes) -> str | None:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if _IDENTIFIER.match(text) else None
