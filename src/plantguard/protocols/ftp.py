"""FTP control channel (TCP 21).

  service     the 220 greeting as banner, with the server software when it names itself
  identity    what the 220 greeting says of the server (identity_from_banner: the raw banner,
              its software, and the vendor / product / model / firmware / OS where it names them,
              e.g. "220 cMT3090 FTP server ready." is a Weintek cMT3090 HMI)
  credential  USER / PASS in clear, settled by the server's answer (230 success, 530 failure;
              a 230 straight after USER is a login without password), emitted at the reply
              and oriented client -> server at the frame of the command that carried it
  identity    the SYST answer (215) as the server's `os`
  operation   file commands (RETR, STOR, DELE, ...) with category "file"
  session     AUTH TLS accepted (234): the rest of the connection is TLS and is handed to the
              TLS decoder (its observations carry proto "tls")
A stream that starts with Telnet option negotiation (IAC, 0xff) is not FTP."""
from __future__ import annotations

import re

from plantguard.model import Observation, Packet
from plantguard.protocols import tls
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols._sysdescr import parse_description
from plantguard.protocols.base import StreamBuffer, printable

NAME = "ftp"

BUFFER_CAP = 16384
MAX_LINE = 2048
MAX_LINES_PER_PACKET = 256
MAX_FILE_OPS = 64
ANONYMOUS = frozenset({"anonymous", "ftp"})
FILE_COMMANDS = {"RETR": "download", "STOR": "upload", "STOU": "upload", "APPE": "upload",
                 "DELE": "delete", "RNFR": "rename", "RNTO": "rename", "MKD": "mkdir",
                 "RMD": "rmdir", "SITE": "site"}
_COMMAND = re.compile(rb"[A-Za-z]{3,4}( [^\r\n]*)?\r?\n")
_REPLY = re.compile(rb"[1-5]\d\d[ -]")
# "vsFTPd 3.0.5", "FileZilla Server 1.9.1", "ProFTPD 1.3.5 Server", "Microsoft FTP Service"
_SOFTWARE = re.compile(r"((?:[A-Za-z][\w.\-]*\s){0,2}?[A-Za-z][\w\-]*[ /]v?\d+(?:\.\d+)+[\w.\-]*)")


def signature(payload: bytes) -> bool:
    """A server reply line ("220 ..." / "220-...") or a client command line (USER, AUTH, ...)."""
    head = bytes(payload[:MAX_LINE])
    if not head or head[0] == 0xFF:
        return False
    if _REPLY.match(head):
        return b"\n" in head or len(head) < MAX_LINE
    m = _COMMAND.match(head)
    return bool(m) and head[:4].upper().rstrip(b" ") in (
        b"USER", b"AUTH", b"FEAT", b"SYST", b"OPTS", b"HELP", b"PASS", b"QUIT", b"NOOP", b"PWD",
        b"TYPE", b"PASV", b"EPSV", b"PORT", b"EPRT", b"CWD", b"LIST", b"NLST", b"RETR", b"STOR")


def software_from_banner(text: str) -> str | None:
    m = _SOFTWARE.search(text)
    return m.group(1).strip() if m else None


# --- what a server's greeting says of the device (FTP, Telnet, SSH, HTTP Server / <title>) ----
# Product lines that name themselves in their greetings, with their maker. Only names that belong
# to one maker: "cMT3090" is a Weintek HMI, "NPort 5110" a Moxa serial server.
_DEVICE_LINES: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p), v) for p, v in (
    (r"(?<![\w-])(cMT-?(?:\d{4}[A-Z0-9]*|SVR[\w-]*|G\d\d[\w-]*|HD[\w-]*|FHD[\w-]*|X[\w-]*))(?![\w-])", "Weintek"),
    (r"(?<![\w-])(e?MT[3568]\d{2,3}(?:i[A-Z0-9]{0,3}|X[A-Z0-9]{0,3})?)(?![\w-])", "Weintek"),
    (r"(?<![\w-])((?:NPort|MGate|ioLogik|UC-|EDS-)[ -]?[A-Z]{0,2}\d{3,4}[\w-]*)", "Moxa"),
    ((r"(?<![\w-])((?:BMX|BME|TSX|140) ?(?:NOE|NOC|NOR|P34|P58|ETY|ETZ|CPU)[ -]?\d{0,5}[A-Z0-9]*"
      r"|Modicon (?:M\d{3}|Quantum|Premium)|TM2[245]1\w*)"), "Schneider Electric"),
    (r"(?<![\w-])(CP ?[34]43-1(?: (?:Advanced|IT|Lean|PN))?|(?:SIMATIC )?S7-(?:1200|1500|300|400))(?![\w-])", "Siemens"),
    (r"(?<![\w-])(750-8\d\d(?:/\d{3}-\d{3})?)(?![\w-])", "WAGO"),
    (r"(?<![\w-])(17(?:56|69|68)-[A-Z]{1,4}\d*[A-Z]*(?:/[A-Z])?)", "Rockwell Automation"),
))
# key: value lines of device consoles ("Model name : NPort 5110", "Firmware version : 2.10 Build 0804")
_FIELDS = re.compile(r"^[ \t]*(model(?: name)?|product(?: name)?|firmware(?: version)?|f/w(?: version)?|"
                     r"serial(?: no\.?| number)?|hardware(?: version)?|h/w(?: version)?|device name|server name)"
                     r"[ \t]*[:=][ \t]*(\S[^\r\n]*?)[ \t]*\r?$", re.I | re.M)
