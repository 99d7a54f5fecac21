"""Capture file readers: classic pcap (µs/ns, both byte orders), pcapng (several interfaces,
EPB/SPB/OPB, per-interface link type and timestamp resolution), gzip-compressed either way, and
directories of captures.

Files are read in chunks of whole records: a chunk is one buffer plus arrays of record offsets,
lengths, timestamps and link types, so the columnar tier can decode a whole chunk at once and
memory never grows with the number of packets. Truncated or corrupt input ends the file early
with a counted warning instead of an exception; a bad record that does not hide where the next
one starts (a pcapng packet block naming no interface, an option running past its block) is
skipped with a counted warning. Warnings are kept as counts per kind with at most
WARNING_EXAMPLES texts each, so a file of a million bad records gives a handful of lines.

Timestamps are checked once, here: a time before 1990 or more than a day after the reading is
implausible and counted (one warning per capture); one no consumer could use (before 1970, after
2100, not a number) is replaced by the previous usable time of the capture. Times that go
backwards, records cut by the snapshot length and a capture with no records are counted too
(COUNTED_KINDS: one line each with the count). See docs/robustness.md.
"""
from __future__ import annotations

import mmap
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from plantguard.capture import walk
from plantguard.capture.sources import check_capture_path, open_capture
from plantguard.capture.walk import walk_pcap
from plantguard.errors import InputError
from plantguard.model import CaptureStats

# Link types we decode (others are counted and skipped).
LINKTYPE_NULL = 0          # BSD loopback
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101         # raw IPv4/IPv6
LINKTYPE_LOOP = 108        # OpenBSD loopback
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
LINKTYPE_RAW_ALT = 12      # some systems write 12 or 14 for raw IP
LINKTYPE_RAW_ALT2 = 14
LINKTYPE_PPP = 9
LINKTYPE_PPP_HDLC = 50
LINKTYPE_C_HDLC = 104
LINKTYPE_IEEE802_11 = 105
LINKTYPE_FRELAY = 107
LINKTYPE_IEEE802_11_RADIOTAP = 127
LINKTYPE_PPI = 192
LINKTYPE_NFLOG = 239

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz", ".gz", ".dmp")

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
MAX_RECORD = 256 * 1024    # larger claimed lengths mean corruption
WARNING_EXAMPLES = 3       # warning texts kept per kind and capture; the rest are only counted
TS_PLAUSIBLE_MIN = 631_152_000.0   # 1990-01-01T00:00:00Z: earlier means a clock never set
TS_MAX = 4_102_444_800.0           # 2100-01-01T00:00:00Z: later is corruption (replaced)
TS_AHEAD = 86_400.0                # more than a day after the reading: a clock set wrong
TS_IMPLAUSIBLE = "implausible_timestamp"
TS_BACKWARDS = "time_backwards"
SNAPLEN_CUT = "snaplen_cut"
NO_PACKETS = "no_packets"
# kinds counted per record with no example texts: one line per capture, with the count
COUNTED_KINDS = {
    TS_BACKWARDS: "{n} earlier than the record before (the capture's times go backwards; kept as recorded)",
    SNAPLEN_CUT: ("{n} cut by the snapshot length (captured length below the wire length): what their "
                  "protocols carried past the cut is missing"),
}


class CaptureError(InputError):
    """A capture that cannot be read at all (not a capture, unreadable, not a regular file).
    One-line message."""


@dataclass
class Chunk:
    """A batch of consecutive records from one capture file."""
    buf: bytes | memoryview
    offsets: np.ndarray      # int64: start of each record's packet data in buf
    caplen: np.ndarray       # int32: captured bytes
    wirelen: np.ndarray      # int32: original length on the wire
    ts: np.ndarray           # float64: seconds since the epoch
    linktype: np.ndarray     # int32: per record (pcapng interfaces may differ)
    first_frame: int         # frame number (1-based) of the first record
    arr: np.ndarray | None = None  # buf as uint8 (shared by all chunks of a file)
    frames: np.ndarray | None = None  # int64 frame numbers when not consecutive (one shard's records)

    def __len__(self) -> int:
        return len(self.offsets)

    def frame_numbers(self) -> np.ndarray:
        """The frame number of every record."""
        if self.frames is not None:
            return self.frames
        return self.first_frame + np.arange(len(self.offsets), dtype=np.int64)

    def take(self, rows: np.ndarray) -> "Chunk":
        """These records only (in the same buffer), keeping their frame numbers."""
        frames = self.frame_numbers()[rows]
        return Chunk(self.buf, self.offsets[rows], self.caplen[rows], self.wirelen[rows], self.ts[rows],
                     self.linktype[rows], int(frames[0]) if len(frames) else self.first_frame, self.arr, frames)


