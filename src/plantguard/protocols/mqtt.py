"""MQTT 3.1 / 3.1.1 / 5.0 over plain TCP: who logs in with what, and which topics are used.

Observations: service + role "broker" for the server, role "mqtt-client" for the client,
credential (user name / password from CONNECT, result from CONNACK), topic per PUBLISH and
per SUBSCRIBE filter, session (protocol version, never encrypted on this port), the client's
identity from its CONNECT: the client id and the user name (often the device's model and
serial; never the password), and an operation for every control packet the client sends the
broker (CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT, AUTH; code = the control
packet type, as tshark's mqtt.msgtype; detail = the topic of a PUBLISH, the filters of a
SUBSCRIBE). A PUBLISH the broker sends is delivery, not a request: it gives no operation.
"""
from __future__ import annotations

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols.base import StreamBuffer, printable

NAME = "mqtt"

CONNECT, CONNACK, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT, AUTH = 1, 2, 3, 8, 10, 12, 14, 15
PROTOCOL_NAMES = {b"MQTT": "MQTT", b"MQIsdp": "MQIsdp"}
LEVELS = {3: "3.1", 4: "3.1.1", 5: "5.0"}
MAX_PACKET = 1 << 20        # larger packets are skipped, not buffered
MAX_PDUS_PER_SEGMENT = 256  # bounds the work one segment can cause
MAX_TOPICS = 64             # topic filters read from one SUBSCRIBE
BUFFER_CAP = 2 * MAX_PACKET
MAX_DETAIL = 256            # characters of topic text in an operation's detail

# Client -> broker control packets: (name, category). Categories follow what the other decoders
# use for the same kind of act: a PUBLISH sets data (write); a SUBSCRIBE / UNSUBSCRIBE manages
# what the client reads (read, as BACnet's SubscribeCOV); session open / close and keep-alive
# are "other" (as EtherNet/IP RegisterSession and Modbus Keep Alive); AUTH is an authentication
# exchange (auth).
REQUESTS = {CONNECT: ("Connect", "other"), PUBLISH: ("Publish", "write"), SUBSCRIBE: ("Subscribe", "read"),
            UNSUBSCRIBE: ("Unsubscribe", "read"), PINGREQ: ("Ping Request", "other"),
            DISCONNECT: ("Disconnect", "other"), AUTH: ("Authentication Exchange", "auth")}

# CONNACK return codes (3.x) and the v5 reason codes that mean a refused login.
CONNACK_3 = {0: "accepted", 1: "unacceptable protocol version", 2: "identifier rejected",
             3: "server unavailable", 4: "bad user name or password", 5: "not authorized"}
CONNACK_5_AUTH = {0x86: "bad user name or password", 0x87: "not authorized",
                  0x8C: "bad authentication method"}


class Malformed(ValueError):
    pass


def signature(payload: bytes) -> bool:
    """A CONNECT (first client packet) with a known protocol name and level."""
    if len(payload) < 12 or payload[0] != 0x10:
        return False
    try:
        _length, off = _remaining_length(payload, 1)
        name, off = _string(payload, off)
    except Malformed:
        return False
    return name in PROTOCOL_NAMES and off < len(payload) and payload[off] in (3, 4, 5)


def decode(pkt: Packet) -> list[Observation]:
    sb = _stream(pkt)
    out: list[Observation] = []
    for _ in range(MAX_PDUS_PER_SEGMENT):
        if len(sb.data) < 2:
            break
        try:
            length, hdr = _remaining_length(sb.data, 1)
        except Malformed:
            sb.data.clear()          # lost framing: wait for a clean segment start
            break
        if length > MAX_PACKET:
            sb.data.clear()
            break
        if len(sb.data) < hdr + length:
            if sb.data[0] >> 4 == 0:  # type 0 is reserved: not MQTT framing
                sb.data.clear()
            break
        first = sb.data[0]
        body = bytes(sb.data[hdr:hdr + length])
        del sb.data[:hdr + length]
        if pkt.from_client and first >> 4 in REQUESTS:
            out.append(_operation(pkt, first >> 4, first & 0x0F, body))
        try:
            out.extend(_packet(pkt, first >> 4, first & 0x0F, body))
        except Malformed:
            continue
    return out


