"""The incremental session equals the offline run: a real capture written as the pieces of a
capture ring, followed by the ring source in small chunks (each with its own buffer) and
checkpointed, gives the same assets and findings as `assess` of the whole file; evidence
frames are the same packets (a piece's frame mapped back to the whole file's)."""
from __future__ import annotations

import re

import pytest

from conftest import shared_path
from plantguard.assess import run_assessment
from plantguard.capture.engine import analyze
from plantguard.monitor.session import Session
from plantguard.monitor.sources import RingSource
from plantguard.store.db import IN_MEMORY
from support.ring import write_ring

CAPTURES = [
    "pcaps/ICS-Security-Tools/s7/s7comm_downloading_block_db1.pcap",
    "pcaps/ICS-Security-Tools/ModbusTCP/modbus_test_data_part1.pcap",
    "pcaps/icsnpp-enip/enip_cip_example.pcap",
    "pcaps/ICS-Security-Tools/s7/wincc_s400_production.pcapng",
]


LAST_FRAME = re.compile(r"last frame \d+")


def normalised(doc, offsets: dict[str, int], whole: str):
    """Evidence (capture, frame) of a ring piece as the whole file's frame. A folded observation's last frame may lie in a later piece and does
not name it, so "last frame N" in a text is not compared."""
    if isinstance(doc, dict):
        out = {k: normalised(v, offsets, whole) for k, v in doc.items()}
        cap = doc.get("capture")
        if isinstance(cap, str) and isinstance(doc.get("frame"), int):
            out["capture"], out["frame"] = "capture", doc["frame"] + offsets.get(cap, 0)
        return out
    if isinstance(doc, list):
        return [normalised(v, offsets, whole) for v in doc]
    if isinstance(doc, str) and doc in offsets or doc == whole:
        return "capture"
    if isinstance(doc, str):   # a folded observation's last frame does not name its capture
        return LAST_FRAME.sub("last frame ?", doc)
    return doc


def run_ring(tmp_path, src, pieces: int, chunk_records: int, checkpoint_s: float) -> tuple[dict, dict, int]:
    ring = write_ring(src, tmp_path / "ring", pieces)
    offsets = {str(p): before for p, before in ring}
    session = Session(checkpoint_s=checkpoint_s, db=IN_MEMORY)
    source = RingSource(tmp_path / "ring", tmp_path / "ledger.json", poll_s=0.05, chunk_records=chunk_records)
    checkpoints = 0
    for cap, chunk in source.chunks(idle_s=0.3):
        session.feed(cap, chunk)
        if session.due():            # a checkpoint mid-run must not change what follows
            session.checkpoint()
            checkpoints += 1
    return session.checkpoint(final=True), offsets, checkpoints


@pytest.mark.parametrize("rel", CAPTURES)
def test_ring_checkpoint_equals_assess(tmp_path, rel):
    src = shared_path(rel)
    got, offsets, _ = run_ring(tmp_path, src, pieces=4, chunk_records=13, checkpoint_s=0.5)
    want = run_assessment(analyze([src]), None, db=IN_MEMORY)
    assert got["assets"], "the capture gives assets"
    for key in ("assets", "findings", "checks_not_run"):
        assert normalised(got[key], offsets, str(src)) == normalised(want[key], offsets, str(src)), key
    assert got["summary"]["packets"] == want["summary"]["packets"]


def test_checkpoints_happen_in_packet_time(tmp_path):
    src = shared_path(CAPTURES[3])
    _, _, checkpoints = run_ring(tmp_path, src, pieces=2, chunk_records=64, checkpoint_s=1000.0)
    from plantguard.capture import formats
    chunk = next(iter(formats.read_chunks(src)))
    span = float(chunk.ts.max() - chunk.ts.min())
    assert 2 <= checkpoints <= span // 1000.0 + 1, (checkpoints, span)
