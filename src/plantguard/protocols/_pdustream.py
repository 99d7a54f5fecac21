"""TCP reassembly for the protocol decoders: the one retransmission rule (already_seen), a
bounded reorder window, and length-framed PDUs out of one direction of a TCP flow (Modbus MBAP,
EtherNet/IP encapsulation, TPKT): several PDUs in one segment and one PDU across segments.

The retransmission rule, shared with base.StreamBuffer (the byte-stream buffer of HTTP, TLS,
OPC UA, ...): a segment that starts at most RETRANSMIT_WINDOW bytes behind the next expected
sequence number repeats bytes already seen; they are dropped and only its new tail, if any, is
taken.

Reordering: a segment that starts ahead of the next expected sequence number, by at most
REORDER_WINDOW bytes, is taken on its own (which keeps decoding going through capture gaps and
the wild sequence numbers of fuzzed traffic), and the bytes it skipped become a *hole* (at most
REORDER_SEGMENTS per direction, none further back than RETRANSMIT_WINDOW). A later segment that
lies in a hole and starts or ends at its edge is the late, reordered data: it is parsed on its
own (not dropped as a retransmission) and the hole shrinks. A hole that never fills is a *gap*:
bytes lost, counted (STATS["stream_gaps"], SegmentStream.gaps per flow); a PDU cut short by it is
still handed over (tcp_pdus with header_len). A segment further ahead than the window, or
further back than the retransmission window, is a jump: the holes are forgotten. So is a hole
the stream has moved more than the retransmission window past (it can no longer be filled).

Memory is bounded per direction (the unfinished tail of one PDU and the holes' bounds). All
pending bytes of all streams also share one global byte budget (PENDING, sized by
plantguard.budget): past it an unfinished PDU is dropped and counted as a truncated decoder
buffer. STATS counts gaps, reordered segments and truncated buffers for the whole run (the
engine reports them)."""
from __future__ import annotations

from typing import Callable

RETRANSMIT_WINDOW = 1 << 16  # how far behind the stream a segment may start and count as a repeat
REORDER_WINDOW = 1 << 16     # how far ahead of the stream a segment may start and be held
REORDER_SEGMENTS = 64        # holes remembered per direction
NEED_MORE = 0                # frame_len() results: 0 = not enough bytes yet, -1 = not this protocol
BAD = -1

# a flow state's key: direction (from_client) -> where the segments the engine replayed without
# the module (capture/replay.py Primer) end; the stream moves there with no hole: skipped, not lost
PRIMED = "_after_replay"


def follows_replayed(state: dict, from_client: bool, end_seq: int | None) -> None:
    if end_seq is not None:
        state.setdefault(PRIMED, {})[from_client] = end_seq & 0xFFFFFFFF

# run-wide counts, reset by the engine and the reference at the start of a run
STATS = {"stream_gaps": 0, "segments_reordered": 0, "decoder_buffers_truncated": 0}


class PendingBudget:
    """One byte budget for the unfinished PDUs and held segments of every stream of a run."""
    __slots__ = ("limit", "used")

    def __init__(self, limit: int = 256 << 20):
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used = max(0, self.used - n)


PENDING = PendingBudget()


def reset(limit: int | None = None) -> None:
    """A new run: counters to zero, the pending budget empty (and resized when limit is given)."""
    for k in STATS:
        STATS[k] = 0
    PENDING.used = 0
    if limit is not None:
        PENDING.limit = limit


def already_seen(next_seq: int | None, seq: int) -> int:
    """How many leading bytes of a segment starting at `seq` the stream has had already, when it
    expects `next_seq` next: 1..RETRANSMIT_WINDOW for a retransmission (the whole segment when
    that covers its length), 0 for new data (in order, or after a jump; also before any data)."""
    if next_seq is None:
        return 0
    behind = (next_seq - seq) & 0xFFFFFFFF
    return behind if behind <= RETRANSMIT_WINDOW else 0


def ahead_of(next_seq: int | None, seq: int) -> int:
    """How far a segment starting at `seq` lies ahead of `next_seq`: 1..REORDER_WINDOW when it
    may be held until the gap fills, else 0."""
    if next_seq is None:
        return 0
    d = (seq - next_seq) & 0xFFFFFFFF
    return d if 0 < d <= REORDER_WINDOW else 0


