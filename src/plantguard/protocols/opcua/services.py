"""OPC UA services: which service a MSG / OPN / CLO body carries (its binary encoding NodeId),
the parts of requests and responses worth reporting (security mode, endpoints, session names,
identity tokens, the first node of reads and writes) and the names of status codes."""
from __future__ import annotations

from dataclasses import dataclass, field

from plantguard.protocols.opcua.encoding import (
    SECURITY_MODES,
    Malformed,
    UaReader,
    application_description,
    endpoint_description,
    request_header,
    response_header,
)

# ExtensionObject binary encodings of the identity tokens
TOKEN_ENCODINGS = {321: "anonymous", 324: "username", 327: "certificate", 940: "issued"}

# Service request binary encoding id -> (name, category); the response id is request id + 3.
SERVICES = {
    422: ("FindServers", "diagnostic"), 12208: ("FindServersOnNetwork", "diagnostic"),
    428: ("GetEndpoints", "diagnostic"), 437: ("RegisterServer", "config"),
    12211: ("RegisterServer2", "config"), 446: ("OpenSecureChannel", "auth"),
    452: ("CloseSecureChannel", "other"), 461: ("CreateSession", "auth"),
    467: ("ActivateSession", "auth"), 473: ("CloseSession", "auth"), 479: ("Cancel", "other"),
    488: ("AddNodes", "config"), 494: ("AddReferences", "config"), 500: ("DeleteNodes", "config"),
    506: ("DeleteReferences", "config"), 527: ("Browse", "read"), 533: ("BrowseNext", "read"),
    554: ("TranslateBrowsePathsToNodeIds", "read"), 560: ("RegisterNodes", "read"),
    566: ("UnregisterNodes", "read"), 615: ("QueryFirst", "read"), 621: ("QueryNext", "read"),
    631: ("Read", "read"), 664: ("HistoryRead", "read"), 673: ("Write", "write"),
    700: ("HistoryUpdate", "write"), 712: ("Call", "other"),
    751: ("CreateMonitoredItems", "read"), 763: ("ModifyMonitoredItems", "read"),
    769: ("SetMonitoringMode", "read"), 775: ("SetTriggering", "read"),
    781: ("DeleteMonitoredItems", "read"), 787: ("CreateSubscription", "read"),
    793: ("ModifySubscription", "read"), 799: ("SetPublishingMode", "read"),
    826: ("Publish", "read"), 832: ("Republish", "read"), 841: ("TransferSubscriptions", "read"),
    847: ("DeleteSubscriptions", "read"),
}
RESPONSES = {req + 3: name for req, (name, _cat) in SERVICES.items()}
SERVICE_FAULT = 397

STATUS_NAMES = {
    0x00000000: "Good", 0x80010000: "BadUnexpectedError", 0x80020000: "BadInternalError",
    0x80050000: "BadCommunicationError", 0x80060000: "BadEncodingError", 0x80070000: "BadDecodingError",
    0x800A0000: "BadTimeout", 0x800B0000: "BadServiceUnsupported", 0x800E0000: "BadServerHalted",
    0x80100000: "BadTooManyOperations", 0x80130000: "BadSecurityChecksFailed",
    0x801F0000: "BadUserAccessDenied", 0x80200000: "BadIdentityTokenInvalid",
    0x80210000: "BadIdentityTokenRejected", 0x80220000: "BadSecureChannelIdInvalid",
    0x80250000: "BadSessionIdInvalid", 0x80260000: "BadSessionClosed",
    0x80270000: "BadSessionNotActivated", 0x80340000: "BadNodeIdUnknown",
    0x80790000: "BadNoSubscription", 0x807E0000: "BadTcpMessageTypeInvalid",
}
AUTH_FAILURES = frozenset({0x801F0000, 0x80200000, 0x80210000, 0x80130000})


@dataclass
class Service:
    type_id: int
    name: str
    is_request: bool
    handle: int | None = None
    result: int | None = None
    info: dict = field(default_factory=dict)


