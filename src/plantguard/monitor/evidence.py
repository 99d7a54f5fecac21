"""--evidence DIR: a small pcap of an alert's evidence frames (EVENT_ID.pcap), cut from the chunk
being processed, or read back from the capture file (a ring piece) when the frames are older."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from plantguard.capture import formats
from plantguard.capture.live import write_pcap
from plantguard.siem.events import Event

MAX_FRAMES = 16


class EvidenceWriter:
    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.written = 0
        self.missing = 0              # evidence frames no longer anywhere to be read

    def save(self, event: Event, cap: str | None = None, chunk: formats.Chunk | None = None) -> Path | None:
        by_cap: dict[str, set[int]] = {}
        for ref in event.evidence[:MAX_FRAMES]:
            if ref.capture and ref.frame:
                by_cap.setdefault(ref.capture, set()).add(int(ref.frame))
        parts = []
        for capture, frames in by_cap.items():
            part = self._from_chunk(chunk, frames) if capture == cap and chunk is not None else None
            if part is None or len(part) < len(frames):
                part = self._from_file(capture, frames)
            if part is None:
                self.missing += len(frames)
            else:
                parts.append(part)
        if not parts:
            return None
        path = self.dir / f"{event.id}.pcap"
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            write_pcap(iter(parts), fh)
        os.replace(tmp, path)
        self.written += 1
        return path

    @staticmethod
    def _from_chunk(chunk: formats.Chunk, frames: set[int]) -> formats.Chunk | None:
        rows = np.flatnonzero(np.isin(chunk.frame_numbers(), list(frames)))
        return chunk.take(rows) if len(rows) else None

    def _from_file(self, capture: str, frames: set[int]) -> formats.Chunk | None:
        if not Path(capture).is_file():
            return None
        try:
            for chunk in formats.read_chunks(capture, formats.ReadStats(capture)):
                part = self._from_chunk(chunk, frames)
                if part is not None:
                    return formats.Chunk(bytes(chunk.buf), part.offsets, part.caplen, part.wirelen, part.ts,
                                         part.linktype, part.first_frame, None, part.frames)
        except formats.CaptureError:
            return None
        return None
