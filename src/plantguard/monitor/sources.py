"""The monitor's packet sources as one interface: chunks with the capture they belong to, and
commit() once a checkpoint holds them. A ring directory's capture is each file (evidence names
the file and its frame); a live interface is one capture named after it."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from plantguard.capture.formats import Chunk


class RingSource:
    """A capture ring directory, resumed from its ledger; the ledger moves at commit()."""

    def __init__(self, directory: str | Path, ledger: Path, *, poll_s: float = 0.2, chunk_records: int = 65536):
        from plantguard.capture.ringdir import RingDir
        self.ring = RingDir(directory, ledger, poll_s=poll_s, chunk_records=chunk_records)
        self.name = str(directory)

    def chunks(self, until=None, idle_s: float | None = None) -> Iterator[tuple[str, Chunk]]:
        for chunk in self.ring.chunks(until=until, idle_s=idle_s, autocommit=False):
            yield str(self.ring.path), chunk

    def commit(self) -> None:
        self.ring.commit()

    def drops(self) -> int | None:
        return None

    def warnings(self) -> dict[str, int]:
        return dict(self.ring.stats.warning_counts)

    def close(self) -> None:
        pass


class LiveSource:
    """An interface through the TPACKET_V3 ring; nothing to commit (a restart starts fresh)."""

    def __init__(self, interface: str, bpf: str | None = None):
        from plantguard.capture import live
        prog = live.compile_bpf(bpf, interface) if bpf else None
        self.src = live.LiveSource(interface, bpf=prog)
        self.name = interface

    def chunks(self, until=None, idle_s: float | None = None) -> Iterator[tuple[str, Chunk]]:
        for chunk in self.src.chunks(until=until, idle_s=idle_s, poll_ms=100):
            yield self.name, chunk

    def commit(self) -> None:
        pass

    def drops(self) -> int | None:
        return self.src.read_stats().drops

    def warnings(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        self.src.close()