@dataclass
class ReadStats:
    """What reading one capture found. Warnings are counted per kind (warning_counts) and at
    most WARNING_EXAMPLES texts of each kind are kept; `warnings` lists those texts, then one
    line per kind that had more, then the implausible-timestamp count."""
    path: str
    packets: int = 0
    bytes: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    linktypes: set = field(default_factory=set)
    warning_counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    replaced_ts: int = 0      # unusable timestamps given the previous usable one

    def count(self, kind: str, n: int) -> None:
        """n more records of a COUNTED_KINDS kind (or implausible timestamps): counted, no text."""
        if n:
            self.warning_counts[kind] = self.warning_counts.get(kind, 0) + n

    def warn(self, kind: str, text: str) -> None:
        """One warning of `kind` (a short snake_case name, see docs/robustness.md)."""
        n = self.warning_counts[kind] = self.warning_counts.get(kind, 0) + 1
        if n <= WARNING_EXAMPLES:
            self.examples.append(text)

    def failed(self, exc: Exception) -> None:
        """Analysing this capture raised something no reader or decoder contained: one warning
        naming it (the run goes on with the next capture)."""
        msg = " ".join(str(exc).split())[:200]
        self.warn("analysis_error", f"internal error while analysing packets up to {self.packets:,} "
                                    f"({type(exc).__name__}{': ' + msg if msg else ''}); this capture's "
                                    "analysis stops there, the other captures are not affected")

    def capture_stats(self) -> CaptureStats:
        return CaptureStats(self.path, self.packets, self.bytes, self.first_ts, self.last_ts, self.warnings,
                            dict(self.warning_counts), sorted(self.linktypes))

    @property
    def warnings(self) -> list[str]:
        out = list(self.examples)
        for kind, n in self.warning_counts.items():
            if kind == TS_IMPLAUSIBLE:
                out.append(_timestamp_warning(n, self.replaced_ts))
            elif kind in COUNTED_KINDS:
                out.append(COUNTED_KINDS[kind].format(n=f"{n:,} {'record' if n == 1 else 'records'}"))
            elif n > WARNING_EXAMPLES:
                out.append(f"{n:,} {kind.replace('_', ' ')} warnings in all (the first {WARNING_EXAMPLES} are listed)")
        return out


def _timestamp_warning(n: int, replaced: int) -> str:
    text = (f"{n:,} {'packet' if n == 1 else 'packets'} with implausible timestamps (before 1990 or more than "
            "a day after the reading, UTC)")
    if replaced:
        return (text + f"; {replaced:,} of them, before 1970, after 2100 or not a number, were replaced by the "
                       "previous packet's time (1970 or 2100 when none came before)")
    return text + "; kept as recorded"


def expand_paths(paths: list[str | os.PathLike]) -> list[Path]:
    """Files as given; a directory means every capture below it (sorted, recursive). A directory
    with no capture below it is a CaptureError."""
    out: list[Path] = []
    for p in map(Path, paths):
        try:
            check_capture_path(p)       # a FIFO, device or socket is refused before any read
        except InputError as exc:
            raise CaptureError(str(exc)) from None
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and _looks_like_capture(f))
            if not found:   # an empty report of no plant would look like a quiet plant
                raise CaptureError(f"{p}: no capture files found (none named {', '.join(CAPTURE_SUFFIXES[:3])}, "
                                   "... or starting like a capture)")
            out.extend(found)
        else:
            out.append(p)
    return out


