"""Small helpers shared by protocol modules."""
from __future__ import annotations

import struct


class StreamBuffer:
    """Light TCP reassembly for one direction of a flow: appends in-order payloads up to a cap,
    so a decoder can read PDUs that span segments (TLS handshakes, HTTP headers).
    Out-of-order or retransmitted segments are ignored rather than reordered (best effort)."""
    __slots__ = ("data", "next_seq", "cap", "overflow")

    def __init__(self, cap: int = 65536):
        self.data = bytearray()
        self.next_seq: int | None = None
        self.cap = cap
        self.overflow = False

    def feed(self, seq: int, payload: bytes) -> None:
        if not payload:
            return
        if self.next_seq is not None and seq != self.next_seq:
            # retransmission or gap: ignore retransmits, accept the jump after a gap
            if (seq - self.next_seq) & 0xFFFFFFFF > 0x7FFFFFFF:
                return
        if len(self.data) + len(payload) > self.cap:
            self.overflow = True
            return
        self.data += payload
        self.next_seq = (seq + len(payload)) & 0xFFFFFFFF

    def consume(self, n: int) -> bytes:
        out = bytes(self.data[:n])
        del self.data[:n]
        return out


def cstr(b: bytes, encoding: str = "latin-1") -> str:
    """Bytes up to the first NUL, decoded, stripped of padding spaces."""
    i = b.find(b"\x00")
    if i >= 0:
        b = b[:i]
    return b.decode(encoding, "replace").strip()


def printable(b: bytes, limit: int = 256) -> str:
    """A safe one-line rendering of untrusted bytes (for banners and names)."""
    s = b[:limit].decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() else " " for ch in s).strip()


u16be = struct.Struct(">H").unpack_from
u32be = struct.Struct(">I").unpack_from
u16le = struct.Struct("<H").unpack_from
u32le = struct.Struct("<I").unpack_from


ONCE_LIMIT = 256   # distinct facts remembered per flow; past it a flow reports nothing new


def once(pkt, token, limit: int = ONCE_LIMIT) -> bool:
    """True the first time `token` is seen on this packet's flow (per-flow decoder state), so a
    fact repeated on every poll is reported once; False for repeats and past `limit` tokens."""
    seen = pkt.state.setdefault("seen", set())
    if token in seen or len(seen) > limit:
        return False
    seen.add(token)
    return True
