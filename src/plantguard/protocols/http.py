"""HTTP/1.x (TCP 80, 8080, 8000, ... and any port by a strict request/status-line test), and
SSDP (HTTP over UDP 1900).

Per request (client -> server): an `operation` (category read for GET/HEAD/OPTIONS/TRACE,
write for POST/PUT/PATCH/DELETE, other otherwise; keys method, host, uri, version), the
client's User-Agent as its `identity` user_agent (a fact about the client's browser or tool,
never its product), and any Authorization header as a
`credential` (Basic: user and password in clear; Digest: user only; Bearer: a token in clear).
The credential is emitted when the matching response arrives, with result "failure" on
401/403 and "success" on 1xx-3xx, oriented client -> server at the request's frame.
Per response (server -> client): the `service` with the Server header as banner/software,
the WWW-Authenticate scheme/realm, and an `error` (code = status, name = reason) for 4xx/5xx;
the server's `identity` from its Server header (ftp.identity_from_banner: the header as banner,
software, and the vendor / product / firmware / OS it names) and from the <title> of the HTML
pages it serves (2xx, read from the first BODY_SNIFF bytes of the body, gzip/deflate undone).

Both directions are reassembled (bounded); bodies are skipped by Content-Length or chunked
framing; pipelined requests are paired with responses in order. HTTP/0.9 requests (no
version) and responses (no status line) are understood; anything unparseable stops the
decode of that direction instead of raising. After a CONNECT the proxy accepted (2xx), a tunnel
that starts with a TLS record is handed to the TLS decoder (its observations carry proto "tls":
the SNI names the host behind the proxy); any other tunnelled protocol is left alone."""
from __future__ import annotations

import base64
import binascii
import html
import re
import zlib
from collections import deque

from plantguard.model import Observation, Packet
from plantguard.protocols import tls
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols.base import StreamBuffer, printable
from plantguard.protocols.ftp import identity_from_banner

NAME = "http"

BUFFER_CAP = 65536
MAX_HEAD = 16384            # request/response head larger than this: stop decoding the direction
MAX_HEADERS = 64
MAX_MESSAGES_PER_PACKET = 64
MAX_PENDING = 16            # requests waiting for their response
MAX_DISTINCT_OPS = 64       # distinct (method, host, uri) operations reported per flow
MAX_URI = 512
BODY_SNIFF = 8192           # body bytes of an HTML page searched for its <title>
MAX_TITLES = 8              # distinct page titles reported per flow

METHODS = frozenset({
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PATCH",
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT",
    "NOTIFY", "M-SEARCH", "SUBSCRIBE", "UNSUBSCRIBE", "MKACTIVITY", "CHECKOUT", "MERGE",
    "BPROPFIND", "BDELETE", "POLL", "SOURCE"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "SEARCH", "REPORT", "M-SEARCH"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE", "PROPPATCH", "MKCOL", "COPY", "MOVE"})

_METHOD = re.compile(rb"[A-Za-z][A-Za-z_\-]{1,19}")
# a message start after lost bytes: a status line or a common request line at a line start
_RESYNC = re.compile(rb"(?:^|\n)((?:HTTP/1\.[01] \d{3} )|(?:(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH) \S+ HTTP/1\.[01]\r?\n))")
_VERSION = re.compile(r"\d\.\d")
_STATUS_LINE = re.compile(rb"([Hh][Tt][Tt][Pp]/\d\.\d) +(\d{3})(?: (.*))?\r?$")
_SIG_STATUS = re.compile(rb"[Hh][Tt][Tt][Pp]/\d\.\d \d{3}[ \r\n]")
_PRODUCT_VERSION = re.compile(r"^[^/\s]+/v?(\d[\w.\-]*)")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.I | re.S)


def parse_request_line(line: bytes) -> tuple[str, bytes, str | None] | None:
    """(method, target, version) of a request line, leniently: the version is the last token
    when it starts with "HTTP/" (its text as sent, even if malformed), the target is what lies
    between (possibly empty); no version means an HTTP/0.9-style request."""
    parts = line.split()
    if not parts or not _METHOD.fullmatch(parts[0]) or len(parts) > 8:
        return None
    method, rest, version = parts[0].decode("latin-1"), parts[1:], None
    if rest and rest[-1][:5].upper() == b"HTTP/":
        version = rest[-1][5:].decode("latin-1")[:8]
        rest = rest[:-1]
    return method, b" ".join(rest), version


def signature(payload: bytes) -> bool:
    """A status line, or a request line: any upper-case method (or a known one in any case)
    with an HTTP/x.y version; without a (well-formed) version, a known upper-case method with
    one path as its target, or an unknown upper-case one with a path and a Host header. So
    'get key' of a text cache protocol is not HTTP."""
    head = bytes(payload[:2100])
    if _SIG_STATUS.match(head):
        return True
    nl = head.find(b"\n")
    if nl < 0:
        return False
    req = parse_request_line(head[:nl])
    if req is None:
        return False
    method, target, version = req
    if version is not None and _VERSION.fullmatch(version):
        return method.upper() in METHODS or method.isupper()
    # HTTP/0.9-style: one path after a known method ("SEARCH * OMFIND/1.2" is another protocol)
    if method in METHODS and target[:1] == b"/" and b" " not in target:
        return True
    # an unknown upper-case method is HTTP when a path and a Host header go with it
    return method.isupper() and target[:1] == b"/" and b"\nhost:" in head.lower()


# --- wire format ------------------------------------------------------------------------

def parse_head(head: bytes) -> tuple[list[bytes], dict[str, str]]:
    """(start-line parts, headers with lower-case names; the first value of a repeated name
    wins) of one message head (without the blank line)."""
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    headers: dict[str, str] = {}
    for line in lines[1:MAX_HEADERS + 1]:
        if b":" not in line:
            continue
        name, _, value = line.partition(b":")
        key = name.strip().lower().decode("latin-1")
        if key and key not in headers:
            headers[key] = value.strip().decode("latin-1")[:1024]
    return [lines[0]], headers


def basic_credentials(value: str) -> tuple[str, str | None] | None:
    """(user, password) from an 'Authorization: Basic ...' value; the password is everything
    after the first colon (so it may itself contain colons)."""
    parts = value.split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "basic":
        return None
    token = parts[1].strip()
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=False)
    except (binascii.Error, ValueError):
        return None
    text = raw.decode("utf-8", "replace")
    user, sep, password = text.partition(":")
    return user, (password if sep else None)