class SegmentStream:
    """One direction's unfinished PDU and its holes (see the module docstring)."""
    __slots__ = ("pending", "next_seq", "cap", "holes", "gaps", "filled")

    def __init__(self, cap: int):
        self.pending = b""          # start of a PDU whose rest has not arrived yet
        self.next_seq: int | None = None
        self.cap = cap              # longest unfinished PDU kept
        self.holes: list[list[int]] = []  # [start, end) skipped over; late bytes there are new
        self.gaps = 0               # holes open and gaps given up: bytes that never arrived
        self.filled = False         # the last take() gave bytes of a hole (parsed on their own)

    def take(self, seq: int, payload: bytes) -> tuple[bytes, bytes]:
        """(truncated, data): a partial PDU whose rest was lost (b"" if none) and the bytes to
        parse now (the pending tail plus this segment's new bytes; or, when `filled` is set,
        the late bytes of a hole, on their own)."""
        truncated = b""
        self.filled = False
        nxt = self.next_seq
        if nxt is not None and seq != nxt:
            seen = already_seen(nxt, seq)
            if seen:
                if self.holes:
                    fill = self._fill(seq, payload)
                    if fill:
                        self.filled = True
                        return b"", fill         # late (reordered) bytes: new, parsed on their own
                if seen >= len(payload):
                    return b"", b""              # all of it was seen already
                payload = payload[seen:]         # overlapping retransmission: keep the new part
                seq = nxt
            else:
                d = ahead_of(nxt, seq)
                if d:
                    self._gap(nxt, seq)          # skipped over; late bytes there will still count
                else:                            # a jump: the holes belong elsewhere
                    self.gaps += 1
                    STATS["stream_gaps"] += 1
                    self.holes.clear()
                truncated = self._drop_pending()
        self.next_seq = (seq + len(payload)) & 0xFFFFFFFF
        if self.holes:
            self._expire_holes()
        data = self.pending + payload if self.pending else payload
        self._drop_pending()
        return truncated, data

    def skip_replayed(self, seq: int) -> None:
        """The engine replayed the segments before `seq` without this stream (routine PDUs, each
        whole in its segment): move on to `seq` with no hole and no gap counted."""
        if ahead_of(self.next_seq, seq):
            self._drop_pending()
            self.next_seq = seq
            if self.holes:
                self._expire_holes()

    def _gap(self, start: int, end: int) -> None:
        """Bytes [start, end) were skipped: a hole (at most REORDER_SEGMENTS, none further back
        than RETRANSMIT_WINDOW, where a late segment would count as a jump anyway)."""
        self.gaps += 1
        STATS["stream_gaps"] += 1
        holes = self.holes
        holes.append([start, end])
        while holes and (len(holes) > REORDER_SEGMENTS
                         or ((end - holes[0][0]) & 0xFFFFFFFF) > RETRANSMIT_WINDOW):
            holes.pop(0)

    def _expire_holes(self) -> None:
        """Holes the stream has moved more than RETRANSMIT_WINDOW past can no longer be filled
        (a segment there is a jump, not late data): forget them, so the direction stops waiting
        (a lost segment must not keep a polling flow out of the engine's replay for good)."""
        holes, nxt = self.holes, self.next_seq
        while holes and RETRANSMIT_WINDOW <= ((nxt - holes[0][1]) & 0xFFFFFFFF) < (1 << 31):
            holes.pop(0)

    def _fill(self, seq: int, payload: bytes) -> bytes:
        """A late segment that lies inside a hole (b"" if none): the hole shrinks."""
        for i, h in enumerate(self.holes):
            hs, he = h
            off = (seq - hs) & 0xFFFFFFFF
            size = (he - hs) & 0xFFFFFFFF
            if off >= size:
                continue
            n = len(payload)
            if off + n > size or (off and off + n != size):
                return b""          # not a late segment: one starts or ends at a hole's edge
            STATS["segments_reordered"] += 1
            rest = [[hs, seq]] if off else []
            end = (seq + n) & 0xFFFFFFFF
            if end != he:
                rest.append([end, he])
            self.holes[i:i + 1] = rest
            if not rest:                         # the hole is closed: no bytes were lost there
                self.gaps -= 1
                STATS["stream_gaps"] -= 1
            return payload[:n]
        return b""

    def _drop_pending(self) -> bytes:
        p = self.pending
        if p:
            PENDING.give(len(p))
            self.pending = b""
        return p

    def keep(self, rest: bytes) -> None:
        if not rest:
            return
        if len(rest) > self.cap or not PENDING.take(len(rest)):
            STATS["decoder_buffers_truncated"] += 1
            return
        self.pending = bytes(rest)

    def release(self) -> None:
        """The stream is dropped (its flow state evicted): give its bytes back to the budget."""
        self._drop_pending()

    @property
    def waiting(self) -> bool:
        """Open holes: later segments of this direction may be reordered bytes."""
        return bool(self.holes)


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
    after = pkt.state.get(PRIMED)
    if after and pkt.from_client in after:
        stream.skip_replayed(after.pop(pkt.from_client))
    truncated, data = stream.take(pkt.seq, pkt.payload)
    pdus, rest = split(data, frame_len, max_pdus) if data else ([], b"")
    if not stream.filled:        # late bytes of a hole: a cut-short tail there cannot be continued
        stream.keep(rest)
    if header_len and len(truncated) >= header_len:
        pdus.insert(0, truncated)
    return pdus


def release_state(state: dict) -> None:
    """A flow's module state is dropped: give its streams' bytes back to the budget (streams
    kept in the state, or one level down as a decoder object's `sb`)."""
    for v in state.values():
        for obj in (v, getattr(v, "sb", None)):
            if obj is not None and hasattr(obj, "next_seq") and hasattr(obj, "release"):
                obj.release()
