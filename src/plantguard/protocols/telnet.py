"""Telnet (TCP 23, and any port whose stream opens with Telnet option negotiation).

  service     the server's first text (after removing IAC negotiation) as banner; emitted
              once per connection as soon as the server speaks, banner or not
  identity    what that first text says of the server (ftp.identity_from_banner: the raw
              banner, and the vendor / product / model / firmware / serial / OS it names, e.g. a
              console's "Model name : NPort 5110" and "Firmware version : ..." lines)
  credential  best effort: the client's keystrokes after a "login:" / "Username:" prompt are
              the user, after a "Password:" prompt the password (cleartext). Emitted when the
              server answers the password, with result "failure" if it complains or prompts
              for a login again, else "success".
Keystrokes arrive one per segment or a line at a time; backspace/delete are applied."""
from __future__ import annotations

import re

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols.ftp import identity_from_banner

NAME = "telnet"

IAC, SB, SE = 0xFF, 0xFA, 0xF0
WILL, WONT, DO, DONT = 0xFB, 0xFC, 0xFD, 0xFE
MAX_TEXT = 2048          # server text kept for prompt matching
MAX_INPUT = 256          # one typed line
MAX_SB = 512             # a sub-negotiation longer than this is not Telnet

_USER_PROMPT = re.compile(r"(login|user ?name|user|username|login name)\s*:\s*$", re.IGNORECASE)
_PASS_PROMPT = re.compile(r"(password|passcode|passwd)\s*:\s*$", re.IGNORECASE)
_FAILURE = re.compile(r"incorrect|invalid|fail|denied|bad (password|login)|not allowed", re.IGNORECASE)
_LOGIN_TEXT = re.compile(r"(login|username|password)\s*:", re.IGNORECASE)


def signature(payload: bytes) -> bool:
    """Option negotiation from the first byte: one or more complete IAC WILL/WONT/DO/DONT x or
    IAC SB ... IAC SE commands, possibly followed by text; or a bare login prompt."""
    b = bytes(payload[:512])
    if b[:1] == bytes([IAC]):
        i = commands = 0
        while i < len(b) and b[i] == IAC and commands < 32:
            if i + 1 >= len(b):
                break
            cmd = b[i + 1]
            if cmd in (WILL, WONT, DO, DONT):
                if i + 2 >= len(b):
                    return False
                i += 3
            elif cmd == SB:
                end = b.find(bytes([IAC, SE]), i + 2)
                if end < 0 or end - i > MAX_SB:
                    return False
                i = end + 2
            else:
                return False
            commands += 1
        return commands > 0
    text = b.decode("latin-1")
    return bool(_LOGIN_TEXT.search(text)) and all(c.isprintable() or c in "\r\n\t" for c in text)


class _Stripper:
    """Removes Telnet commands from a byte stream (state kept across segments)."""
    __slots__ = ("state",)

    def __init__(self):
        self.state = 0   # 0 data, 1 after IAC, 2 option byte, 3 in SB, 4 IAC inside SB

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        s = self.state
        for byte in data:
            if s == 0:
                if byte == IAC:
                    s = 1
                else:
                    out.append(byte)
            elif s == 1:
                if byte == IAC:
                    out.append(IAC)
                    s = 0
                elif byte in (WILL, WONT, DO, DONT):
                    s = 2
                elif byte == SB:
                    s = 3
                else:
                    s = 0
            elif s == 2:
                s = 0
            elif s == 3:
                if byte == IAC:
                    s = 4
            elif s == 4:
                s = 0 if byte == SE else 3
        self.state = s
        return bytes(out)


def _strip(pkt: Packet, key: str, payload: bytes) -> str:
    st = pkt.state
    sp = st.get(key)
    if sp is None:
        sp = st[key] = _Stripper()
    nxt = st.get(key + "_seq")
    if pkt.l4 == "tcp" and nxt is not None and (pkt.seq - nxt) & 0xFFFFFFFF > 0x7FFFFFFF:
        return ""    # a retransmission: these keystrokes were already counted
    if pkt.l4 == "tcp":
        st[key + "_seq"] = (pkt.seq + len(payload)) & 0xFFFFFFFF
    return sp.feed(payload).decode("latin-1")


