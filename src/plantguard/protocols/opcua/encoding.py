"""OPC UA binary encoding: the UA TCP / Secure Conversation chunk (8-byte header: message type
HEL / ACK / ERR / RHE / OPN / MSG / CLO, chunk type F / C / A, size), what of a chunk is readable
without the channel's keys (parse_message), cutting chunks off a stream (split_messages), and the
built-in types and structures the services are made of (UaReader, headers, endpoint and
application descriptions)."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from plantguard.protocols._binary import Malformed, Reader

MESSAGE_TYPES = (b"HEL", b"ACK", b"ERR", b"RHE", b"OPN", b"MSG", b"CLO")
CHUNK_TYPES = (b"F", b"C", b"A")
MAX_MESSAGE = 1 << 24          # a larger chunk size is not believable
MAX_MESSAGES_PER_SEGMENT = 256
MAX_ARRAY = 1024               # elements read from any array
NONE_POLICY = "http://opcfoundation.org/UA/SecurityPolicy#None"
SECURITY_MODES = {0: "Invalid", 1: "None", 2: "Sign", 3: "SignAndEncrypt"}
TOKEN_TYPES = {0: "anonymous", 1: "username", 2: "certificate", 3: "issued"}


# --- built-in types and structures ------------------------------------------------------------

class UaReader(Reader):
    """The shared binary reader plus OPC UA's built-in types (Part 6, 5.2): little-endian
    integers, length-prefixed strings and arrays, NodeIds, LocalizedText, ExtensionObjects
    and DiagnosticInfo. Short data raises Truncated, a Malformed."""
    __slots__ = ()

    u16 = Reader.u16le
    u32 = Reader.u32le
    i32 = Reader.i32le

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


def request_header(r: UaReader) -> int:
    """Skips a RequestHeader; returns its request handle."""
    r.node_id()                    # authentication token
    r.take(8)                      # timestamp
    handle = r.u32()
    r.u32()                        # return diagnostics
    r.string()                     # audit entry id
    r.u32()                        # timeout hint
    r.extension_object()
    return handle


def response_header(r: UaReader) -> tuple[int, int]:
    """Skips a ResponseHeader; returns (request handle, service result)."""
    r.take(8)
    handle, result = r.u32(), r.u32()
    r.diagnostic_info()
    r.array(r.string)
    r.extension_object()
    return handle, result


def application_description(r: UaReader) -> dict:
    app = {"application_uri": r.string(), "product_uri": r.string(), "application_name": r.localized_text(),
           "application_type": r.u32()}
    r.string()                     # gateway server URI
    r.string()                     # discovery profile URI
    app["discovery_urls"] = r.array(r.string)
    return app


def endpoint_description(r: UaReader) -> dict:
    ep = {"endpoint_url": r.string()}
    ep["server"] = application_description(r)
    r.bytestring()                 # server certificate
    ep["security_mode"] = SECURITY_MODES.get(r.u32(), "Invalid")
    ep["policy"] = r.string()

    def token_policy():
        r.string()                 # policy id
        ttype = r.u32()
        r.string()
        r.string()
        r.string()
        return TOKEN_TYPES.get(ttype, str(ttype))
    ep["user_tokens"] = r.array(token_policy)
    ep["transport_profile"] = r.string()
    ep["security_level"] = r.u8()
    return ep


# --- chunks ---------------------------------------------------------------------------------

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
    r = UaReader(raw, 8)
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