def _looks_like_capture(f: Path) -> bool:
    name = f.name.lower()
    if name.endswith(CAPTURE_SUFFIXES):
        return True
    try:
        with open(f, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head in PCAP_MAGICS or head == PCAPNG_SHB or head[:2] == GZIP_MAGIC


def _open_bytes(path: Path, stats: ReadStats | None = None) -> bytes | mmap.mmap | memoryview:
    """Whole file as a buffer: memory-mapped when plain, decompressed when gzip."""
    try:
        fh = open_capture(path)     # regular files only, checked again once open
    except InputError as exc:
        raise CaptureError(str(exc)) from None
    try:
        with fh:
            head = fh.read(4)
            if head[:2] == GZIP_MAGIC:
                fh.seek(0)
                try:
                    data, complete = _gunzip_tolerant(fh)
                    if not complete and stats is not None:
                        stats.warn("gzip", "gzip data truncated or corrupt; kept what came before")
                    return data
                except OSError as exc:
                    raise CaptureError(f"{path}: corrupt gzip data ({exc})") from None
            if os.fstat(fh.fileno()).st_size == 0:
                return b""
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _gunzip_tolerant(fh):
    """Decompress as much as is readable into an unnamed temporary file and map it, so a large
    compressed capture is paged like a plain one instead of held in memory. A truncated or
    corrupt gzip keeps what came before the damage."""
    import tempfile
    import zlib
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    tmp = tempfile.TemporaryFile()
    with tmp:
        while True:
            block = fh.read(1 << 20)
            if not block:
                break
            try:
                tmp.write(d.decompress(block))
            except zlib.error:
                break
            while d.eof and d.unused_data:   # concatenated gzip members
                rest = d.unused_data
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                try:
                    tmp.write(d.decompress(rest))
                except zlib.error:
                    break
        try:
            tmp.write(d.flush())
        except zlib.error:
            pass
        tmp.flush()
        complete = d.eof
        if tmp.tell() == 0:
            return b"", complete
        return mmap.mmap(tmp.fileno(), 0, access=mmap.ACCESS_READ), complete


def read_chunks(path: str | os.PathLike, stats: ReadStats | None = None,
                chunk_records: int = 65536) -> Iterator[Chunk]:
    """Yield chunks of records from one capture file (pcap, pcapng, gzip of either)."""
    path = Path(path)
    stats = stats if stats is not None else ReadStats(str(path))
    data = _open_bytes(path, stats)
    head = bytes(data[:4])
    if len(data) == 0:
        stats.warn("empty", "empty file")
        return
    if head in PCAP_MAGICS:
        yield from _pcap_chunks(data, stats, chunk_records)
    elif head == PCAPNG_SHB:
        yield from _pcapng_chunks(data, stats, chunk_records)
    else:
        raise CaptureError(f"{path}: not a pcap or pcapng capture (starts with {head.hex()})")
    if not stats.packets and not stats.warning_counts:   # read to its end: a header and nothing else
        stats.warn(NO_PACKETS, "no packets: the capture is a valid header with no records")


def _finish(stats: ReadStats, chunk: Chunk) -> Chunk:
    n = len(chunk)
    if n:
        _check_times(stats, chunk.ts)
        _check_order(stats, chunk.ts)
        stats.count(SNAPLEN_CUT, int(np.count_nonzero(chunk.caplen < chunk.wirelen)))
        stats.packets += n
        stats.bytes += int(chunk.wirelen.sum())
        if stats.first_ts is None:
            stats.first_ts = float(chunk.ts[0])
        stats.last_ts = float(chunk.ts[-1])
        stats.linktypes.update(int(x) for x in np.unique(chunk.linktype))
    return chunk


def _check_order(stats: ReadStats, ts: np.ndarray) -> None:
    """Count the records earlier than the record before them (the previous chunk's last too)."""
    back = int(np.count_nonzero(ts[1:] < ts[:-1]))
    if stats.last_ts is not None and ts[0] < stats.last_ts:
        back += 1
    stats.count(TS_BACKWARDS, back)


def _check_times(stats: ReadStats, ts: np.ndarray) -> None:
    """Count a chunk's implausible timestamps (before 1990, or more than TS_AHEAD after now: the
    bound moves with the clock, so a monitor running for weeks keeps it). Those no consumer could use
    (before 1970, after 2100, not a number) are replaced in place by the previous usable time
    of the capture, or clamped to 1970..2100 when there is none yet. Times from 1970 to 1990
    (a device whose clock was never set) are kept, so durations inside the capture hold."""
    plausible = (ts >= TS_PLAUSIBLE_MIN) & (ts <= min(TS_MAX, time.time() + TS_AHEAD))
    if plausible.all():
        return
    stats.count(TS_IMPLAUSIBLE, int(np.count_nonzero(~plausible)))
    usable = (ts >= 0) & (ts <= TS_MAX)           # NaN is neither
    if usable.all():
        return
    idx = np.where(usable, np.arange(len(ts)), -1)
    np.maximum.accumulate(idx, out=idx)
    if stats.last_ts is not None:
        fallback = np.full(len(ts), stats.last_ts)
    else:
        fallback = np.clip(np.nan_to_num(ts, nan=0.0, posinf=TS_MAX, neginf=0.0), 0.0, TS_MAX)
    ts[:] = np.where(usable, ts, np.where(idx >= 0, ts[np.maximum(idx, 0)], fallback))
    stats.replaced_ts += int(np.count_nonzero(~usable))


def _pcap_chunks(data, stats: ReadStats, chunk_records: int) -> Iterator[Chunk]:
    end, unit = PCAP_MAGICS[bytes(data[:4])]
    size = len(data)
    if size < 24:
        stats.warn("truncated", "truncated pcap header")
        return
    linktype = struct.unpack_from(end + "I", data, 20)[0] & 0x0FFFFFFF
    arr = np.frombuffer(data, dtype=np.uint8)
    off = 24
    frame = 1
    released = 0
    while off < size:
        offs, caps, wires, secs, fracs, nxt, status = walk_pcap(arr, off, chunk_records, end == ">", MAX_RECORD)
        n = len(offs)
        if n:
            ts = secs.astype(np.float64) + fracs.astype(np.float64) * unit
            yield _finish(stats, Chunk(data, offs, caps, wires, ts, np.full(n, linktype, dtype=np.int32),
                                       frame, arr))
            frame += n
            released = _release(data, released, int(offs[0]))
        if status != walk.OK:
            kind, text = _WALK_WARNINGS[status]
            stats.warn(kind, text.format(off=nxt))
            break
        if n == 0:
            break
        off = nxt


def _release(data, released: int, upto: int) -> int:
    """Drop the mapped pages of chunks already analysed from this process's resident set, so
    memory stays flat however large the file (the pages stay in the page cache and are
    re-read if a later packet refers back to them)."""
    if not isinstance(data, mmap.mmap):
        return released
    upto -= upto % mmap.PAGESIZE
    if upto - released >= 16 * 1024 * 1024:
        try:
            data.madvise(mmap.MADV_DONTNEED, released, upto - released)
        except (AttributeError, OSError, ValueError):
            return upto
        return upto
    return released


_WALK_WARNINGS = {
    walk.TRUNC_HEADER: ("truncated", "truncated record header at byte {off}"),
    walk.CORRUPT_LEN: ("corrupt_length", "corrupt record length at byte {off}; rest of file skipped"),
    walk.TRUNC_DATA: ("truncated", "truncated packet at byte {off}"),
}


def _pcapng_chunks(data, stats: ReadStats, chunk_records: int) -> Iterator[Chunk]:
    """Walk the blocks of a pcapng file: a section header sets the byte order and starts a new
    list of interfaces, interface descriptions give link type and timestamp resolution, packet
    blocks become records. Every length is checked against its block before it is read. A
    block whose length is wrong (past the end of the file, not its trailer's) ends the file
    with a warning, since the next block cannot be found; a block that fits but holds
    something unusable is skipped with a counted warning."""
    size = len(data)
    arr = np.frombuffer(data, dtype=np.uint8)
    off = 0
    released = 0
    end = "<"
    ifaces = _Interfaces()
    recs = _Records(0.0)
    frame = 1
    while off + 12 <= size:
        if bytes(data[off:off + 4]) == PCAPNG_SHB:
            end = _section_byte_order(data, off)
            if end is None:
                stats.warn("corrupt_block", f"corrupt section header at byte {off}; rest of file skipped")
                break
            ifaces = _Interfaces()
        btype, blen = struct.unpack_from(end + "II", data, off)
        problem = _block_problem(data, end, btype, off, blen, size)
        if problem:
            stats.warn(*problem)
            break
        warning = _pcapng_block(data, end, btype, off, blen, ifaces, recs)
        if warning:
            stats.warn(*warning)
        off += blen
        if len(recs) >= chunk_records:
            start = recs.offs[0]
            yield _finish(stats, recs.chunk(data, arr, frame))
            frame += len(recs)
            recs = _Records(stats.last_ts or 0.0)
            released = _release(data, released, start)
    else:
        if 0 < size - off < 12:
            stats.warn("truncated", f"truncated block at byte {off}")
    if len(recs):
        yield _finish(stats, recs.chunk(data, arr, frame))


def _block_problem(data, end: str, btype: int, off: int, blen: int, size: int) -> tuple[str, str] | None:
    """(kind, warning) when the block at off cannot be taken and the walk must stop: it runs
    past the end of the file, its length is impossible, or its trailing copy of the length
    differs (the length is a lie, so the next block's place is unknown)."""
    if blen >= 12 and blen % 4 == 0 and off + blen > size:
        return "truncated", f"truncated block (type {btype:#x}, length {blen}) at byte {off}"
    if blen < (28 if btype == SHB_TYPE else 12) or blen % 4 or off + blen > size:
        return "corrupt_block", (f"truncated or corrupt block (type {btype:#x}, length {blen}) at byte {off}; "
                                 "rest of file skipped")
    if struct.unpack_from(end + "I", data, off + blen - 4)[0] != blen:
        return "corrupt_block", (f"block at byte {off} (type {btype:#x}) does not end with its length {blen}; "
                                 "rest of file skipped")
    return None


SHB_TYPE = 0x0A0D0D0A
# blocks that carry no packet and are skipped without a word: section header, name resolution,
# interface statistics, systemd journal export, decryption secrets, custom (copyable or not)
SKIPPED_BLOCKS = frozenset({SHB_TYPE, 4, 5, 9, 10, 0xBAD, 0x40000BAD})


class _Interfaces:
    """The interfaces of the current pcapng section, by interface id."""
    __slots__ = ("links", "tsres", "tsoff")

    def __init__(self):
        self.links: list[int] = []     # link type
        self.tsres: list[float] = []   # seconds per timestamp unit
        self.tsoff: list[int] = []     # seconds added to every timestamp


class _Records:
    """The packet records gathered for the next chunk. prev_ts: the time of the record before
    them (a Simple Packet Block has none of its own)."""
    __slots__ = ("offs", "caps", "wires", "tss", "lts", "prev_ts")

    def __init__(self, prev_ts: float):
        self.offs: list[int] = []
        self.caps: list[int] = []
        self.wires: list[int] = []
        self.tss: list[float] = []
        self.lts: list[int] = []
        self.prev_ts = prev_ts

    def __len__(self) -> int:
        return len(self.offs)

    def add(self, off: int, cap: int, orig: int, ts: float, linktype: int) -> None:
        self.offs.append(off)
        self.caps.append(cap)
        self.wires.append(min(orig, 0x7FFFFFFF))
        self.tss.append(ts)
        self.lts.append(linktype)
        self.prev_ts = ts

    def chunk(self, data, arr: np.ndarray, first_frame: int) -> Chunk:
        return Chunk(data, np.asarray(self.offs, dtype=np.int64), np.asarray(self.caps, dtype=np.int32),
                     np.asarray(self.wires, dtype=np.int32), np.asarray(self.tss, dtype=np.float64),
                     np.asarray(self.lts, dtype=np.int32), first_frame, arr)


def _section_byte_order(data, off: int) -> str | None:
    """The struct byte order a Section Header Block at off declares; None if it is corrupt."""
    bom = bytes(data[off + 8:off + 12])
    if bom == b"\x4d\x3c\x2b\x1a":
        return "<"
    if bom == b"\x1a\x2b\x3c\x4d":
        return ">"
    return None


def _pcapng_block(data, end: str, btype: int, off: int, blen: int, ifaces: _Interfaces,
                  recs: _Records) -> tuple[str, str] | None:
    """Take in one block that fits the file; returns (kind, warning) for a block that cannot be
    used whole. The blocks of SKIPPED_BLOCKS (statistics, name resolution, ...) are skipped;
    a block of a type the format does not define is skipped with a counted warning."""
    body = off + 8
    body_end = off + blen - 4
    room = body_end - body
    if btype == 1:  # Interface Description Block
        if room < 8:
            return "corrupt_block", f"interface description too short at byte {off}"
        link, res, toff, warning = _interface_description(data, end, body, body_end)
        ifaces.links.append(link)
        ifaces.tsres.append(res)
        ifaces.tsoff.append(toff)
        return warning
    if btype in (6, 2):  # Enhanced / obsolete Packet Block
        if room < 20:
            return "corrupt_block", f"packet block too short at byte {off}"
        return _packet_block(data, end, btype, off, body, body_end, ifaces, recs)
    if btype == 3:  # Simple Packet Block: interface 0, no timestamp (the previous record's)
        if room < 4:
            return "corrupt_block", f"packet block too short at byte {off}"
        if not ifaces.links:
            return "unknown_interface", f"simple packet block before any interface at byte {off}"
        orig = struct.unpack_from(end + "I", data, body)[0]
        recs.add(body + 4, min(orig, room - 4), orig, recs.prev_ts, ifaces.links[0])
        return None
    if btype not in SKIPPED_BLOCKS:
        return "unknown_block", f"block of unknown type {btype:#x} at byte {off} skipped"
    return None


def _interface_description(data, end: str, body: int, body_end: int) -> tuple[int, float, int, tuple | None]:
    """(link type, seconds per timestamp unit, timestamp offset, warning) of an Interface
    Description Block: the if_tsresol (9) and if_tsoffset (14) options, microseconds and 0 by
    default. An option running past the block ends the walk with a warning; the interface
    keeps what was read before it."""
    link = struct.unpack_from(end + "H", data, body)[0]
    res, toff = 1e-6, 0
    o = body + 8
    while o + 4 <= body_end:
        code, ln = struct.unpack_from(end + "HH", data, o)
        if code == 0:
            break
        val = o + 4
        if val + ln > body_end:
            return link, res, toff, ("corrupt_option", (f"interface description option {code} (length {ln}) "
                                                        f"runs past its block at byte {o}"))
        if code == 9 and ln >= 1:
            v = data[val]
            res = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        elif code == 14 and ln >= 8:
            toff = struct.unpack_from(end + "q", data, val)[0]
        o = val + ((ln + 3) & ~3)
    return link, res, toff, None


def _packet_block(data, end: str, btype: int, off: int, body: int, body_end: int, ifaces: _Interfaces,
                  recs: _Records) -> tuple[str, str] | None:
    """An Enhanced (6) or obsolete (2) Packet Block: a record with its interface's link type
    and timestamp, or a warning when it names no known interface or overruns its block."""
    if btype == 6:
        ifid, hi, lo, cap, orig = struct.unpack_from(end + "IIIII", data, body)
    else:
        ifid, _drops, hi, lo, cap, orig = struct.unpack_from(end + "HHIIII", data, body)
    if ifid >= len(ifaces.links):
        return "unknown_interface", f"packet for unknown interface {ifid} at byte {off}"
    if cap > body_end - body - 20:
        return "packet_overruns_block", f"packet longer than its block at byte {off}"
    recs.add(body + 20, cap, orig, ((hi << 32) | lo) * ifaces.tsres[ifid] + ifaces.tsoff[ifid], ifaces.links[ifid])
    return None