def authorization(value: str) -> dict | None:
    """A credential record for an Authorization header (Basic, Digest, Bearer)."""
    scheme = value.split(None, 1)[0].lower() if value.strip() else ""
    if scheme == "basic":
        up = basic_credentials(value)
        if up is None:
            return None
        return {"user": up[0], "password": up[1], "secret_type": "basic", "cleartext": True}
    if scheme == "digest":
        m = re.search(r'username="?([^",]*)', value)
        return {"user": m.group(1) if m else None, "password": None, "secret_type": "digest",
                "cleartext": False}
    if scheme == "bearer":
        return {"user": None, "password": None, "secret_type": "token", "cleartext": True}
    return None


def www_authenticate(value: str) -> dict:
    scheme = value.split(None, 1)[0] if value.strip() else ""
    m = re.search(r'realm="([^"]*)"', value) or re.search(r"realm=([^,\s]+)", value)
    out = {"auth_scheme": scheme}
    if m:
        out["realm"] = m.group(1)[:256]
    return out


def software_version(product: str) -> str | None:
    m = _PRODUCT_VERSION.match(product)
    return m.group(1) if m else None


def op_category(method: str) -> str:
    if method in READ_METHODS:
        return "read"
    if method in WRITE_METHODS:
        return "write"
    return "other"


# --- stream handling ----------------------------------------------------------------------

class _Direction:
    """Parser position in one direction: reading a head, skipping a body, or given up; and the
    start of the HTML body being searched for its <title> (`sniff`, None when not searching)."""
    __slots__ = ("sb", "mode", "remaining", "sniff", "sniff_encoding")

    def __init__(self):
        self.sb = StreamBuffer(BUFFER_CAP)
        self.mode = "head"       # head | body | chunk | chunk-data | trailer | resync | close | dead
        self.remaining = 0
        self.sniff: bytearray | None = None
        self.sniff_encoding = ""

    def keep(self, body: bytes) -> None:
        """Body bytes passing by: the first BODY_SNIFF of them are searched for a title."""
        if self.sniff is not None and len(self.sniff) < BODY_SNIFF:
            self.sniff += body[:BODY_SNIFF - len(self.sniff)]


def _direction(pkt: Packet) -> _Direction:
    key = "http_c" if pkt.from_client else "http_s"
    d = pkt.state.get(key)
    if d is None:
        d = pkt.state[key] = _Direction()
    sb = d.sb
    if sb.jumped(pkt.seq):
        # bytes were lost: a partial body/head can no longer be framed; look for the next
        # message start in what follows
        sb.data.clear()
        if d.mode != "dead":
            d.mode, d.remaining = "resync", 0
    if sb.overflow:
        sb.data.clear()
        sb.overflow = False
    if d.mode in ("close", "dead"):
        if d.mode == "close":
            d.keep(bytes(pkt.payload))
        sb.next_seq = (pkt.seq + len(pkt.payload)) & 0xFFFFFFFF
        return d
    sb.feed(pkt.seq, pkt.payload)
    return d