_FIELD_KEYS = {"model": "model", "product": "product", "firmware": "firmware", "f/w": "firmware",
               "serial": "serial", "hardware": "hardware", "h/w": "hardware", "device": "name", "server": "name"}
_FIRMWARE = re.compile(r"\b(?:firmware(?: version)?|FW|F/W)\s*[:=]?\s*[vV]?(\d[\w.\-]*[\w])", re.I)
# operating systems a greeting names: (pattern, name; {v} is the version the pattern captured)
_OS = tuple((re.compile(p, re.I), n) for p, n in (
    (r"\bvxworks\W{0,3}(\d[\d.]*\d)?", "VxWorks {v}"),
    (r"\bMicrosoft-WinCE/(\d[\d.]*)", "Windows CE {v}"),
    (r"\bWindows CE\b", "Windows CE"),
    (r"\bMicrosoft (?:FTP Service|Telnet Service)|\bMicrosoft-IIS/|\bMicrosoft-HTTPAPI/", "Windows"),
    (r"\bUbuntu\b", "Ubuntu Linux"),
    (r"\bDebian\b", "Debian Linux"),
    (r"\bRaspbian\b", "Raspbian Linux"),
    (r"\bFreeBSD\b", "FreeBSD"),
    (r"\bNetBSD\b", "NetBSD"),
    (r"\bOpenBSD\b", "OpenBSD"),
    (r"\bQNX\b", "QNX"),
))


def identity_from_banner(text: str | None, software: str | None = None) -> dict:
    """What a server's greeting or header plainly says of the device: the raw banner always,
    and, where it names them, its software, the vendor, product / model, firmware, serial and
    OS. Nothing is guessed from a version alone: "vsFTPd 3.0.5" is server software, not firmware."""
    text = (text or "").strip()
    if not text:
        return {}
    out: dict = {"banner": " ".join("".join(c if c.isprintable() else " " for c in text[:1024]).split())[:256]}
    if not out["banner"]:
        return {}
    for m in _FIELDS.finditer(text[:4096]):
        key = _FIELD_KEYS[m.group(1).split()[0].lower()]
        value = printable(m.group(2).encode("utf-8", "replace"), 128)
        if value and key not in out:
            out[key] = value
    if out.get("model") and not out.get("product"):
        out["product"] = out["model"]
    one_line = out["banner"]
    for pat, vendor in _DEVICE_LINES:
        m = pat.search(one_line)
        if m:
            product = m.group(1).strip()
            out.setdefault("product", product)
            out.setdefault("model", product)
            out.setdefault("vendor", vendor)
            break
    desc = parse_description(one_line)
    for key in ("vendor", "product", "order_number"):
        if desc.get(key):
            out.setdefault(key, desc[key])
    if "firmware" not in out:
        m = _FIRMWARE.search(one_line)
        if m:
            out["firmware"] = m.group(1)
    for pat, name in _OS:
        m = pat.search(one_line)
        if m:
            version = m.group(1) if m.groups() else None
            out["os"] = name.format(v=version or "").strip()
            break
    if software and not software.lower().startswith("ver"):
        out["software"] = software
    return out


def _lines(pkt: Packet, key: str) -> list[bytes]:
    st = pkt.state
    sb = st.get(key)
    if sb is None:
        sb = st[key] = StreamBuffer(BUFFER_CAP)
    if sb.overflow:
        sb.data.clear()
        sb.overflow = False
    sb.feed(pkt.seq, pkt.payload)
    out = []
    for _ in range(MAX_LINES_PER_PACKET):
        i = sb.data.find(b"\n")
        if i < 0:
            if len(sb.data) > MAX_LINE:   # an endless line: drop it
                sb.data.clear()
            break
        out.append(bytes(sb.data[:i]).rstrip(b"\r"))
        del sb.data[:i + 1]
    return out


def decode(pkt: Packet) -> list[Observation]:
    st = pkt.state
    if st.get("ftp_tls"):
        return tls.decode(pkt)
    out: list[Observation] = []
    if pkt.from_client:
        for line in _lines(pkt, "ftp_c"):
            _command(pkt, line, out)
    else:
        for line in _lines(pkt, "ftp_s"):
            _reply(pkt, line, out)
            if st.get("ftp_tls"):
                break
    return out


