"""Tridium Niagara Fox on TCP 1911: the text protocol between Niagara stations (JACE supervisory
controllers, Supervisor servers) and their Workbench engineering tools or peer stations.

A Fox frame is a header line `fox <type> <seq> <reply-to> <channel> <command>` followed by a
message `{` ... `};;`, one `key=<type>:<value>` field per line. String, int and boolean values
end at the line's end; blobs (`b:`) and objects (`o:<type>`) give their byte count and carry
that many bytes in brackets, which may hold any bytes (newlines, binary nonces), so framing skips
them by count, never by looking for the terminator inside them. Foxs (TCP 4911) is the same
protocol inside TLS: the TLS module sees it there; nothing of Fox is readable on it.

Observations: service (once per flow); identity of each side from its `fox hello` (the station's
vendor, product "Niagara <app.name>", software version, station and host names, OS, Java VM,
host id and the raw brand id of the OEM build); operation per client frame (the hello is
identification, anything else is named by its channel and command, category "other": the
capture shows no other verb, so none is guessed); error per error frame and per hello that
reports `fatal`; the station's login method from its `fox challenge` (a service's auth_scheme);
credential when a client frame names a user in clear.

Server role: a Niagara station supervises and integrates the plant's field buses (BACnet, LON,
Modbus) behind it; of SERVER_ROLES it is a gateway, not a PLC: it is not counted as a
controller peer, and Fox authenticates its users (the digest challenge), so it does not carry
the unauthenticated-control trait."""
from __future__ import annotations

import re

from plantguard.model import Observation, Packet
from plantguard.protocols._pdustream import BAD, NEED_MORE, tcp_pdus
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols.base import once, printable

NAME = "fox"
FOX_PORT = 1911
MAX_FRAME = 64 * 1024        # longest frame reassembled; a hello with its sysInfo bog is ~1 KiB
MAX_HEADER = 160             # the header line: two numbers and two short words
MAX_LINE = 4096              # a field line (the time zone rule is the longest seen, ~200 bytes)
MAX_FIELDS = 512             # fields parsed per frame
MAX_DEPTH = 8                # nested messages (`m:` values)
MAX_PDUS_PER_SEGMENT = 32
MAX_TEXT = 256               # device text kept per value

# `fox <frame type> <sequence> <reply-to> <channel> <command>`: the frame types as the Fox
# framing letters them (only "a" occurs in the shared capture)
FRAME_TYPES = {"a": "asynchronous", "s": "synchronous", "r": "reply", "k": "keep-alive", "e": "error",
               "n": "null", "?": "unknown"}
_HEADER = re.compile(rb"fox ([a-z?]) (-?\d{1,10}) (-?\d{1,10}) ([!-~]{1,48}) ([!-~]{1,48})")
_FIELD = re.compile(rb"([!-<>-~][!-<>-~]{0,127})=([a-z]):")
_BLOB = re.compile(rb"(\d{1,9})\[")                     # b:<count>[<bytes>]
_OBJECT = re.compile(rb"([!-Z\\^-~]{1,64}) (\d{1,9})\[")   # o:<type> <count>[<bytes>]
_END, _NEXT = b"};;\n", b"};\n"

# client frames by (channel, command) -> (name, operation category); only what the capture shows
COMMANDS = {("fox", "hello"): ("Hello", "diagnostic")}
# hello fields the identity reads, by the key each becomes (vendor, product and role are derived)
HELLO_FIELDS = {
    "fox.version": "fox_version", "hostName": "host_name", "hostAddress": "host_address", "app.version": "firmware",
    "vm.name": "vm", "vm.version": "vm_version", "os.name": "os", "os.version": "os_version",
    "station.name": "name", "hostId": "host_id", "vmUuid": "vm_uuid", "brandId": "brand_id",
    "timeZone": "time_zone",
}
# application names a hello gives, and the role each suggests for its host
APP_ROLES = {"Workbench": "engineering-workstation"}
USER_FIELDS = ("username", "userName", "user", "user.name")

__all__ = ["COMMANDS", "FRAME_TYPES", "NAME", "SPEC", "Frame", "decode", "frame_len", "hello_identity",
           "parse_frame", "signature"]


class Frame:
    """One Fox frame: its header and the top-level fields of its message(s), in order, as
    (key, type letter, value): the line's text for s, f, t and unknown letters, int for i (text
    when it does not parse), bool for z, (object type, byte count) for o, byte count for b."""
    __slots__ = ("channel", "command", "fields", "kind", "reply", "seq")

    def __init__(self, kind: str, seq: int, reply: int, channel: str, command: str, fields: list):
        self.kind, self.seq, self.reply, self.channel, self.command, self.fields = \
            kind, seq, reply, channel, command, fields

    def strings(self) -> dict[str, str]:
        """The first value of each string field, as device text (printable, bounded)."""
        out: dict[str, str] = {}
        for key, t, value in self.fields:
            if t == "s" and key not in out:
                out[key] = value
        return out


