"""Directory input on a ring written as dumpcap/tcpdump write one: the frames of a real capture
split into several files, each written piece by piece with partial records in between, the next
file created only when the previous one is complete. The reader runs in a subprocess that is
killed (SIGKILL) and restarted on its ledger; every frame must arrive exactly once, in order."""
from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import shared_path
from plantguard.capture import formats
from plantguard.capture.ringdir import RingDir, natural_key

ROOT = Path(__file__).resolve().parents[1]
MODBUS = "pcaps/ICS-Security-Tools/ModbusTCP/modbus_test_data_part2.pcap"
S7_PCAPNG = "pcaps/ICS-Security-Tools/s7/step7_s300_download.pcapng"

READER = """
import os, sys
from plantguard.capture.ringdir import RingDir
ring = RingDir(sys.argv[1], sys.argv[2], poll_s=0.02)
with open(sys.argv[3], "ab") as out:
    for c in ring.chunks():
        buf = memoryview(c.buf)
        for o, n in zip(c.offsets.tolist(), c.caplen.tolist()):
            out.write(n.to_bytes(4, "little") + buf[o:o + n])
        out.flush()
        os.fsync(out.fileno())
"""


def records(path: Path) -> list[tuple[float, int, bytes]]:
    """(time, wire length, frame bytes) of every record of a capture."""
    out = []
    for c in formats.read_chunks(path):
        buf = memoryview(c.buf)
        out += [(t, w, bytes(buf[o:o + n])) for t, w, o, n in
                zip(c.ts.tolist(), c.wirelen.tolist(), c.offsets.tolist(), c.caplen.tolist())]
    return out


def pcap_file(recs) -> tuple[bytes, list[int]]:
    """A classic pcap of recs and the byte offset where each record ends."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    ends, size = [], 24
    for t, w, data in recs:
        us = round(t * 1e6)
        out.append(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(data), w) + data)
        size += 16 + len(data)
        ends.append(size)
    return b"".join(out), ends


def pcapng_file(recs) -> tuple[bytes, list[int]]:
    """A pcapng (section, one Ethernet interface with nanosecond times, enhanced packet blocks)."""
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HHB3x", 9, 1, 9) + b"\0" * 4)]
    size = sum(map(len, out))
    ends = []
    for t, w, data in recs:
        ns = round(t * 1e9)
        out.append(block(6, struct.pack("<IIIII", 0, ns >> 32, ns & 0xFFFFFFFF, len(data), w) + data))
        size += len(out[-1])
        ends.append(size)
    return b"".join(out), ends


class Ring:
    """Writes the ring files; `expected` is how many frames are complete on disk so far."""

    def __init__(self, directory: Path, recs, files: int, fmt, seed: int):
        self.dir = directory
        per = -(-len(recs) // files)
        self.files = [fmt(recs[i:i + per]) for i in range(0, len(recs), per)]
        self.rng = random.Random(seed)
        self.expected = 0

    def name(self, i: int) -> str:       # as dumpcap -b names them
        return f"ring_{i + 1:05d}_20260101{i:06d}.pcap"

    def steps(self):
        """Write every file in pieces cut inside records; yield after each piece."""
        done = 0
        for i, (data, ends) in enumerate(self.files):
            cuts = sorted({min(len(data), e - self.rng.randint(1, 40)) for e in self.rng.sample(ends, min(6, len(ends)))})
            with open(self.dir / self.name(i), "wb") as fh:
                last = 0
                for cut in cuts + [len(data)]:
                    fh.write(data[last:cut])
                    fh.flush()
                    last = cut
                    self.expected = done + sum(e <= cut for e in ends)
                    yield
            done += len(ends)


def received(out: Path) -> list[bytes]:
    data = out.read_bytes() if out.exists() else b""
    frames, off = [], 0
    while off + 4 <= len(data):
        n = int.from_bytes(data[off:off + 4], "little")
        frames.append(data[off + 4:off + 4 + n])
        off += 4 + n
    return frames


def start_reader(ring_dir: Path, ledger: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", READER, str(ring_dir), str(ledger), str(out)],
                            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), stderr=subprocess.PIPE)


def ledger_packets(ledger: Path) -> int:
    try:
        return json.loads(ledger.read_text())["packets"]
    except FileNotFoundError:
        return 0


def wait_for(out: Path, n: int, proc: subprocess.Popen, ledger: Path, timeout: float = 20.0) -> None:
    """Until the reader has written the n frames complete on disk and is waiting for more (its
    ledger past them: a reader killed while it handles a chunk reads that chunk again)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = len(received(out))
        assert got <= n, f"{got} frames received, only {n} complete on disk (a repeat)"
        if got == n and ledger_packets(ledger) == n:
            return
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.02)
    raise AssertionError(f"{len(received(out))} frames received after {timeout}s, {n} expected")