def _skip(d: _Direction) -> bool:
    """Drop body bytes; True when the parser can go on reading the next head."""
    sb = d.sb
    for _ in range(MAX_MESSAGES_PER_PACKET):
        if d.mode == "close" or d.mode == "dead":
            if d.mode == "close":
                d.keep(bytes(sb.data))
            sb.data.clear()
            return False
        if d.mode in ("body", "chunk-data"):
            n = min(d.remaining, len(sb.data))
            if d.sniff is not None:
                # chunk-data counts the CRLF that ends the chunk: not part of the body
                text = d.remaining - 2 if d.mode == "chunk-data" else d.remaining
                d.keep(bytes(sb.data[:max(0, min(n, text))]))
            del sb.data[:n]
            d.remaining -= n
            if d.remaining:
                return False
            d.mode = "chunk" if d.mode == "chunk-data" else "head"
            continue
        if d.mode == "chunk":
            i = sb.data.find(b"\n")
            if i < 0:
                if len(sb.data) > 256:
                    d.mode = "dead"
                return False
            line = bytes(sb.data[:i]).split(b";")[0].strip()
            del sb.data[:i + 1]
            try:
                size = int(line, 16) if line else -1
            except ValueError:
                size = -1
            if size < 0:
                d.mode = "dead"
                return False
            if size == 0:
                d.mode, d.remaining = "trailer", 0
                continue
            d.mode, d.remaining = "chunk-data", size + 2
            continue
        if d.mode == "resync":
            found = _RESYNC.search(bytes(sb.data))
            if not found:
                del sb.data[:max(0, len(sb.data) - 64)]   # keep a tail: a start line may straddle
                return False
            del sb.data[:found.start(1)]
            d.mode = "head"
            continue
        if d.mode == "trailer":
            # trailer fields end with an empty line
            i = sb.data.find(b"\n")
            if i < 0:
                return False
            line = bytes(sb.data[:i]).strip()
            del sb.data[:i + 1]
            if not line:
                d.mode = "head"
            continue
        return True
    return False


def _body_mode(d: _Direction, headers: dict, no_body: bool, until_close: bool) -> None:
    te = headers.get("transfer-encoding", "").lower()
    if no_body:
        d.mode = "head"
    elif "chunked" in te:
        d.mode = "chunk"
    elif "content-length" in headers:
        try:
            n = int(headers["content-length"].split(",")[0].strip())
        except ValueError:
            n = -1
        if n < 0:
            d.mode = "dead"
        else:
            d.mode, d.remaining = ("body", n) if n else ("head", 0)
    else:
        d.mode = "close" if until_close else "head"


def _next_head(d: _Direction) -> bytes | None:
    """The next complete message head (start line + headers), consumed from the buffer."""
    sb = d.sb
    while sb.data[:2] in (b"\r\n",) or sb.data[:1] == b"\n":
        del sb.data[:2 if sb.data[:2] == b"\r\n" else 1]
    if not sb.data:
        return None
    end = sb.data.find(b"\r\n\r\n")
    sep = 4
    alt = sb.data.find(b"\n\n")
    if alt >= 0 and (end < 0 or alt < end):
        end, sep = alt, 2
    if end < 0:
        if len(sb.data) > MAX_HEAD:
            d.mode = "dead"
        return None
    head = bytes(sb.data[:end])
    del sb.data[:end + sep]
    return head


def decode(pkt: Packet) -> list[Observation]:
    if pkt.l4 == "udp":
        return _ssdp(pkt)
    tunnel = pkt.state.get("http_tunnel")
    if tunnel is not None:
        return _tunnelled(pkt, tunnel)
    d = _direction(pkt)
    out: list[Observation] = []
    for _ in range(MAX_MESSAGES_PER_PACKET):
        skipped = _skip(d)
        if d.sniff is not None:
            _title(pkt, d, out)
        if not skipped:
            break
        if pkt.from_client:
            if not _client_message(pkt, d, out):
                break
        elif not _server_message(pkt, d, out):
            break
    return out


