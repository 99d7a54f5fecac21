"""OPC UA binary (UA TCP / UA Secure Conversation) on TCP 4840 and on any port by signature.

Messages: an 8-byte header (type HEL / ACK / ERR / RHE / OPN / MSG / CLO, chunk type F / C / A,
size), then per type: Hello (endpoint URL), OpenSecureChannel (asymmetric security header with
the security policy URI; body with the security mode when the policy is None), MSG / CLO
(symmetric security header, sequence header, then a service request or response whose type is
given by a NodeId). Multi-chunk messages are reassembled per request id.

Observations: service for the server; session (security mode and policy per channel,
authentication type from ActivateSession); identity (application name, application and product
URIs of both sides; for the server also the endpoints it offers, from GetEndpoints /
CreateSession, as `endpoints`: url, security_mode, policy, user_tokens); credential for
user-name tokens (clear-text when not encrypted), X.509, issued and anonymous tokens, with
the server's verdict; operation per service request; error for ERR messages and Bad results.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols.base import StreamBuffer, printable

NAME = "opcua"

MESSAGE_TYPES = (b"HEL", b"ACK", b"ERR", b"RHE", b"OPN", b"MSG", b"CLO")
CHUNK_TYPES = (b"F", b"C", b"A")
MAX_MESSAGE = 1 << 24          # a larger chunk size is not believable
MAX_REASSEMBLED = 1 << 20      # body of a multi-chunk message
MAX_MESSAGES_PER_SEGMENT = 256
MAX_ARRAY = 1024               # elements read from any array
BUFFER_CAP = 1 << 21
NONE_POLICY = "http://opcfoundation.org/UA/SecurityPolicy#None"
SECURITY_MODES = {0: "Invalid", 1: "None", 2: "Sign", 3: "SignAndEncrypt"}
TOKEN_TYPES = {0: "anonymous", 1: "username", 2: "certificate", 3: "issued"}
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


class Malformed(ValueError):
    pass


# --- primitive decoding ---------------------------------------------------------------------

class Reader:
    __slots__ = ("b", "off")

    def __init__(self, b: bytes, off: int = 0):
        self.b, self.off = b, off

    def take(self, n: int) -> bytes:
        if n < 0 or self.off + n > len(self.b):
            raise Malformed("past end")
        out = self.b[self.off:self.off + n]
        self.off += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def i32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def bytestring(self) -> bytes | None:
        n = self.i32()
        return None if n < 0 else self.take(n)

    def string(self) -> str | None:
        raw = self.bytestring()
        return None if raw is None else raw.decode("utf-8", "replace")

    def array(self, item) -> list:
        n = self.i32()
        if n < 0:
            return []
        if n > MAX_ARRAY:
            raise Malformed("array too long")
        return [item() for _ in range(n)]

    def node_id(self) -> str:
        enc = self.u8()
        kind = enc & 0x3F
        if kind == 0:
            text = f"i={self.u8()}"
        elif kind == 1:
            ns = self.u8()
            text = f"ns={ns};i={self.u16()}" if ns else f"i={self.u16()}"
        elif kind == 2:
            ns = self.u16()
            text = f"ns={ns};i={self.u32()}" if ns else f"i={self.u32()}"
        elif kind == 3:
            ns = self.u16()
            text = f"ns={ns};s={self.string()}"
        elif kind == 4:
            ns = self.u16()
            text = f"ns={ns};g={self.take(16).hex()}"
        elif kind == 5:
            ns = self.u16()
            raw = self.bytestring() or b""
            text = f"ns={ns};b={raw[:32].hex()}"
        else:
            raise Malformed("node id encoding")
        if enc & 0x80:
            self.string()          # namespace URI
        if enc & 0x40:
            self.u32()             # server index
        return text

    def numeric_node_id(self) -> int | None:
        """A NodeId that should be a numeric id in namespace 0 (service and token type ids)."""
        start = self.off
        text = self.node_id()
        if text.startswith("i="):
            return int(text[2:])
        self.off = max(self.off, start)
        return None

    def localized_text(self) -> str | None:
        mask = self.u8()
        if mask & 0x01:
            self.string()
        return self.string() if mask & 0x02 else None

    def extension_object(self) -> tuple[int | None, bytes | None]:
        type_id = self.numeric_node_id()
        enc = self.u8()
        body = self.bytestring() if enc in (1, 2) else None
        return type_id, body

    def diagnostic_info(self, depth: int = 0) -> None:
        mask = self.u8()
        for bit in (0x01, 0x02, 0x04, 0x08):
            if mask & bit:
                self.i32()
        if mask & 0x10:
            self.string()
        if mask & 0x20:
            self.u32()
        if mask & 0x40:
            if depth > 4:
                raise Malformed("diagnostic info nesting")
            self.diagnostic_info(depth + 1)


def request_header(r: Reader) -> int:
    """Skips a RequestHeader; returns its request handle."""
    r.node_id()                    # authentication token
    r.take(8)                      # timestamp
    handle = r.u32()
    r.u32()                        # return diagnostics
    r.string()                     # audit entry id
    r.u32()                        # timeout hint
    r.extension_object()
    return handle


def response_header(r: Reader) -> tuple[int, int]:
    """Skips a ResponseHeader; returns (request handle, service result)."""
    r.take(8)
    handle, result = r.u32(), r.u32()
    r.diagnostic_info()
    r.array(r.string)
    r.extension_object()
    return handle, result


def application_description(r: Reader) -> dict:
    app = {"application_uri": r.string(), "product_uri": r.string(), "application_name": r.localized_text(),
           "application_type": r.u32()}
    r.string()                     # gateway server URI
    r.string()                     # discovery profile URI
    app["discovery_urls"] = r.array(r.string)
    return app


def endpoint_description(r: Reader) -> dict:
    ep = {"endpoint_url": r.string()}
    ep["server"] = application_description(r)
    r.bytestring()                 # server certificate
    ep["security_mode"] = SECURITY_MODES.get(r.u32(), "Invalid")
    ep["policy"] = r.string()

    def token_policy():
        policy_id, ttype = r.string(), r.u32()
        r.string()
        r.string()
        r.string()
        return TOKEN_TYPES.get(ttype, str(ttype))
    ep["user_tokens"] = r.array(token_policy)
    ep["transport_profile"] = r.string()
    ep["security_level"] = r.u8()
    return ep


# --- messages -------------------------------------------------------------------------------

@dataclass
class UaMessage:
    msg_type: str                 # "HEL", "MSG", ...
    chunk: str                    # "F", "C", "A"
    size: int
    endpoint_url: str | None = None
    error: int | None = None
    reason: str | None = None
    channel_id: int | None = None
    policy: str | None = None
    request_id: int | None = None
    body: bytes | None = None     # service body (from the TypeId on), when readable


def parse_message(raw: bytes) -> UaMessage:
    """One chunk: header plus what is readable without the channel's keys."""
    m = UaMessage(raw[:3].decode("ascii"), chr(raw[3]), struct.unpack_from("<I", raw, 4)[0])
    r = Reader(raw, 8)
    if m.msg_type in ("HEL", "ACK"):
        r.take(20)
        if m.msg_type == "HEL":
            m.endpoint_url = r.string()
    elif m.msg_type == "ERR":
        m.error, m.reason = r.u32(), r.string()
    elif m.msg_type == "OPN":
        m.channel_id = r.u32()
        m.policy = r.string()
        r.bytestring()             # sender certificate
        r.bytestring()             # receiver certificate thumbprint
        if m.policy == NONE_POLICY or m.policy is None:
            r.u32()
            m.request_id = r.u32()
            m.body = raw[r.off:]
    elif m.msg_type in ("MSG", "CLO"):
        m.channel_id = r.u32()
        r.u32()                    # token id
        r.u32()                    # sequence number (clear unless the channel encrypts)
        m.request_id = r.u32()
        m.body = raw[r.off:]
    return m