def decode(pkt: Packet) -> list[Observation]:
    if pkt.from_client:
        return _client(pkt, _strip(pkt, "tn_c", pkt.payload))
    return _server(pkt, _strip(pkt, "tn_s", pkt.payload))


def _server(pkt: Packet, text: str) -> list[Observation]:
    st = pkt.state
    out: list[Observation] = []
    banner = " ".join(text.split())[:256]
    if not st.get("tn_service"):
        # the server spoke: it offers Telnet, whether or not it has shown text yet
        st["tn_service"] = True
        out.append(pkt.observe("service", NAME, subject="src", name=NAME))
    if banner and not st.get("tn_banner"):
        st["tn_banner"] = True
        out.append(pkt.observe("service", NAME, subject="src", name=NAME, banner=banner))
        ident = identity_from_banner(text)
        if ident:
            out.append(pkt.observe("identity", NAME, subject="src", **ident))
    if not text:
        return out
    if st.get("tn_pending") is not None and text.strip():
        failed = bool(_FAILURE.search(text)) or bool(_USER_PROMPT.search(text.rstrip()))
        out.extend(_flush(pkt, "failure" if failed else "success"))
    seen = (st.get("tn_text", "") + text)[-MAX_TEXT:]
    st["tn_text"] = seen
    tail = seen.rstrip(" ")
    if _PASS_PROMPT.search(tail):
        st["tn_expect"] = "password"
        st["tn_text"] = ""
    elif _USER_PROMPT.search(tail):
        st["tn_expect"] = "user"
        st["tn_text"] = ""
    return out


def _client(pkt: Packet, text: str) -> list[Observation]:
    st = pkt.state
    out: list[Observation] = []
    if st.get("tn_expect") is None:
        return out
    line = st.get("tn_line", "")
    for ch in text:
        if ch in "\r\n\x00":
            if ch == "\x00" or not (line or ch == "\r"):
                continue
            out.extend(_line_done(pkt, line))
            line = ""
            if st.get("tn_expect") is None:
                break
        elif ch in "\x08\x7f":
            line = line[:-1]
        elif len(line) < MAX_INPUT and ch.isprintable():
            line += ch
    st["tn_line"] = line
    return out


def _line_done(pkt: Packet, line: str) -> list[Observation]:
    st = pkt.state
    expect = st.pop("tn_expect", None)
    if expect == "user":
        st["tn_user"] = line
        st["tn_user_snap"] = _snapshot(pkt)
        return []
    if expect == "password":
        st["tn_pending"] = (st.get("tn_user_snap") or _snapshot(pkt), st.pop("tn_user", None), line)
    return []


def _snapshot(pkt: Packet) -> tuple:
    return (pkt.capture, pkt.frame, pkt.ts, pkt.src, pkt.dst, pkt.src_mac, pkt.dst_mac,
            pkt.l4, pkt.sport, pkt.dport, pkt.vlan)


def _flush(pkt: Packet, result: str | None) -> list[Observation]:
    pending = pkt.state.pop("tn_pending", None)
    pkt.state.pop("tn_user_snap", None)
    if pending is None:
        return []
    snap, user, password = pending
    capture, frame, ts, src, dst, smac, dmac, l4, sport, dport, vlan = snap
    return [Observation("credential", NAME, capture, frame, ts, src, dst, smac, dmac, l4, sport,
                        dport, vlan, "dst", {"user": user, "password": password,
                                             "secret_type": "password", "cleartext": True,
                                             "result": result})]


SPEC = ProtocolSpec(
    name=NAME, title="Telnet", layer="it",
    decode=decode, signature=signature,
    tcp_ports=(23, 2323),
    any_port=True,
    # Output depends on earlier packets of the flow (keystrokes arrive one per segment): the engine must
    # not replay a packet's observations from an earlier packet with the same bytes.
    replay=False,
    observes=("credential", "identity", "service"),
)
