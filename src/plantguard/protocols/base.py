"""Small helpers shared by protocol modules."""
from __future__ import annotations

import struct

from plantguard.protocols import _pdustream
from plantguard.protocols._pdustream import already_seen


class StreamBuffer:
    """Light TCP reassembly for one direction of a flow: appends in-order payloads up to a cap,
    so a decoder can read PDUs that span segments (TLS handshakes, HTTP headers). Segments are
    not reordered (best effort). Retransmissions follow the one rule of _pdustream.already_seen,
    which SegmentStream follows too: bytes already seen are dropped, the new tail of an
    overlapping segment is kept, and a segment starting elsewhere is taken after a jump (check
    jumped() first when lost bytes must reset the decoder). The buffered bytes count against the
    run's pending-byte budget (_pdustream.PENDING, charged at each feed for what the decoder left
    in `data`): past it, or past `cap`, the buffer overflows, counted once as a truncated decoder
    buffer."""
    __slots__ = ("data", "next_seq", "cap", "overflow", "charged")

    def __init__(self, cap: int = 65536):
        self.data = bytearray()
        self.next_seq: int | None = None
        self.cap = cap
        self.overflow = False
        self.charged = 0            # bytes of the pending budget this buffer holds

    def jumped(self, seq: int) -> bool:
        """True when a segment starting at `seq` is not the next one and repeats nothing: the
        bytes between were lost (a capture gap)."""
        return self.next_seq is not None and seq != self.next_seq and not already_seen(self.next_seq, seq)

    def feed(self, seq: int, payload: bytes) -> None:
        if not payload:
            return
        if seq != self.next_seq and self.next_seq is not None:
            seen = already_seen(self.next_seq, seq)
            if seen >= len(payload):
                return                          # a retransmission of bytes already taken
            if seen:
                payload = payload[seen:]        # overlapping: keep the new tail
                seq = self.next_seq
        n = len(self.data) + len(payload)
        delta = n - self.charged
        if n > self.cap or (delta > 0 and not _pdustream.PENDING.take(delta)):
            if not self.overflow:
                _pdustream.STATS["decoder_buffers_truncated"] += 1
            self.overflow = True
            return
        if delta < 0:
            _pdustream.PENDING.give(-delta)
        self.charged = n
        self.data += payload
        self.next_seq = (seq + len(payload)) & 0xFFFFFFFF


    def release(self) -> None:
        """The buffer is dropped with its flow's state: its bytes go back to the budget."""
        _pdustream.PENDING.give(self.charged)
        self.charged = 0


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


# little-endian fields at an offset: (value,) = u16le(buffer, offset)
u16le = struct.Struct("<H").unpack_from
u32le = struct.Struct("<I").unpack_from


ONCE_LIMIT = 256   # distinct facts remembered per flow; past it a flow reports nothing new


def once(pkt, token, limit: int = ONCE_LIMIT) -> bool:
    """True the first time `token` is seen on this packet's flow (per-flow decoder state), so a
    fact repeated on every poll is reported once; False for repeats and past `limit` tokens."""
    seen = pkt.state.get("seen")
    if seen is None:
        pkt.state["seen"] = {token}
        return True
    if token in seen or len(seen) > limit:
        return False
    seen.add(token)
    return True