def signature(payload: bytes) -> bool:
    if len(payload) < 8 or payload[:3] not in MESSAGE_TYPES or payload[3:4] not in CHUNK_TYPES:
        return False
    size = struct.unpack_from("<I", payload, 4)[0]
    return 8 <= size <= MAX_MESSAGE and (payload[:3] != b"HEL" or size >= 32)


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
    r = Reader(body)
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


def _first(r: Reader, item) -> tuple[int, object]:
    """(count, first element) of an array without reading the rest."""
    n = r.i32()
    return (max(n, 0), item() if n > 0 else None)


def _request_body(svc: Service, r: Reader) -> None:
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
        r = Reader(body)
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


def _response_body(svc: Service, r: Reader) -> None:
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


# --- stream handling ------------------------------------------------------------------------

def _stream(pkt: Packet) -> StreamBuffer:
    key = "c2s" if pkt.from_client else "s2c"
    sb = pkt.state.get(key)
    if sb is None:
        sb = pkt.state[key] = StreamBuffer(BUFFER_CAP)
    if sb.next_seq is not None and pkt.seq != sb.next_seq \
            and (pkt.seq - sb.next_seq) & 0xFFFFFFFF < 0x80000000:
        sb.data.clear()              # lost bytes: resynchronise on the next message header
        pkt.state.pop(key + "_chunks", None)
    if sb.overflow:
        sb.data.clear()
        sb.overflow = False
    sb.feed(pkt.seq, pkt.payload)
    return sb