def parse_service(body: bytes) -> Service | None:
    """The service carried by a MSG / OPN / CLO body; None when it is not a known service
    (an encrypted body reads as garbage and lands here)."""
    r = UaReader(body)
    type_id = r.numeric_node_id()
    if type_id is None:
        return None
    if type_id in SERVICES:
        svc = Service(type_id, SERVICES[type_id][0], True)
        svc.handle = request_header(r)
        _request_body(svc, r)
        return svc
    if type_id in RESPONSES or type_id == SERVICE_FAULT:
        svc = Service(type_id, RESPONSES.get(type_id, "ServiceFault"), False)
        svc.handle, svc.result = response_header(r)
        _response_body(svc, r)
        return svc
    return None


def _first(r: UaReader, item) -> tuple[int, object]:
    """(count, first element) of an array without reading the rest."""
    n = r.i32()
    return (max(n, 0), item() if n > 0 else None)


def _request_body(svc: Service, r: UaReader) -> None:
    name, info = svc.name, svc.info
    try:
        if name == "OpenSecureChannel":
            r.u32()
            info["request_type"] = r.u32()
            info["security_mode"] = SECURITY_MODES.get(r.u32(), "Invalid")
        elif name == "GetEndpoints":
            info["endpoint_url"] = r.string()
        elif name == "CreateSession":
            info["client"] = application_description(r)
            r.string()
            info["endpoint_url"] = r.string()
            info["session_name"] = r.string()
        elif name == "ActivateSession":
            r.string()
            r.bytestring()                               # client signature
            r.array(lambda: (r.bytestring(), r.bytestring()))
            r.array(r.string)
            type_id, token = r.extension_object()
            info["token"] = _identity_token(type_id, token)
        elif name in ("Read", "HistoryRead"):
            r.take(8)
            r.u32()
            if name == "HistoryRead":
                r.extension_object()
                r.u8()
            info["count"], info["first"] = _first(r, r.node_id)
        elif name in ("Write", "Browse", "RegisterNodes", "UnregisterNodes", "AddNodes", "DeleteNodes"):
            if name == "Browse":
                r.node_id()
                r.take(8)
                r.u32()
                r.u32()
            info["count"], info["first"] = _first(r, r.node_id)
        elif name == "Call":
            info["count"], first = _first(r, lambda: (r.node_id(), r.node_id()))
            if first:
                info["first"] = f"object {first[0]} method {first[1]}"
    except Malformed:
        pass                                           # the header and type are what matter


def _identity_token(type_id: int | None, body: bytes | None) -> dict:
    kind = TOKEN_ENCODINGS.get(type_id)
    token = {"kind": kind or f"token {type_id}"}
    if body is None:
        return token
    try:
        r = UaReader(body)
        token["policy_id"] = r.string()
        if kind == "username":
            token["user"] = r.string()
            password = r.bytestring()
            algorithm = r.string()
            token["encrypted"] = bool(algorithm)
            token["password"] = None if algorithm or password is None else password.decode("utf-8", "replace")
        elif kind == "issued":
            r.bytestring()
            token["encrypted"] = bool(r.string())
    except Malformed:
        pass
    return token


def _response_body(svc: Service, r: UaReader) -> None:
    try:
        if svc.name == "GetEndpoints":
            svc.info["endpoints"] = r.array(lambda: endpoint_description(r))
        elif svc.name == "CreateSession":
            r.node_id()
            r.node_id()
            r.take(8)
            r.bytestring()
            r.bytestring()
            svc.info["endpoints"] = r.array(lambda: endpoint_description(r))
        elif svc.name == "OpenSecureChannel":
            r.u32()
            svc.info["channel_id"] = r.u32()
    except Malformed:
        pass


def status_name(code: int) -> str:
    return STATUS_NAMES.get(code, f"0x{code:08x}")
