"""Directory input: follow the files a capture ring writes (`dumpcap -b files:N`, `tcpdump -C`/`-G`).

Names sort by time in natural order (digits compared as numbers, so tcpdump's cap, cap1 ...
cap10 sort right as well as dumpcap's and strftime names). The newest file is still being
written: it is read as it grows, and a partial last record waits for the rest. A file is done
when a newer one exists and it has nothing more (a partial record left then is counted as
truncated). pcap and pcapng, read with formats.py's record walkers.

The ledger (a small JSON file, written atomically) holds the file being read, its inode, the
byte offset after the last record handed out and its frame count. A chunk counts as consumed
when the consumer asks for the next one; then the ledger moves past it. A restart resumes
there: nothing skipped, and at most the one chunk being processed at a crash is read again.
Files the ring deleted before they were read are warned about and counted
(`deleted_unread`).
"""
from __future__ import annotations

import json
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator

import numpy as np

from plantguard.capture import formats, walk
from plantguard.capture.formats import MAX_RECORD, PCAP_MAGICS, PCAPNG_SHB, Chunk

LEDGER_VERSION = 1
READ_BYTES = 8 << 20        # read at most this much of a file at once; a larger pcapng block is corrupt
WAIT, CORRUPT = "wait", "corrupt"


def natural_key(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


@dataclass
class Position:
    """Where reading stands: the file, its inode, the byte after the last record handed out,
    the frames handed out from it, and whether it is done."""
    name: str
    ino: int
    offset: int
    frames: int
    done: bool = False


class _RingFile:
    """One capture file of the ring, read incrementally from `offset`."""

    def __init__(self, path: Path, fd: int, pos: Position, stats: formats.ReadStats):
        self.path, self.fd, self.pos, self.stats = path, fd, pos, stats
        self.kind: str | None = None     # "pcap" / "pcapng" once the header is there
        self.big = False
        self.unit = 1e-6
        self.linktype = 1
        self.end = "<"
        self.ifaces = formats._Interfaces()
        self.prev_ts = 0.0
        self.partial = False             # the last read ended inside a record

    def close(self) -> None:
        os.close(self.fd)

    def _head(self) -> str | None:
        """Read the file header once it is there: WAIT, CORRUPT, or None when known."""
        head = os.pread(self.fd, 24, 0)
        if len(head) < 4:
            return WAIT
        if head[:4] in PCAP_MAGICS:
            if len(head) < 24:
                return WAIT
            end, self.unit = PCAP_MAGICS[head[:4]]
            self.big = end == ">"
            self.linktype = struct.unpack_from(end + "I", head, 20)[0] & 0x0FFFFFFF
            self.kind = "pcap"
            self.pos.offset = max(self.pos.offset, 24)
            return None
        if head[:4] == PCAPNG_SHB:
            self.kind = "pcapng"
            if self.pos.offset:          # resuming: the section and interfaces come before it
                return self._replay_pcapng_header(self.pos.offset)
            return None
        self.stats.warn("not_a_capture", f"{self.path.name}: not a pcap or pcapng capture; skipped")
        return CORRUPT

    def _replay_pcapng_header(self, upto: int) -> str | None:
        off = 0
        while off < upto:
            data = os.pread(self.fd, min(READ_BYTES, upto - off), off)
            used, _, status = self._pcapng(data, 1 << 30, keep=False)
            if status == CORRUPT or used == 0:
                self.stats.warn("ledger_mismatch", f"{self.path.name}: ledger offset {upto} is not a block boundary; "
                                                   "rest of file skipped")
                return CORRUPT
            off += used
        return None

    def read(self, max_records: int) -> tuple[Chunk | None, str | None]:
        """The next whole records as a Chunk, or (None, WAIT / CORRUPT)."""
        if self.kind is None:
            status = self._head()
            if status:
                return None, status
        size = os.fstat(self.fd).st_size
        if size <= self.pos.offset:
            return None, WAIT
        data = os.pread(self.fd, min(size - self.pos.offset, READ_BYTES), self.pos.offset)
        if self.kind == "pcap":
            chunk, used, status = self._pcap(data, max_records)
        else:
            used, chunk, status = self._pcapng(data, max_records, keep=True)
        self.partial = status == WAIT and used < len(data)
        self.pos.offset += used
        if chunk is not None and len(chunk):
            self.pos.frames += len(chunk)
            return formats._finish(self.stats, chunk), None
        return None, status

    def _pcap(self, data: bytes, max_records: int):
        arr = np.frombuffer(data, np.uint8)
        offs, caps, wires, secs, fracs, nxt, status = walk.walk_pcap(arr, 0, max_records, self.big, MAX_RECORD)
        n = len(offs)
        if status == walk.CORRUPT_LEN and n == 0:    # warned once, when the walk reaches it
            self.stats.warn("corrupt_length", f"{self.path.name}: corrupt record length at byte "
                                              f"{self.pos.offset + nxt}; rest of file skipped")
        chunk = None
        if n:
            ts = secs.astype(np.float64) + fracs.astype(np.float64) * self.unit
            chunk = Chunk(data, offs, caps, wires, ts, np.full(n, self.linktype, np.int32), self.pos.frames + 1, arr)
        return chunk, nxt, (CORRUPT if status == walk.CORRUPT_LEN and n == 0 else WAIT)

    def _pcapng(self, data: bytes, max_records: int, keep: bool):
        """Walk whole blocks of data (the file from pos.offset): (bytes used, Chunk, status)."""
        size = len(data)
        recs = formats._Records(self.prev_ts)
        off = 0
        status = WAIT
        while off + 12 <= size and len(recs) < max_records:
            if data[off:off + 4] == PCAPNG_SHB:
                end = formats._section_byte_order(data, off)
                if end is None:
                    self.stats.warn("corrupt_block", f"{self.path.name}: corrupt section header; rest of file skipped")
                    status = CORRUPT
                    break
                self.end, self.ifaces = end, formats._Interfaces()
            btype, blen = struct.unpack_from(self.end + "II", data, off)
            problem = formats._block_problem(data, self.end, btype, off, blen, size)
            if problem and problem[0] == "truncated" and blen <= READ_BYTES:
                break                            # the rest of the block is still being written
            if problem:
                self.stats.warn(problem[0], f"{self.path.name}: {problem[1]}")
                status = CORRUPT
                break
            warning = formats._pcapng_block(data, self.end, btype, off, blen, self.ifaces, recs)
            if warning and keep:
                self.stats.warn(*warning)
            off += blen
        if not keep:
            return off, None, status
        self.prev_ts = recs.prev_ts
        arr = np.frombuffer(data, np.uint8)
        chunk = recs.chunk(data, arr, self.pos.frames + 1) if len(recs) else None
        return off, chunk, (WAIT if chunk is not None else status)


class RingDir:
    """Chunks of the capture files a ring writes into `directory`, in order, resumable through
    the JSON ledger at `ledger`. `stats` (formats.ReadStats) counts packets and warnings over
    the whole ring (deleted_unread, truncated, ...); `path` is the file of the last chunk (its
    frame numbers are that file's, from 1)."""

    def __init__(self, directory: str | os.PathLike, ledger: str | os.PathLike, *, chunk_records: int = 65536,
                 poll_s: float = 0.2):
        self.directory = Path(directory)
        self.ledger = Path(ledger)
        if not self.directory.is_dir():
            raise formats.CaptureError(f"{self.directory}: not a directory")
        self.chunk_records = chunk_records
        self.poll_s = poll_s
        self.stats = formats.ReadStats(str(self.directory))
        self.files_done = 0
        self.path: Path | None = None
        self._file: _RingFile | None = None
        self._pending: set[str] = set()      # listed after the current file, not opened yet
        self._autocommit = True
        self._pos = self._load()

    # --- the ledger

    def _load(self) -> Position | None:
        try:
            doc = json.loads(self.ledger.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise formats.CaptureError(f"{self.ledger}: unreadable ledger ({exc})") from None
        if doc.get("version") != LEDGER_VERSION or not isinstance(doc.get("file"), str):
            raise formats.CaptureError(f"{self.ledger}: not a plantguard ring ledger (version {LEDGER_VERSION})")
        self.stats.warning_counts.update({k: int(v) for k, v in doc.get("warnings", {}).items()})
        self.stats.packets = int(doc.get("packets", 0))
        self.files_done = int(doc.get("files_done", 0))
        return Position(doc["file"], int(doc["ino"]), int(doc["offset"]), int(doc["frames"]), bool(doc["done"]))

    def _save(self) -> None:
        pos = self._pos
        if pos is None:
            return
        doc = {"version": LEDGER_VERSION, "directory": str(self.directory), "file": pos.name, "ino": pos.ino,
               "offset": pos.offset, "frames": pos.frames, "done": pos.done, "packets": self.stats.packets,
               "files_done": self.files_done, "warnings": self.stats.warning_counts}
        tmp = self.ledger.with_name(self.ledger.name + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.ledger)
        dfd = os.open(self.ledger.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # --- the directory

    def _listing(self) -> list[str]:
        """Capture files of the directory after the current position, in natural order."""
        names = []
        with os.scandir(self.directory) as it:
            for e in it:
                if e.is_file(follow_symlinks=False) and not e.name.startswith("."):
                    names.append(e.name)
        names.sort(key=natural_key)
        if self._pos is not None:
            cur = natural_key(self._pos.name)
            names = [n for n in names if natural_key(n) > cur]
        gone = self._pending.difference(names)
        for name in sorted(gone, key=natural_key):
            self._deleted(name)
        self._pending = set(names)
        return names

    def _deleted(self, name: str) -> None:
        self.stats.warn("deleted_unread", f"{name}: deleted by the ring before it was read; its packets are lost")

    def _open_next(self) -> bool:
        """Open the file to read next (the ledger's, or the first one after it)."""
        pos = self._pos
        if pos is not None and not pos.done:
            path = self.directory / pos.name
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                self._deleted(pos.name)
                pos.done = True
                self._persist()
                return False
            if os.fstat(fd).st_ino != pos.ino:      # the name was reused: a new file
                os.close(fd)
                self._deleted(pos.name)
                pos.done = True
                self._persist()
                return False
            self._file = _RingFile(path, fd, pos, self.stats)
            return True
        for name in self._listing():
            path = self.directory / name
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue                                # warned by the next listing
            self._pending.discard(name)
            self._pos = Position(name, os.fstat(fd).st_ino, 0, 0)
            self._file = _RingFile(path, fd, self._pos, self.stats)
            return True
        return False

    def _finish_file(self) -> None:
        f = self._file
        if f.partial:
            self.stats.warn("truncated", f"{f.path.name}: ends inside a record at byte {f.pos.offset} "
                                         "although a newer file exists; the partial record is skipped")
        f.close()
        self._file = None
        self._pos.done = True
        self.files_done += 1
        self._persist()

    def _persist(self) -> None:
        if self._autocommit:
            self._save()

    def commit(self) -> None:
        """Move the ledger past every chunk handed out (for a consumer that commits with its own
        checkpoint: chunks(autocommit=False))."""
        self._save()

    def chunks(self, until=None, idle_s: float | None = None, autocommit: bool = True) -> Iterator[Chunk]:
        """Chunks as the files grow. Stops when `until()` is true or after idle_s seconds
        without new records; otherwise follows the ring for ever. With autocommit the ledger
        moves past a chunk when the next one is asked for."""
        self._autocommit = autocommit
        idle_since = time.monotonic()
        try:
            while until is None or not until():
                if self._file is None and not self._open_next():
                    if idle_s is not None and time.monotonic() - idle_since >= idle_s:
                        return
                    time.sleep(self.poll_s)
                    continue
                if self._file is None:
                    continue                            # the ledger's file was gone: take the next
                chunk, status = self._file.read(self.chunk_records)
                if chunk is not None:
                    self.path = self._file.path
                    idle_since = time.monotonic()
                    yield chunk
                    self._persist()                     # the consumer asked for more: that chunk is done
                    continue
                if status == CORRUPT:
                    self._finish_file()
                    continue
                # Nothing more for now: the file is complete once a newer one exists (checked
                # before one last read, so what the writer flushed on closing it is taken).
                if self._listing():
                    chunk, status = self._file.read(self.chunk_records)
                    if chunk is not None:
                        self.path = self._file.path
                        yield chunk
                        self._persist()
                        continue
                    self._finish_file()
                    continue
                if idle_s is not None and time.monotonic() - idle_since >= idle_s:
                    return
                time.sleep(self.poll_s)
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