def split_messages(buf: bytearray) -> list[bytes]:
    """Complete chunks off the front of a stream; skips to the next plausible header when the
    buffer does not start with one (mid-stream start or after a gap)."""
    out = []
    for _ in range(MAX_MESSAGES_PER_SEGMENT):
        if len(buf) < 8:
            break
        if not signature(bytes(buf[:8])):
            nxt = _find_header(buf)
            if nxt < 0:
                del buf[:max(0, len(buf) - 7)]
                break
            del buf[:nxt]
            continue
        size = struct.unpack_from("<I", buf, 4)[0]
        if len(buf) < size:
            break
        out.append(bytes(buf[:size]))
        del buf[:size]
    return out


def _find_header(buf: bytearray) -> int:
    best = -1
    for t in (b"MSGF", b"MSGC", b"OPNF", b"CLOF", b"HELF", b"ACKF", b"ERRF"):
        i = buf.find(t, 1)
        while i >= 0 and not signature(bytes(buf[i:i + 8])) and len(buf) - i >= 8:
            i = buf.find(t, i + 1)
        if i >= 0 and (best < 0 or i < best):
            best = i
    return best


def _reassemble(pkt: Packet, m: UaMessage) -> bytes | None:
    """The whole body of a message once its final chunk is in."""
    if m.body is None:
        return None
    if m.chunk == "F" and not pkt.state.get(("c2s" if pkt.from_client else "s2c") + "_chunks"):
        return m.body
    chunks = pkt.state.setdefault(("c2s" if pkt.from_client else "s2c") + "_chunks", {})
    if m.chunk == "A":
        chunks.pop(m.request_id, None)
        return None
    part = chunks.get(m.request_id)
    if part is None:
        if len(chunks) >= 16:
            chunks.pop(next(iter(chunks)))
        part = chunks[m.request_id] = bytearray()
    part += m.body
    if len(part) > MAX_REASSEMBLED:
        chunks.pop(m.request_id, None)
        return None
    if m.chunk == "C":
        return None
    chunks.pop(m.request_id, None)
    return bytes(part)


# --- observations ---------------------------------------------------------------------------

def decode(pkt: Packet) -> list[Observation]:
    sb = _stream(pkt)
    out: list[Observation] = []
    for raw in split_messages(sb.data):
        try:
            m = parse_message(raw)
        except Malformed:
            continue
        out.extend(_message(pkt, m))
    return out


def _once(pkt: Packet, token) -> bool:
    seen = pkt.state.setdefault("seen", set())
    if token in seen or len(seen) > 512:
        return False
    seen.add(token)
    return True


def _server_subject(pkt: Packet) -> str:
    return "dst" if pkt.from_client else "src"


def _message(pkt: Packet, m: UaMessage) -> list[Observation]:
    st = pkt.state
    out: list[Observation] = []
    if _once(pkt, "service"):
        out.append(pkt.observe("service", NAME, subject=_server_subject(pkt), name=NAME))
    if m.msg_type == "HEL":
        st["endpoint_url"] = m.endpoint_url
        return out
    if m.msg_type == "ERR":
        out.append(pkt.observe("error", NAME, code=f"0x{m.error:08x}",
                               name=f"ERR {status_name(m.error)}: {printable((m.reason or '').encode())}"))
        return out
    if m.msg_type == "OPN" and pkt.from_client:
        st["policy"] = m.policy
    body = _reassemble(pkt, m)
    if m.msg_type == "OPN" and pkt.from_client and m.policy not in (None, NONE_POLICY):
        # The body is encrypted with the server's key: the policy is all there is to read.
        out.append(_session(pkt, security_mode=None, policy=m.policy, encrypted=True))
        st["secured"] = True
        return out
    if body is None:
        return out
    try:
        svc = parse_service(body)
    except Malformed:
        svc = None
    if m.msg_type == "MSG" and st.get("secured") and _once(pkt, "secured-msg"):
        # Under a secured channel a readable type id means Sign only; ciphertext means SignAndEncrypt.
        if _readable(body):
            out.append(_session(pkt, security_mode="Sign", policy=st.get("policy"), encrypted=False))
        else:
            out.append(_session(pkt, security_mode="SignAndEncrypt", policy=st.get("policy"), encrypted=True))
    if svc is None:
        return out
    if svc.is_request:
        out.extend(_request(pkt, svc))
    else:
        out.extend(_response(pkt, svc))
    return out


def _readable(body: bytes) -> bool:
    """A body that starts with a namespace-0 numeric type id in four-byte or numeric encoding."""
    if len(body) < 4 or body[0] not in (0x01, 0x02):
        return False
    try:
        type_id = Reader(body).numeric_node_id()
    except Malformed:
        return False
    return type_id is not None and 0 < type_id < 40000


def _session(pkt: Packet, **data) -> Observation:
    url = pkt.state.get("endpoint_url")
    if url:
        data["endpoint_url"] = url
    return pkt.observe("session", NAME, subject=_server_subject(pkt), **data)