def signature(payload: bytes) -> bool:
    """A Fox frame's start: "fox " and a whole header line of the grammar. Strict enough for any
    port (HTTP, Telnet or a banner never start so); the frame's message may follow in later
    segments."""
    if not payload.startswith(b"fox "):
        return False
    nl = payload.find(b"\n", 0, MAX_HEADER + 1)
    if nl < 0:
        return False
    if _HEADER.fullmatch(payload, 0, nl) is None:
        return False
    rest = payload[nl + 1:nl + 3]
    return rest in (b"{\n", b"{") or rest == b""


def frame_len(data: bytes, off: int) -> int:
    """Length of the Fox frame starting at data[off] (header, message(s), `};;\\n`): NEED_MORE
    until it is whole, BAD when the bytes break the grammar or the frame outgrows MAX_FRAME."""
    walk = _walk(data, off, None)
    return walk if isinstance(walk, int) else walk[0]


def parse_frame(pdu: bytes) -> Frame | None:
    """The frame in one whole PDU (as frame_len cut it), None when it is not one."""
    m = _HEADER.match(pdu)
    if m is None:
        return None
    fields: list = []
    walk = _walk(pdu, 0, fields)
    if isinstance(walk, int):
        return None
    seq, reply = int(m.group(2)), int(m.group(3))
    return Frame(m.group(1).decode(), seq, reply, m.group(4).decode(), m.group(5).decode(), fields)


def _walk(data: bytes, off: int, fields: list | None):
    """Walk one frame; an int (NEED_MORE / BAD) or (length,) when whole. With `fields`, the
    top-level fields are appended to it as they are read."""
    n = len(data)
    limit = min(n, off + MAX_FRAME)
    nl = data.find(b"\n", off, min(n, off + MAX_HEADER + 1))
    if nl < 0:
        head = data[off:off + 4]
        if n - off > MAX_HEADER or not (head == b"fox " if len(head) == 4 else b"fox ".startswith(head)):
            return BAD
        return NEED_MORE
    if _HEADER.fullmatch(data, off, nl) is None:
        return BAD
    p = nl + 1
    depth = 0
    count = 0
    opened = False
    while True:
        if p >= limit:
            return BAD if limit - off >= MAX_FRAME else NEED_MORE
        if not opened:                      # a message opens: "{\n"
            if p + 2 > n:
                return NEED_MORE
            if data[p:p + 2] != b"{\n":
                return BAD
            p += 2
            opened = True
            continue
        if data.startswith(b"}", p):
            if depth:                       # the end of a nested message: "}\n"
                if p + 2 > n:
                    return NEED_MORE
                if data[p + 1:p + 2] != b"\n":
                    return BAD
                depth -= 1
                p += 2
                continue
            if p + 4 > n:
                return NEED_MORE
            if data[p:p + 4] == _END:
                return (p + 4 - off,)
            if data[p:p + 3] == _NEXT:      # "};" then the frame's next message
                p += 3
                opened = False
                continue
            return BAD
        m = _FIELD.match(data, p, min(n, p + 132))
        if m is None:
            eol = data.find(b"\n", p, min(n, p + 132))
            return NEED_MORE if eol < 0 and n - p < 132 else BAD
        count += 1
        if count > MAX_FIELDS:
            return BAD
        key, t = m.group(1), m.group(2)
        v = m.end()
        if t in (b"b", b"o"):
            vm = (_BLOB if t == b"b" else _OBJECT).match(data, v, min(n, v + 80))
            if vm is None:
                eol = data.find(b"\n", v, min(n, v + 80))
                return NEED_MORE if eol < 0 and n - v < 80 else BAD
            size = int(vm.group(vm.lastindex))
            start = vm.end()
            end = start + size
            if end + 2 - off > MAX_FRAME:
                return BAD
            if end + 2 > n:
                return NEED_MORE
            if data[end:end + 2] != b"]\n":
                return BAD
            if fields is not None and depth == 0:
                value = size if t == b"b" else (printable(vm.group(1), 64), size)
                fields.append((key.decode("ascii", "replace"), t.decode(), value))
            p = end + 2
            continue
        eol = data.find(b"\n", v, min(n, v + MAX_LINE))
        if eol < 0:
            return NEED_MORE if n - v < MAX_LINE else BAD
        raw = data[v:eol]
        if t == b"m" and raw.startswith(b"{"):
            depth += 1                      # a nested message: its fields are not the frame's
            if depth > MAX_DEPTH:
                return BAD
        elif fields is not None and depth == 0:
            fields.append((key.decode("ascii", "replace"), t.decode(), _value(t, raw)))
        p = eol + 1