def _snapshot(pkt: Packet) -> tuple:
    return (pkt.capture, pkt.frame, pkt.ts, pkt.src, pkt.dst, pkt.src_mac, pkt.dst_mac,
            pkt.l4, pkt.sport, pkt.dport, pkt.vlan)


def _command(pkt: Packet, line: bytes, out: list) -> None:
    st = pkt.state
    verb, _, arg_b = line.partition(b" ")
    cmd = verb.decode("latin-1").upper()
    arg = arg_b.decode("latin-1")
    if cmd == "USER":
        out.extend(_flush(pkt))
        st["ftp_user"] = arg[:256]
        st["ftp_pending"] = ("USER", _snapshot(pkt), arg[:256], None)
    elif cmd == "PASS":
        user = st.get("ftp_user")
        st["ftp_pending"] = ("PASS", _snapshot(pkt), user, arg[:256])
    elif cmd in FILE_COMMANDS:
        n = st.get("ftp_ops", 0)
        if n < MAX_FILE_OPS:
            st["ftp_ops"] = n + 1
            out.append(pkt.observe("operation", NAME, category="file", code=cmd,
                                   name=FILE_COMMANDS[cmd], detail=printable(arg_b, 256) or None))
        else:
            out.append(pkt.observe("operation", NAME, category="file", code=cmd,
                                   name=FILE_COMMANDS[cmd], detail=None))
    elif cmd == "AUTH":
        st["ftp_auth"] = arg.strip().upper()[:16]
    st["ftp_last_cmd"] = cmd


def _flush(pkt: Packet, result: str | None = None, reply: int | None = None) -> list[Observation]:
    """The pending login, settled by `result` (None: no answer seen)."""
    pending = pkt.state.pop("ftp_pending", None)
    if not pending:
        return []
    stage, snap, user, password = pending
    if stage == "USER" and result != "success":
        return []    # a user name waiting for its password is not a login attempt yet
    capture, frame, ts, src, dst, smac, dmac, l4, sport, dport, vlan = snap
    anonymous = (user or "").lower() in ANONYMOUS
    data = {"user": user, "password": password,
            "secret_type": "anonymous" if anonymous else "password",
            "cleartext": True, "result": result}
    if reply is not None:
        data["reply_code"] = reply
    return [Observation("credential", NAME, capture, frame, ts, src, dst, smac, dmac, l4, sport,
                        dport, vlan, "dst", data)]


def _reply(pkt: Packet, line: bytes, out: list) -> None:
    st = pkt.state
    if len(line) < 3 or not line[:3].isdigit():
        return   # continuation text of a multi-line reply
    code = int(line[:3])
    if line[3:4] == b"-":
        if code == 220 and not st.get("ftp_banner_done"):
            st["ftp_banner_text"] = printable(line[4:], 256)
        return   # the final line of the multi-line reply carries the verdict
    text = printable(line[4:], 256)
    if code == 220 and not st.get("ftp_banner_done"):
        st["ftp_banner_done"] = True
        banner = st.pop("ftp_banner_text", None) or text
        data = {"name": NAME, "banner": banner}
        sw = software_from_banner(banner)
        if sw:
            data["software"] = sw
            data["version"] = re.split(r"[ /]v?", sw)[-1]
        out.append(pkt.observe("service", NAME, subject="src", **data))
        ident = identity_from_banner(banner, sw)
        if ident:
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
    elif code == 215 and st.get("ftp_last_cmd") == "SYST" and text:
        out.append(pkt.observe("identity", NAME, subject="src", os=text))
    elif code == 234 and st.get("ftp_auth") in ("TLS", "SSL", "TLS-C", "TLS-P"):
        out.extend(_flush(pkt))
        st["ftp_tls"] = True
        out.append(pkt.observe("session", NAME, subject="src", encrypted=True, auth="tls",
                               protocol_version=f"AUTH {st['ftp_auth']}"))
        # the TLS stream starts right after this reply, in both directions
        st.pop("ftp_c", None)
        st.pop("ftp_s", None)
        return
    pending = st.get("ftp_pending")
    if pending is None:
        return
    if code == 230:
        out.extend(_flush(pkt, "success", code))
    elif code in (530, 430, 421) or (code >= 500 and pending[0] == "PASS"):
        out.extend(_flush(pkt, "failure", code))
    elif code in (331, 332):
        if pending[0] == "PASS":
            out.extend(_flush(pkt, None, code))


SPEC = ProtocolSpec(
    name=NAME, title="FTP", layer="it",
    decode=decode, signature=signature,
    tcp_ports=(21,),
    # Output depends on earlier packets of the flow (a reply settles a command): the engine must
    # not replay a packet's observations from an earlier packet with the same bytes.
    replay=False,
    observes=("credential", "identity", "operation", "service", "session"),
)