@pytest.mark.slow
@pytest.mark.parametrize("rel,fmt", [(MODBUS, pcap_file), (S7_PCAPNG, pcapng_file)], ids=["pcap", "pcapng"])
def test_ring_read_exactly_once_across_kills(tmp_path, rel, fmt):
    recs = records(shared_path(rel))
    ring_dir, ledger, out = tmp_path / "ring", tmp_path / "ledger.json", tmp_path / "out.bin"
    ring_dir.mkdir()
    ring = Ring(ring_dir, recs, 4, fmt, seed=len(recs))
    proc = start_reader(ring_dir, ledger, out)
    kills = 0
    try:
        for step, _ in enumerate(ring.steps()):
            wait_for(out, ring.expected, proc, ledger)   # caught up: every record complete on disk, none of a partial one
            if step % 5 == 2:                    # killed mid-file, at a partial record
                proc.kill()
                proc.wait()
                kills += 1
                proc = start_reader(ring_dir, ledger, out)
        wait_for(out, len(recs), proc, ledger)
        time.sleep(0.3)                          # nothing more comes
    finally:
        proc.kill()
        proc.wait()
    assert kills >= 3
    assert received(out) == [data for _, _, data in recs]


def test_files_deleted_before_read_are_counted(tmp_path, shared):
    recs = records(shared(MODBUS))
    ring_dir = tmp_path / "ring"
    ring_dir.mkdir()
    ring = Ring(ring_dir, recs, 4, pcap_file, seed=1)
    for _ in ring.steps():
        pass
    names = sorted(os.listdir(ring_dir), key=natural_key)
    per = [len(ends) for _, ends in ring.files]
    ledger = tmp_path / "ledger.json"
    reader = RingDir(ring_dir, ledger, chunk_records=10, poll_s=0.01)
    chunks = reader.chunks(idle_s=0)
    first = next(chunks)                            # reading the first file; the rest are listed
    assert reader.path.name == names[0] and len(first) == 10
    os.unlink(ring_dir / names[2])                  # the ring deletes the third before it was read
    assert {reader.path.name for _ in chunks} == {names[0], names[1], names[3]}
    assert reader.stats.warning_counts["deleted_unread"] == 1
    assert any(names[2] in w for w in reader.stats.warnings)
    assert reader.stats.packets == len(recs) - per[2]
    assert reader.files_done == 2           # the newest file is never done
    # The count survives a restart; a fresh reader on the ledger reads nothing again.
    again = RingDir(ring_dir, ledger, poll_s=0.01)
    assert list(again.chunks(idle_s=0)) == []
    assert again.stats.warning_counts["deleted_unread"] == 1


def test_pcap_ring_chunks_equal_the_files(tmp_path, shared):
    """Frame numbers, times and lengths per file are those formats.read_chunks gives each file."""
    recs = records(shared(MODBUS))
    ring_dir = tmp_path / "ring"
    ring_dir.mkdir()
    ring = Ring(ring_dir, recs, 3, pcap_file, seed=2)
    for _ in ring.steps():
        pass
    reader = RingDir(ring_dir, tmp_path / "ledger.json", chunk_records=64, poll_s=0.01)
    got: dict[str, list] = {}
    for c in reader.chunks(idle_s=0):
        got.setdefault(reader.path.name, []).extend(zip(c.frame_numbers().tolist(), c.ts.tolist(), c.caplen.tolist()))
    want = {}
    for name in os.listdir(ring_dir):
        for c in formats.read_chunks(ring_dir / name):
            want.setdefault(name, []).extend(zip(c.frame_numbers().tolist(), c.ts.tolist(), c.caplen.tolist()))
    assert got == want


def test_partial_record_left_when_a_newer_file_exists_is_truncated(tmp_path, shared):
    recs = records(shared(MODBUS))[:40]
    ring_dir = tmp_path / "ring"
    ring_dir.mkdir()
    first, ends = pcap_file(recs[:20])
    (ring_dir / "cap").write_bytes(first[:ends[-1] - 5])       # tcpdump -C names: cap, cap1, ...
    reader = RingDir(ring_dir, tmp_path / "ledger.json", poll_s=0.01)
    assert sum(map(len, reader.chunks(idle_s=0))) == 19           # the 20th waits for its rest
    (ring_dir / "cap1").write_bytes(pcap_file(recs[20:])[0])
    (ring_dir / "cap10").write_bytes(b"not a capture at all")
    assert sum(map(len, reader.chunks(idle_s=0))) == 20
    assert reader.stats.warning_counts["truncated"] == 1
    assert reader.stats.packets == 39


def test_commit_with_the_consumers_checkpoint(tmp_path, shared):
    """autocommit=False: the ledger moves only on commit(), so a consumer that checkpoints its
    own state first resumes exactly where that checkpoint stands."""
    recs = records(shared(MODBUS))
    ring_dir, ledger = tmp_path / "ring", tmp_path / "ledger.json"
    ring_dir.mkdir()
    ring = Ring(ring_dir, recs, 3, pcap_file, seed=3)
    for _ in ring.steps():
        pass
    reader = RingDir(ring_dir, ledger, chunk_records=50, poll_s=0.01)
    chunks = reader.chunks(idle_s=0, autocommit=False)
    taken = sum(len(next(chunks)) for _ in range(3))
    reader.commit()
    next(chunks)                                         # handed out, never committed: read again
    chunks.close()
    again = RingDir(ring_dir, ledger, chunk_records=50, poll_s=0.01)
    rest = [bytes(memoryview(c.buf)[o:o + n]) for c in again.chunks(idle_s=0)
            for o, n in zip(c.offsets.tolist(), c.caplen.tolist())]
    assert taken + len(rest) == len(recs)
    assert rest == [data for _, _, data in recs[taken:]]