def _value(t: bytes, raw: bytes):
    if t == b"i":
        try:
            return int(raw[:20])
        except ValueError:
            return printable(raw, MAX_TEXT)
    if t == b"z":
        return raw == b"t"
    return printable(raw, MAX_TEXT)


def decode(pkt: Packet) -> list[Observation]:
    out: list[Observation] = []
    for pdu in tcp_pdus(pkt, frame_len, MAX_FRAME, MAX_PDUS_PER_SEGMENT):
        frame = parse_frame(pdu)
        if frame is not None:
            out.extend(_observe(pkt, frame))
    return out


def _observe(pkt: Packet, frame: Frame) -> list[Observation]:
    server = "dst" if pkt.from_client else "src"
    client = "src" if pkt.from_client else "dst"
    out: list[Observation] = []
    strings = frame.strings()
    hello = frame.channel == "fox" and frame.command == "hello"
    svc: dict = {}
    if not pkt.from_client and hello and once(pkt, "station-hello"):
        # what the station says it runs names the service (its banner in the inventory)
        if strings.get("app.name"):
            named = ("Niagara", strings["app.name"], strings.get("app.version"))
            svc["software"] = " ".join(x for x in named if x)[:MAX_TEXT]
        if strings.get("fox.version"):
            svc["protocol_version"] = strings["fox.version"]
    if not pkt.from_client and frame.channel == "fox" and frame.command == "challenge" and strings.get("method") \
            and once(pkt, "challenge"):
        svc["auth_scheme"] = strings["method"]    # the station asks for a login and says how (digest-md5)
    if once(pkt, "service") or svc:
        out.append(pkt.observe("service", NAME, subject=server, name=NAME, **svc))
    if hello and once(pkt, ("hello", pkt.from_client)):
        ident = hello_identity(strings)
        if ident:
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
    if frame.kind == "e" or (hello and strings.get("fatal")):
        out.append(pkt.observe("error", NAME, subject="src", code=frame.command,
                               name=strings.get("fatal") or f"Fox error frame: {frame.channel} {frame.command}"))
    if pkt.from_client:
        name, category = COMMANDS.get((frame.channel, frame.command),
                                      (f"{frame.channel} {frame.command}", "other"))
        out.append(pkt.observe("operation", NAME, subject="dst", category=category,
                               code=f"{frame.channel}.{frame.command}", name=name,
                               detail=f"{FRAME_TYPES.get(frame.kind, frame.kind)} frame"))
        user = next((strings[k] for k in USER_FIELDS if strings.get(k)), None)
        if user:
            out.append(pkt.observe("credential", NAME, subject=client, user=user, password=None,
                                   secret_type="digest", cleartext=False, result=None))
    return out


def hello_identity(strings: dict[str, str]) -> dict:
    """The identity a `fox hello` gives of its sender; {} when it names nothing. Every key is the
    sender's own statement except vendor, product and role_hint. hostAddress is kept as host_address,
    not as `ip` (an address that makes an asset): stations are often reached through NAT (the
    capture's station says 192.168.2.15 from a public address). The vendor is Tridium, whose
    Niagara framework every Fox speaker runs (OEM builds keep it and say their brand in
    brandId); the product is "Niagara " and the application's name (Station, Workbench)."""
    ident = {key: strings[f] for f, key in HELLO_FIELDS.items() if strings.get(f)}
    if "time_zone" in ident:            # the zone's name; its DST rules follow after ';'
        ident["time_zone"] = ident["time_zone"].split(";", 1)[0]
    app = strings.get("app.name")
    if not (ident.keys() - {"fox_version"}) and not app:
        return {}
    ident["vendor"] = "Tridium"
    if app:
        ident["product"] = f"Niagara {app}"
        if app in APP_ROLES:
            ident["role_hint"] = APP_ROLES[app]
    return ident


SPEC = ProtocolSpec(
    name=NAME, title="Niagara Fox", layer="industrial",
    decode=decode, signature=signature,
    tcp_ports=(FOX_PORT,),
    # "fox " and a whole header line of the grammar: safe on any port (a station's Fox port is
    # configurable)
    any_port=True,
    traits=frozenset({"industrial"}),
    server_role="gateway",
    observes=("credential", "error", "identity", "operation", "service"),
)