def _request(pkt: Packet, svc: Service) -> list[Observation]:
    st, info = pkt.state, svc.info
    out: list[Observation] = []
    for handle in [h for h in st.get("pending", {}) if h != svc.handle]:
        # the client went on without a visible ActivateSession reply: report without a verdict
        *header, cred = st["pending"].pop(handle)
        out.append(Observation("credential", NAME, *header, "dst", cred))
    if svc.name == "OpenSecureChannel":
        mode = info.get("security_mode", "None")
        st["mode"] = mode
        out.append(_session(pkt, security_mode=mode, policy=st.get("policy") or NONE_POLICY,
                            encrypted=mode == "SignAndEncrypt"))
        return out
    if svc.name == "CloseSecureChannel":
        return out
    detail = svc.name
    if info.get("count"):
        what = "parent" if svc.name == "AddNodes" else "first"
        detail += f" {info['count']} item(s), {what} {info['first']}"
    elif info.get("endpoint_url"):
        detail += f" {info['endpoint_url']}"
    out.append(pkt.observe("operation", NAME, category=SERVICES[svc.type_id][1], code=svc.type_id,
                           name=svc.name, detail=detail))
    if svc.name == "CreateSession" and info.get("client"):
        out.extend(_app_identity(pkt, "src", info["client"]))
    if svc.name == "ActivateSession" and "token" in info:
        out.extend(_activate(pkt, svc))
    return out


def _activate(pkt: Packet, svc: Service) -> list[Observation]:
    token = svc.info["token"]
    kind = token["kind"]
    auth = kind if kind in TOKEN_TYPES.values() else "other"
    out = [_session(pkt, auth=auth, security_mode=pkt.state.get("mode"), policy=pkt.state.get("policy"))]
    secret_type = {"anonymous": "anonymous", "username": "password", "certificate": "certificate",
                   "issued": "token"}.get(kind)
    if secret_type is None:
        return out
    password = token.get("password")
    cred = {"user": token.get("user"), "password": password, "secret_type": secret_type,
            "cleartext": password is not None or (kind == "issued" and not token.get("encrypted", True)),
            "result": None}
    pend = pkt.state.setdefault("pending", {})
    if len(pend) < 16:
        pend[svc.handle] = (pkt.capture, pkt.frame, pkt.ts, pkt.src, pkt.dst, pkt.src_mac, pkt.dst_mac,
                            pkt.l4, pkt.sport, pkt.dport, pkt.vlan, cred)
    else:
        out.append(pkt.observe("credential", NAME, subject="dst", **cred))
    return out


def _response(pkt: Packet, svc: Service) -> list[Observation]:
    out: list[Observation] = []
    if svc.result:
        out.append(pkt.observe("error", NAME, code=f"0x{svc.result:08x}",
                               name=f"{svc.name}: {status_name(svc.result)}"))
    if svc.name == "ActivateSession" or (svc.name == "ServiceFault" and svc.handle in pkt.state.get("pending", {})):
        pending = pkt.state.get("pending", {}).pop(svc.handle, None)
        if pending:
            *header, cred = pending
            if svc.result == 0:
                cred["result"] = "success"
            elif svc.result in AUTH_FAILURES:
                cred["result"] = "failure"
            out.append(Observation("credential", NAME, *header, "dst", cred))
    endpoints = svc.info.get("endpoints", ())[:32]
    if endpoints:
        # What the server offers is part of what it is (not a session: nobody uses it yet).
        offered = sorted(({"url": ep["endpoint_url"], "security_mode": ep["security_mode"], "policy": ep["policy"],
                           "user_tokens": sorted(set(ep["user_tokens"]))} for ep in endpoints),
                         key=lambda e: (str(e["url"]), e["security_mode"], str(e["policy"])))
        out.extend(_app_identity(pkt, "src", endpoints[0]["server"], endpoints=offered))
    return out


def _app_identity(pkt: Packet, subject: str, app: dict, **extra) -> list[Observation]:
    data = {}
    if app.get("application_name"):
        data["product"] = app["application_name"]
    if app.get("application_uri"):
        data["application_uri"] = app["application_uri"]
    if app.get("product_uri"):
        data["product_uri"] = app["product_uri"]
    data.update(extra)
    if not data or not _once(pkt, ("app", subject, repr(sorted(data.items())))):
        return []
    return [pkt.observe("identity", NAME, subject=subject, **data)]


SPEC = ProtocolSpec(
    name=NAME, title="OPC UA binary", layer="industrial",
    decode=decode, signature=signature,
    tcp_ports=(4840,),
    any_port=True,
    traits=frozenset({"industrial", "unauthenticated-control"}),
    server_role="gateway",
    observes=("credential", "error", "identity", "operation", "service", "session"),
)