def _tunnelled(pkt: Packet, tunnel: str) -> list[Observation]:
    """A packet inside an accepted CONNECT tunnel: TLS when its first bytes are a TLS record."""
    if tunnel == "open" and pkt.payload:
        tunnel = pkt.state["http_tunnel"] = "tls" if tls.signature(pkt.payload) else "other"
    return tls.decode(pkt) if tunnel == "tls" else []


def page_title(body: bytes, encoding: str = "") -> str | None:
    """The <title> of the start of an HTML body (None while it is not complete), its entities
    undone and its white space collapsed; gzip / deflate bodies are inflated first."""
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            body = zlib.decompressobj(47 if encoding != "deflate" else 15).decompress(body, 4 * BODY_SNIFF)
        except zlib.error:
            try:
                body = zlib.decompressobj(-15).decompress(body, 4 * BODY_SNIFF)
            except zlib.error:
                return None
    m = _TITLE.search(body)
    if not m:
        return None
    raw = m.group(1)[:1024]
    text = raw.decode("utf-8") if _utf8(raw) else raw.decode("latin-1")
    return " ".join(printable(html.unescape(text).encode("utf-8"), 512).split())[:256]


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _title(pkt: Packet, d: _Direction, out: list) -> None:
    """Report the page title once it is in the sniffed body; stop searching at the body's end
    or after BODY_SNIFF bytes."""
    title = page_title(bytes(d.sniff), d.sniff_encoding)
    done = title is not None or len(d.sniff) >= BODY_SNIFF or d.mode in ("head", "dead", "trailer", "resync")
    if title:
        seen = pkt.state.setdefault("http_titles", set())
        if title not in seen and len(seen) < MAX_TITLES:
            seen.add(title)
            ident = identity_from_banner(title)
            ident.pop("banner", None)
            out.append(pkt.observe("identity", NAME, subject="src", title=title, **ident))
    if done:
        d.sniff = None


def _client_message(pkt: Packet, d: _Direction, out: list) -> bool:
    sb = d.sb
    nl = sb.data.find(b"\n")
    if nl >= 0 and not sb.data[nl + 1:]:
        # a lone request line without a version and nothing after it: HTTP/0.9, answered by
        # a bare body until the connection closes
        req = parse_request_line(bytes(sb.data[:nl]))
        if req and req[2] is None:
            del sb.data[:nl + 1]
            _request(pkt, req[0], req[1], "0.9", {}, out)
            d.mode = "close"
            return False
    head = _next_head(d)
    if head is None:
        return False
    (start,), headers = parse_head(head)
    req = parse_request_line(start)
    if req is None:
        d.mode = "dead"
        return False
    method, target, version = req
    _request(pkt, method, target, version or "0.9", headers, out)
    if version is None:
        d.mode = "close"   # an HTTP/0.9-style request (with header lines after it)
        return False
    _body_mode(d, headers, no_body=False, until_close=False)
    if method.upper() == "CONNECT":
        d.mode = "dead"   # a tunnel follows
    return True


def _request(pkt: Packet, method: str, uri_b: bytes, version: str, headers: dict, out: list) -> None:
    st = pkt.state
    method_u = method.upper()
    uri = uri_b.decode("latin-1")[:MAX_URI]
    host = headers.get("host")
    ops = st.setdefault("http_ops", set())
    key = (method_u, host, uri)
    if key in ops or len(ops) < MAX_DISTINCT_OPS:
        ops.add(key)
        data = {"host": host, "uri": uri}
    else:
        data = {"host": None, "uri": None}
    out.append(pkt.observe("operation", NAME, category=op_category(method_u), code=method_u,
                           name=method_u, method=method, version=version, **data))
    ua = headers.get("user-agent")
    seen = st.setdefault("http_seen", set())
    if ua and ("ua", ua) not in seen and len(seen) < 64:
        seen.add(("ua", ua))
        out.append(pkt.observe("identity", NAME, subject="src", user_agent=ua))
    cred = authorization(headers["authorization"]) if "authorization" in headers else None
    pending: deque = st.setdefault("http_pending", deque())
    if len(pending) >= MAX_PENDING:
        out.extend(_settle(pending.popleft(), None))
    snap = None
    if cred is not None:
        snap = (pkt.capture, pkt.frame, pkt.ts, pkt.src, pkt.dst, pkt.src_mac, pkt.dst_mac,
                pkt.l4, pkt.sport, pkt.dport, pkt.vlan, cred)
    pending.append((method_u, snap))


