"""Capture file readers: classic pcap (µs/ns, both byte orders), pcapng (several interfaces,
EPB/SPB/OPB, per-interface link type and timestamp resolution), gzip-compressed either way, and
directories of captures.

Files are read in chunks of whole records: a chunk is one buffer plus arrays of record offsets,
lengths, timestamps and link types, so the columnar tier can decode a whole chunk at once and
memory never grows with the number of packets. Truncated or corrupt input ends the file early
with a counted warning instead of an exception.
"""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from plantguard.capture import walk
from plantguard.capture.walk import walk_pcap

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

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz", ".gz", ".dmp")

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
MAX_RECORD = 256 * 1024    # larger claimed lengths mean corruption


class CaptureError(Exception):
    """A capture that cannot be read at all (not a capture, unreadable). One-line message."""


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

    def __len__(self) -> int:
        return len(self.offsets)


@dataclass
class ReadStats:
    path: str
    packets: int = 0
    bytes: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    warnings: list[str] = field(default_factory=list)
    linktypes: set = field(default_factory=set)


def expand_paths(paths: list[str | os.PathLike]) -> list[Path]:
    """Files as given; a directory means every capture below it (sorted, recursive)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and _looks_like_capture(f)))
        elif p.exists():
            out.append(p)
        else:
            raise CaptureError(f"{p}: no such file or directory")
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
        with open(path, "rb") as fh:
            head = fh.read(4)
            if head[:2] == GZIP_MAGIC:
                fh.seek(0)
                try:
                    data, complete = _gunzip_tolerant(fh)
                    if not complete and stats is not None:
                        stats.warnings.append("gzip data truncated or corrupt; kept what came before")
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
        stats.warnings.append("empty file")
        return
    if head in PCAP_MAGICS:
        yield from _pcap_chunks(data, stats, chunk_records)
    elif head == PCAPNG_SHB:
        yield from _pcapng_chunks(data, stats, chunk_records)
    else:
        raise CaptureError(f"{path}: not a pcap or pcapng capture (starts with {head.hex()})")


def _finish(stats: ReadStats, chunk: Chunk) -> Chunk:
    n = len(chunk)
    if n:
        stats.packets += n
        stats.bytes += int(chunk.wirelen.sum())
        if stats.first_ts is None:
            stats.first_ts = float(chunk.ts[0])
        stats.last_ts = float(chunk.ts[-1])
        stats.linktypes.update(int(x) for x in np.unique(chunk.linktype))
    return chunk


def _pcap_chunks(data, stats: ReadStats, chunk_records: int) -> Iterator[Chunk]:
    end, unit = PCAP_MAGICS[bytes(data[:4])]
    size = len(data)
    if size < 24:
        stats.warnings.append("truncated pcap header")
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
            stats.warnings.append(_WALK_WARNINGS[status].format(off=nxt))
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
    walk.TRUNC_HEADER: "truncated record header at byte {off}",
    walk.CORRUPT_LEN: "corrupt record length at byte {off}; rest of file skipped",
    walk.TRUNC_DATA: "truncated packet at byte {off}",
}


def _pcapng_chunks(data, stats: ReadStats, chunk_records: int) -> Iterator[Chunk]:
    """Walk the blocks of a pcapng file: a section header sets the byte order and starts a new
    list of interfaces, interface descriptions give link type and timestamp resolution, packet
    blocks become records. A block that does not fit ends the file with a warning."""
    size = len(data)
    arr = np.frombuffer(data, dtype=np.uint8)
    off = 0
    released = 0
    end = "<"
    ifaces = _Interfaces()
    recs = _Records()
    frame = 1
    while off + 12 <= size:
        if bytes(data[off:off + 4]) == PCAPNG_SHB:
            end = _section_byte_order(data, off)
            if end is None:
                stats.warnings.append(f"corrupt section header at byte {off}")
                break
            ifaces = _Interfaces()
        btype, blen = struct.unpack_from(end + "II", data, off)
        if blen < 12 or blen % 4 or off + blen > size:
            stats.warnings.append(f"truncated or corrupt block (type {btype:#x}, length {blen}) at byte {off}")
            break
        warning = _pcapng_block(data, end, btype, off, blen, ifaces, recs)
        if warning:
            stats.warnings.append(warning)
        off += blen
        if len(recs) >= chunk_records:
            start = recs.offs[0]
            yield _finish(stats, recs.chunk(data, arr, frame))
            frame += len(recs)
            recs = _Records()
            released = _release(data, released, start)
    else:
        if 0 < size - off < 12:
            stats.warnings.append(f"truncated block at byte {off}")
    if len(recs):
        yield _finish(stats, recs.chunk(data, arr, frame))


class _Interfaces:
    """The interfaces of the current pcapng section, by interface id."""
    __slots__ = ("links", "tsres", "tsoff")

    def __init__(self):
        self.links: list[int] = []     # link type
        self.tsres: list[float] = []   # seconds per timestamp unit
        self.tsoff: list[int] = []     # seconds added to every timestamp


class _Records:
    """The packet records gathered for the next chunk."""
    __slots__ = ("offs", "caps", "wires", "tss", "lts")

    def __init__(self):
        self.offs: list[int] = []
        self.caps: list[int] = []
        self.wires: list[int] = []
        self.tss: list[float] = []
        self.lts: list[int] = []

    def __len__(self) -> int:
        return len(self.offs)

    def add(self, off: int, cap: int, orig: int, ts: float, linktype: int) -> None:
        self.offs.append(off)
        self.caps.append(cap)
        self.wires.append(min(orig, 0x7FFFFFFF))
        self.tss.append(ts)
        self.lts.append(linktype)

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
                  recs: _Records) -> str | None:
    """Take in one block that fits the file; returns a warning for a packet that cannot be kept.
    Other block types (statistics, name resolution, ...) are skipped."""
    body = off + 8
    body_end = off + blen - 4
    if btype == 1 and body_end - body >= 8:  # Interface Description Block
        link, res, toff = _interface_description(data, end, body, body_end)
        ifaces.links.append(link)
        ifaces.tsres.append(res)
        ifaces.tsoff.append(toff)
    elif btype in (6, 2) and body_end - body >= 20:  # Enhanced / obsolete Packet Block
        return _packet_block(data, end, btype, off, body, body_end, ifaces, recs)
    elif btype == 3 and body_end - body >= 4 and ifaces.links:  # Simple Packet Block
        orig = struct.unpack_from(end + "I", data, body)[0]
        # interface 0, no timestamp: the previous record's of this chunk
        recs.add(body + 4, min(orig, body_end - body - 4), orig, recs.tss[-1] if recs.tss else 0.0,
                 ifaces.links[0])
    return None


def _interface_description(data, end: str, body: int, body_end: int) -> tuple[int, float, int]:
    """(link type, seconds per timestamp unit, timestamp offset) of an Interface Description
    Block: the if_tsresol (9) and if_tsoffset (14) options, microseconds and 0 by default."""
    link = struct.unpack_from(end + "H", data, body)[0]
    res, toff = 1e-6, 0
    o = body + 8
    while o + 4 <= body_end:
        code, ln = struct.unpack_from(end + "HH", data, o)
        if code == 0:
            break
        if code == 9 and ln >= 1:
            v = data[o + 4]
            res = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        elif code == 14 and ln >= 8:
            toff = struct.unpack_from(end + "q", data, o + 4)[0]
        o += 4 + ((ln + 3) & ~3)
    return link, res, toff


def _packet_block(data, end: str, btype: int, off: int, body: int, body_end: int, ifaces: _Interfaces,
                  recs: _Records) -> str | None:
    """An Enhanced (6) or obsolete (2) Packet Block: a record with its interface's link type
    and timestamp, or a warning when it names no known interface or overruns its block."""
    if btype == 6:
        ifid, hi, lo, cap, orig = struct.unpack_from(end + "IIIII", data, body)
    else:
        ifid, _drops, hi, lo, cap, orig = struct.unpack_from(end + "HHIIII", data, body)
    if ifid >= len(ifaces.links):
        return f"packet for unknown interface {ifid} at byte {off}"
    if cap > body_end - body - 20:
        return f"packet longer than its block at byte {off}"
    recs.add(body + 20, cap, orig, ((hi << 32) | lo) * ifaces.tsres[ifid] + ifaces.tsoff[ifid], ifaces.links[ifid])
    return None
