"""TCP reassembly for the protocol decoders: the one retransmission rule (already_seen), and
length-framed PDUs out of one direction of a TCP flow (Modbus MBAP, EtherNet/IP encapsulation,
TPKT): several PDUs in one segment and one PDU across segments.

The retransmission rule, shared with base.StreamBuffer (the byte-stream buffer of HTTP, TLS,
OPC UA, ...): a segment that starts at most RETRANSMIT_WINDOW bytes behind the next expected
sequence number repeats bytes already seen; they are dropped and only its new tail, if any, is
taken. A segment starting anywhere else (ahead of the stream, or further back than the window,
as in fuzzed traffic) is new data after a jump: bytes were lost.

Unlike a byte-exact reassembler SegmentStream keeps only the unfinished tail of the last PDU,
so memory is bounded by one PDU. A segment is taken on its own whenever nothing is pending,
which keeps decoding going through capture gaps and the wild sequence numbers of fuzzed
traffic."""
from __future__ import annotations

from typing import Callable

RETRANSMIT_WINDOW = 1 << 16  # how far behind the stream a segment may start and count as a repeat
NEED_MORE = 0                # frame_len() results: 0 = not enough bytes yet, -1 = not this protocol
BAD = -1


def already_seen(next_seq: int | None, seq: int) -> int:
    """How many leading bytes of a segment starting at `seq` the stream has had already, when it
    expects `next_seq` next: 1..RETRANSMIT_WINDOW for a retransmission (the whole segment when
    that covers its length), 0 for new data (in order, or after a jump; also before any data)."""
    if next_seq is None:
        return 0
    behind = (next_seq - seq) & 0xFFFFFFFF
    return behind if behind <= RETRANSMIT_WINDOW else 0


class SegmentStream:
    """One direction's unfinished PDU (see the module docstring)."""
    __slots__ = ("pending", "next_seq", "cap")

    def __init__(self, cap: int):
        self.pending = b""          # start of a PDU whose rest has not arrived yet
        self.next_seq: int | None = None
        self.cap = cap              # longest unfinished PDU kept

    def take(self, seq: int, payload: bytes) -> tuple[bytes, bytes]:
        """(truncated, data): a partial PDU whose rest was lost (b"" if none) and the bytes to
        parse now (the pending tail plus this segment's new bytes)."""
        truncated = b""
        if self.next_seq is not None:
            seen = already_seen(self.next_seq, seq)
            if seen:
                if seen >= len(payload):
                    return b"", b""              # all of it was seen already
                payload = payload[seen:]         # overlapping retransmission: keep the new part
                seq = self.next_seq
            if self.pending and seq != self.next_seq:
                truncated, self.pending = self.pending, b""   # bytes were lost
        self.next_seq = (seq + len(payload)) & 0xFFFFFFFF
        data = self.pending + payload if self.pending else payload
        self.pending = b""
        return truncated, data

    def keep(self, rest: bytes) -> None:
        self.pending = bytes(rest) if len(rest) <= self.cap else b""


def split(data: bytes, frame_len: Callable[[bytes, int], int], max_pdus: int) -> tuple[list[bytes], bytes]:
    """Cut `data` into whole PDUs; returns (pdus, unfinished tail). Bytes that do not frame as
    this protocol end the walk and are dropped (the next segment starts afresh)."""
    out: list[bytes] = []
    off, n = 0, len(data)
    while off < n and len(out) < max_pdus:
        size = frame_len(data, off)
        if size == BAD:
            return out, b""
        if size == NEED_MORE or off + size > n:
            return out, data[off:]
        out.append(data[off:off + size])
        off += size
    return out, (data[off:] if len(out) < max_pdus else b"")


def tcp_pdus(pkt, frame_len: Callable[[bytes, int], int], cap: int, max_pdus: int,
             header_len: int = 0) -> list[bytes]:
    """Whole PDUs completed by this packet (TCP: reassembled per direction in pkt.state;
    UDP: the datagram's PDUs). With header_len > 0, a PDU cut short by lost bytes comes
    first when at least its header arrived: shorter than its length field says, but its
    function is known (a write whose tail the capture lost is still a write)."""
    if pkt.l4 != "tcp":
        pdus, rest = split(pkt.payload, frame_len, max_pdus)
        return pdus + ([rest] if header_len and len(rest) >= header_len else [])
    key = "_c2s" if pkt.from_client else "_s2c"
    stream = pkt.state.get(key)
    if stream is None:
        stream = pkt.state[key] = SegmentStream(cap)
    truncated, data = stream.take(pkt.seq, pkt.payload)
    pdus, rest = split(data, frame_len, max_pdus) if data else ([], b"")
    stream.keep(rest)
    if header_len and len(truncated) >= header_len:
        pdus.insert(0, truncated)
    return pdus