def _operation(pkt: Packet, ptype: int, flags: int, body: bytes) -> Observation:
    """One client request to the broker; detail = its topic (PUBLISH) or filters (SUBSCRIBE).
    Stateless on purpose: the same bytes always give the same operation (routine replay)."""
    name, category = REQUESTS[ptype]
    detail = None
    try:
        if ptype == PUBLISH:
            detail = parse_publish_topic(body, flags)
        elif ptype == SUBSCRIBE:
            detail = ",".join(parse_subscribe(body, pkt.state.get("level", 4))) or None
    except Malformed:
        detail = None
    return pkt.observe("operation", NAME, category=category, code=ptype, name=name,
                       detail=detail[:MAX_DETAIL] if detail else None)


def _stream(pkt: Packet) -> StreamBuffer:
    key = "c2s" if pkt.from_client else "s2c"
    sb = pkt.state.get(key)
    if sb is None:
        sb = pkt.state[key] = StreamBuffer(BUFFER_CAP)
    if pkt.l4 == "tcp" and sb.next_seq is not None and pkt.seq != sb.next_seq \
            and (pkt.seq - sb.next_seq) & 0xFFFFFFFF < 0x80000000:
        sb.data.clear()              # bytes were lost: the buffered prefix is useless now
    if sb.overflow:
        sb.data.clear()
        sb.overflow = False
    sb.feed(pkt.seq, pkt.payload)
    return sb


def _packet(pkt: Packet, ptype: int, flags: int, body: bytes) -> list[Observation]:
    st = pkt.state
    out: list[Observation] = []
    if ptype == CONNECT:
        out.extend(_flush_pending(pkt))
        conn = parse_connect(body)
        st["level"] = conn["level"]
        out.extend(_roles(pkt))
        out.append(pkt.observe("session", NAME, subject="dst" if pkt.from_client else "src",
                               protocol_version=f"{conn['protocol']} {LEVELS.get(conn['level'], conn['level'])}",
                               encrypted=False, auth="username" if conn["user"] is not None else "anonymous",
                               client_id=conn["client_id"], clean_session=conn["clean_session"],
                               keep_alive=conn["keep_alive"], will_topic=conn["will_topic"]))
        ident = {k: v for k, v in (("mqtt_client_id", conn["client_id"]), ("mqtt_user", conn["user"])) if v}
        if ident:
            # the CONNECT's sender is the client, whichever side opened the TCP connection
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
        if conn["user"] is not None or conn["password"] is not None:
            # The login result comes with the CONNACK; keep the credential until then.
            st["pending"] = (pkt.capture, pkt.frame, pkt.ts, pkt.src, pkt.dst, pkt.src_mac, pkt.dst_mac,
                             pkt.l4, pkt.sport, pkt.dport, pkt.vlan, conn)
        return out
    if ptype == CONNACK:
        result, reason = connack_result(body, st.get("level", 4))
        out.extend(_roles(pkt))
        out.extend(_flush_pending(pkt, result))
        if result == "failure":
            out.append(pkt.observe("error", NAME, code=body[1] if len(body) > 1 else None,
                                   name=f"CONNACK refused: {reason}"))
        return out
    if pkt.from_client and st.get("pending"):
        out.extend(_flush_pending(pkt))  # a client going on without a visible CONNACK
    if ptype == PUBLISH:
        topic = parse_publish_topic(body, flags)
        if topic is not None:
            out.extend(_roles(pkt))
            out.append(pkt.observe("topic", NAME, topic=topic, action="publish"))
    elif ptype == SUBSCRIBE and pkt.from_client:
        out.extend(_roles(pkt))
        for topic in parse_subscribe(body, st.get("level", 4)):
            out.append(pkt.observe("topic", NAME, topic=topic, action="subscribe"))
    return out


def _roles(pkt: Packet) -> list[Observation]:
    """Service, broker and client roles, once per flow (after the first valid packet)."""
    st = pkt.state
    if st.get("roles_done"):
        return []
    st["roles_done"] = True
    server = "dst" if pkt.from_client else "src"
    client = "src" if pkt.from_client else "dst"
    return [pkt.observe("service", NAME, subject=server, name=NAME),
            pkt.observe("role", NAME, subject=server, role="broker", reason="serves MQTT"),
            pkt.observe("role", NAME, subject=client, role="mqtt-client", reason="MQTT client")]


