"""One OPC UA connection as plantguard follows it: per-direction stream reassembly, multi-chunk
messages joined per request id, and the observations each message gives (service, session
security and authentication, identities and offered endpoints, credentials with the server's
verdict, operations, errors)."""
from __future__ import annotations

from plantguard.model import Observation, Packet
from plantguard.protocols.base import StreamBuffer, once, printable
from plantguard.protocols.opcua.encoding import (
    NONE_POLICY,
    TOKEN_TYPES,
    Malformed,
    UaMessage,
    UaReader,
)
from plantguard.protocols.opcua.services import (
    AUTH_FAILURES,
    SERVICES,
    Service,
    parse_service,
    status_name,
)

NAME = "opcua"
CHANNEL_REQUESTS = {"OPN": 446, "CLO": 452}    # the one request type each message type carries
REQUEST_TYPES = {0: "Issue", 1: "Renew"}       # OpenSecureChannel SecurityTokenRequestType
MAX_REASSEMBLED = 1 << 20      # body of a multi-chunk message
BUFFER_CAP = 1 << 21


# --- stream handling ------------------------------------------------------------------------

def stream(pkt: Packet) -> StreamBuffer:
    key = "c2s" if pkt.from_client else "s2c"
    sb = pkt.state.get(key)
    if sb is None:
        sb = pkt.state[key] = StreamBuffer(BUFFER_CAP)
    if sb.jumped(pkt.seq):
        sb.data.clear()              # lost bytes: resynchronise on the next message header
        pkt.state.pop(key + "_chunks", None)
    if sb.overflow:
        sb.data.clear()
        sb.overflow = False
    sb.feed(pkt.seq, pkt.payload)
    return sb


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

def _server_subject(pkt: Packet) -> str:
    return "dst" if pkt.from_client else "src"


def message(pkt: Packet, m: UaMessage) -> list[Observation]:
    st = pkt.state
    out: list[Observation] = []
    if once(pkt, "service", limit=512):
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
        if m.chunk == "F":
            out.append(_channel_operation(pkt, m.msg_type, None))
        return out
    if body is None:
        return out
    try:
        svc = parse_service(body)
    except Malformed:
        svc = None
    if m.msg_type in CHANNEL_REQUESTS:
        code = CHANNEL_REQUESTS[m.msg_type]
        if svc is not None and svc.type_id not in (code, code + 3):
            svc = None               # an encrypted CLO body that happens to read as another service
        if svc is not None and svc.is_request:
            out.append(_channel_operation(pkt, m.msg_type, svc))
        elif svc is None and m.msg_type == "CLO" and pkt.from_client:
            out.append(_channel_operation(pkt, m.msg_type, None))
    if m.msg_type == "MSG" and st.get("secured") and once(pkt, "secured-msg", limit=512):
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


def _channel_operation(pkt: Packet, msg_type: str, svc: Service | None) -> Observation:
    """An OpenSecureChannel / CloseSecureChannel request. These message types carry nothing
    else, so an unreadable (encrypted) body from the client still names the request."""
    code = CHANNEL_REQUESTS[msg_type]
    name, category = SERVICES[code]
    detail = name
    if svc is None:
        detail += " (body encrypted)"
    elif "request_type" in svc.info:
        detail += f" {REQUEST_TYPES.get(svc.info['request_type'], svc.info['request_type'])}"
        detail += f", security mode {svc.info.get('security_mode')}"
    return pkt.observe("operation", NAME, category=category, code=code, name=name, detail=detail)


def _readable(body: bytes) -> bool:
    """A body that starts with a namespace-0 numeric type id in four-byte or numeric encoding."""
    if len(body) < 4 or body[0] not in (0x01, 0x02):
        return False
    try:
        type_id = UaReader(body).numeric_node_id()
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
    if not data or not once(pkt, ("app", subject, repr(sorted(data.items()))), limit=512):
        return []
    return [pkt.observe("identity", NAME, subject=subject, **data)]
