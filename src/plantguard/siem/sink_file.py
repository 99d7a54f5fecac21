"""file:///PATH.jsonl?format=ecs|ocsf|cef — append one record per line to a local file. A batch
is acknowledged once it is written and fsync'ed. A line cut short by a crash mid-write (never
acknowledged, so the outbox still holds it) is cut off when the sink next opens the file, so the
file only ever holds whole lines. One writer per file."""
from __future__ import annotations

import os
from pathlib import Path

from plantguard.errors import InputError
from plantguard.siem.spec import DeliveryError, Format, Sink, SinkKind, SinkURL


class FileSink(Sink):
    def __init__(self, path: Path, fmt: Format):
        self.path, self.format, self.name = path, fmt, f"file://{path}"
        self._fd: int | None = None

    def _open(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.ftruncate(fd, _last_line_end(fd, size))
        return fd

    def send(self, records: list[bytes]) -> None:
        try:
            if self._fd is None:
                self._fd = self._open()
            data = b"".join(r + b"\n" for r in records)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as e:
            self.close()
            raise DeliveryError(f"{self.name}: {e.strerror or e}") from None

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _last_line_end(fd: int, size: int) -> int:
    """Offset just past the last newline (0 when there is none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        i = os.pread(fd, pos - start, start).rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


def open_file(url: SinkURL, fmt: Format) -> FileSink:
    if url.parts.netloc not in ("", "localhost"):
        raise InputError(f"{url.safe()}: a file sink names a local path (file:///PATH)")
    path = Path(url.parts.path)
    if not url.parts.path or path.is_dir():
        raise InputError(f"{url.safe()}: give a file path (file:///var/log/plantguard.jsonl)")
    if not path.parent.is_dir():
        raise InputError(f"{url.safe()}: directory {path.parent} does not exist")
    return FileSink(path, fmt)


SINK = SinkKind("file", ("file",), ("ecs", "ocsf", "cef"), open_file,
                description="append to a local file, one record per line, fsync per batch")