def _flush_pending(pkt: Packet, result: str | None = None) -> list[Observation]:
    pending = pkt.state.pop("pending", None)
    if not pending:
        return []
    capture, frame, ts, src, dst, smac, dmac, l4, sport, dport, vlan, conn = pending
    return [Observation("credential", NAME, capture, frame, ts, src, dst, smac, dmac, l4, sport, dport,
                        vlan, "dst", {"user": conn["user"], "password": conn["password"],
                                      "secret_type": "password", "cleartext": True, "result": result})]


# --- wire format ---------------------------------------------------------------------------

def _remaining_length(b, off: int) -> tuple[int, int]:
    """The variable-length 'remaining length' (1-4 bytes); returns (value, next offset)."""
    value, shift = 0, 0
    for i in range(4):
        if off + i >= len(b):
            raise Malformed("short length")
        byte = b[off + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, off + i + 1
        shift += 7
    raise Malformed("length longer than 4 bytes")


def _u16(b, off: int) -> int:
    if off + 2 > len(b):
        raise Malformed("short u16")
    return (b[off] << 8) | b[off + 1]


def _string(b, off: int) -> tuple[bytes, int]:
    n = _u16(b, off)
    end = off + 2 + n
    if end > len(b):
        raise Malformed("string past end")
    return bytes(b[off + 2:end]), end


def _skip_properties(b: bytes, off: int) -> int:
    n, off = _remaining_length(b, off)
    if off + n > len(b):
        raise Malformed("properties past end")
    return off + n


def parse_connect(body: bytes) -> dict:
    """Fields of a CONNECT: protocol, level, client_id, flags, keep_alive, will_topic, user, password."""
    name, off = _string(body, 0)
    if name not in PROTOCOL_NAMES or off + 4 > len(body):
        raise Malformed("not a CONNECT")
    level, flags = body[off], body[off + 1]
    keep_alive = _u16(body, off + 2)
    off += 4
    if level == 5:
        off = _skip_properties(body, off)
    client_id, off = _string(body, off)
    will_topic = user = password = None
    if flags & 0x04:
        if level == 5:
            off = _skip_properties(body, off)
        will_topic, off = _string(body, off)
        _will_payload, off = _string(body, off)
    if flags & 0x80:
        user, off = _string(body, off)
    if flags & 0x40:
        password, off = _string(body, off)
    return {"protocol": PROTOCOL_NAMES[name], "level": level, "client_id": printable(client_id),
            "clean_session": bool(flags & 0x02), "keep_alive": keep_alive,
            "will_topic": printable(will_topic) if will_topic is not None else None,
            "user": printable(user) if user is not None else None,
            "password": password.decode("utf-8", "replace") if password is not None else None}


def connack_result(body: bytes, level: int) -> tuple[str | None, str]:
    """('success' | 'failure' | None, reason text) from a CONNACK body."""
    if len(body) < 2:
        return None, "short CONNACK"
    code = body[1]
    if level == 5:
        if code == 0:
            return "success", "success"
        return "failure", CONNACK_5_AUTH.get(code, f"reason code 0x{code:02x}")
    if code == 0:
        return "success", CONNACK_3[0]
    return "failure", CONNACK_3.get(code, f"return code {code}")


def parse_publish_topic(body: bytes, flags: int) -> str | None:
    try:
        topic, _off = _string(body, 0)
    except Malformed:
        return None
    return printable(topic)


def parse_subscribe(body: bytes, level: int) -> list[str]:
    """Topic filters of a SUBSCRIBE (packet id, [v5 properties], then filter + options pairs)."""
    off = 2
    if level == 5:
        off = _skip_properties(body, off)
    topics = []
    while off < len(body) and len(topics) < MAX_TOPICS:
        topic, off = _string(body, off)
        off += 1  # requested QoS / subscription options
        topics.append(printable(topic))
    return topics


SPEC = ProtocolSpec(
    name=NAME, title="MQTT", layer="industrial",
    decode=decode, signature=signature,
    tcp_ports=(1883,),
    # a CONNECT carries the protocol name, strict enough for any port
    any_port=True,
    server_role="broker",
    observes=("credential", "error", "identity", "operation", "role", "service", "session", "topic"),
)