def _settle(entry, result: str | None) -> list[Observation]:
    """The credential of an answered (or given-up) request, oriented client -> server."""
    _method, snap = entry
    if snap is None:
        return []
    capture, frame, ts, src, dst, smac, dmac, l4, sport, dport, vlan, cred = snap
    return [Observation("credential", NAME, capture, frame, ts, src, dst, smac, dmac, l4, sport,
                        dport, vlan, "dst", dict(cred, result=result))]


def _server_message(pkt: Packet, d: _Direction, out: list) -> bool:
    sb = d.sb
    st = pkt.state
    pending: deque = st.setdefault("http_pending", deque())
    if sb.data[:5].upper() != b"HTTP/" and len(sb.data) >= 5:
        # no status line: an HTTP/0.9 reply (a bare body until the connection closes)
        if pending:
            out.extend(_settle(pending.popleft(), None))
        d.mode = "close"
        return False
    head = _next_head(d)
    if head is None:
        return False
    (start,), headers = parse_head(head)
    m = _STATUS_LINE.match(start)
    if not m:
        d.mode = "dead"
        return False
    status = int(m.group(2))
    method = None
    if status >= 200 or status == 101:
        if pending:
            entry = pending.popleft()
            method = entry[0]
            result = "failure" if status in (401, 403) else "success" if status < 400 else None
            out.extend(_settle(entry, result))
    _service(pkt, headers, out)
    if status >= 400:
        reason = printable(m.group(3) or b"", 64) if m.group(3) else ""
        out.append(pkt.observe("error", NAME, subject="src", code=status, name=reason or str(status)))
    if status == 101 or (method == "CONNECT" and 200 <= status < 300):
        d.mode = "dead"   # the connection now carries another protocol
        if method == "CONNECT":
            pkt.state["http_tunnel"] = "open"   # its first bytes say which (_tunnelled)
        return False
    no_body = method == "HEAD" or status < 200 or status in (204, 304)
    _body_mode(d, headers, no_body=no_body, until_close=True)
    ctype = headers.get("content-type", "").lower()
    d.sniff = None
    if 200 <= status < 300 and not no_body and d.mode not in ("head", "dead") and \
            (not ctype or "html" in ctype) and len(st.get("http_titles", ())) < MAX_TITLES:
        d.sniff = bytearray()
        d.sniff_encoding = headers.get("content-encoding", "").strip().lower()
    return True


def _service(pkt: Packet, headers: dict, out: list) -> None:
    seen = pkt.state.setdefault("http_seen", set())
    server = headers.get("server")
    key = ("server", server)
    if key not in seen and len(seen) < 64:
        seen.add(key)
        data: dict = {"name": NAME}
        if server:
            data["banner"] = printable(server.encode("latin-1"), 256)
            data["software"] = data["banner"]
            ver = software_version(server)
            if ver:
                data["version"] = ver
        out.append(pkt.observe("service", NAME, subject="src", **data))
        ident = identity_from_banner(data.get("banner"), data.get("banner"))
        if ident:
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
    auth = headers.get("www-authenticate")
    if auth:
        info = www_authenticate(auth)
        key = ("auth",) + tuple(sorted(info.items()))
        if key not in seen and len(seen) < 64:
            seen.add(key)
            out.append(pkt.observe("service", NAME, subject="src", name=NAME, **info))


def _ssdp(pkt: Packet) -> list[Observation]:
    """SSDP announcements and answers: the SERVER header names the sender's OS / UPnP stack."""
    data = bytes(pkt.payload[:MAX_HEAD])
    end = data.find(b"\r\n\r\n")
    (start,), headers = parse_head(data[:end] if end >= 0 else data)
    if not (_STATUS_LINE.match(start) or parse_request_line(start)):
        return []
    out = []
    server = headers.get("server")
    if server:
        ident = identity_from_banner(server[:256])
        ident.pop("banner", None)      # the header is kept as ssdp_server
        out.append(pkt.observe("identity", NAME, subject="src", description=server[:256],
                               ssdp_server=server[:256], **ident))
    ua = headers.get("user-agent")
    if ua:
        out.append(pkt.observe("identity", NAME, subject="src", user_agent=ua[:256]))
    return out


SPEC = ProtocolSpec(
    name=NAME, title="HTTP", layer="it",
    decode=decode, signature=signature,
    tcp_ports=(80, 81, 591, 8000, 8008, 8080, 8081, 8088, 8888, 3128, 5985, 7547, 9080),
    udp_ports=(1900,),
    any_port=True,
    # Output depends on earlier packets of the flow (bodies and heads span segments): the engine must
    # not replay a packet's observations from an earlier packet with the same bytes.
    replay=False,
    observes=("credential", "error", "identity", "operation", "service"),
)
