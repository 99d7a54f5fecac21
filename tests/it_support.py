"""Helpers for the IT-protocol tests (ARP, DHCP, LLDP, CDP, SNMP, HTTP, FTP, Telnet, TLS, SSH,
DNS): walk a capture frame by frame, run the deep tier unfolded, read Zeek logs and ask
tshark (the second oracle) for fields, and score field-by-field agreement."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import pytest

from plantguard.capture import formats
from plantguard.capture.deep import DeepTier
from plantguard.capture.reference import decoded_frames
from plantguard.capture.layers import Layers
from plantguard.model import Observation, Packet

AGREEMENT = 0.99


def frames(path: str | Path) -> Iterator[tuple[int, float, Layers]]:
    """(frame number, timestamp, decoded layers) for every decodable frame of a capture."""
    return decoded_frames(path)


def deep_observations(path: str | Path) -> list[Observation]:
    """Every observation the deep tier makes, in frame order and not folded."""
    deep = DeepTier()
    out: list[Observation] = []
    for frame, ts, lay in frames(path):
        out.extend(deep.handle(str(path), frame, ts, lay))
    return out


def zeek_log(path: str | Path) -> list[dict[str, str]]:
    rows, fields = [], None
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if not line or line.startswith("#"):
            continue
        rows.append(dict(zip(fields or [], line.split("\t"))))
    return rows


def zeek_bytes(s: str) -> bytes:
    """A Zeek-escaped string ('\\x08\\x007' style) back to its bytes."""
    out = bytearray()
    i = 0
    while i < len(s):
        if s.startswith("\\x", i) and re.fullmatch(r"[0-9a-fA-F]{2}", s[i + 2:i + 4] or ""):
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            out += s[i].encode("latin-1", "replace")
            i += 1
    return bytes(out)


def need_tshark() -> str:
    exe = shutil.which("tshark")
    if not exe:
        pytest.skip("tshark not installed (second oracle)")
    return exe


@lru_cache(maxsize=128)
def _tshark(path: str, display_filter: str, fields: tuple[str, ...], extra: tuple[str, ...]) -> tuple:
    exe = need_tshark()
    cmd = [exe, "-n", "-r", path, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
           "-E", "aggregator=\x1f", "-e", "frame.number"]
    for f in fields:
        cmd += ["-e", f]
    if display_filter:
        cmd += ["-Y", display_filter]
    cmd += list(extra)
    res = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=120)
    rows = []
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        row = {"frame": int(parts[0])}
        for f, v in zip(fields, parts[1:]):
            row[f] = v.split("\x1f") if v else []
        rows.append(row)
    return tuple(rows)


def tshark_fields(path: str | Path, display_filter: str, fields: list[str],
                  extra: list[str] | None = None) -> list[dict]:
    """One dict per matching frame: {"frame": n, field: [values...]} (all occurrences)."""
    return list(_tshark(str(path), display_filter, tuple(fields), tuple(extra or ())))


def record_count(path: str | Path) -> int:
    return sum(len(chunk) for chunk in formats.read_chunks(path))


def tshark_many(paths: list[str | Path], display_filter: str, fields: list[str],
                extra: list[str] | None = None) -> dict[Path, list[dict]]:
    """tshark_fields for several captures in one tshark run (tshark's start-up dominates on
    small files): the captures are concatenated with mergecap and the rows split back."""
    exe = need_tshark()
    merge = shutil.which("mergecap") or str(Path(exe).with_name("mergecap"))
    paths = [Path(p) for p in paths]
    if not Path(merge).exists() or len(paths) < 2:
        return {p: tshark_fields(p, display_filter, fields, extra) for p in paths}
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "all.pcapng"
        subprocess.run([merge, "-a", "-w", str(out)] + [str(p) for p in paths], check=True,
                       capture_output=True, timeout=120)
        rows = list(_tshark(str(out), display_filter, tuple(fields), tuple(extra or ())))
    result: dict[Path, list[dict]] = {p: [] for p in paths}
    bounds, first = [], 0
    for p in paths:
        n = record_count(p)
        bounds.append((first, first + n, p))
        first += n
    for row in rows:
        for lo, hi, p in bounds:
            if lo < row["frame"] <= hi:
                result[p].append(dict(row, frame=row["frame"] - lo))
                break
    return result


def ratio(matched: int, total: int) -> float:
    return 1.0 if total == 0 else matched / total


class Score:
    """Field-by-field agreement counter; `misses` names what differed, for the assert message."""

    def __init__(self):
        self.matched = 0
        self.total = 0
        self.misses: list[str] = []

    def check(self, what: str, ours, theirs) -> bool:
        self.total += 1
        if ours == theirs:
            self.matched += 1
            return True
        if len(self.misses) < 20:
            self.misses.append(f"{what}: ours={ours!r} peer={theirs!r}")
        return False

    @property
    def ratio(self) -> float:
        return ratio(self.matched, self.total)

    def assert_agrees(self, minimum: float = AGREEMENT, at_least: int = 1) -> None:
        log = os.environ.get("PLANTGUARD_AGREEMENT_LOG")
        if log:   # for the baseline-difference notes: which test, how many fields, how many agreed
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"{test}\t{self.matched}\t{self.total}\t{self.ratio:.4f}\n")
        assert self.total >= at_least, f"only {self.total} fields compared"
        assert self.ratio >= minimum, f"agreement {self.ratio:.4f} < {minimum}: {self.misses}"


def packet(payload: bytes, *, l4: str = "tcp", src: str | None = "10.0.0.1", dst: str | None = "10.0.0.2",
           sport: int = 40000, dport: int = 80, from_client: bool = True, state: dict | None = None,
           seq: int = 0, frame: int = 1, src_mac: str | None = "02:00:00:00:00:01",
           dst_mac: str | None = "02:00:00:00:00:02") -> Packet:
    """A Packet as the engine would hand it to a decoder."""
    return Packet("test.pcap", frame, 1_600_000_000.0 + frame, payload, src_mac, dst_mac, 0x0800, None,
                  src, dst, l4, sport, dport, 0x18, seq, from_client, {} if state is None else state)


def stream(chunks: list[tuple[bool, bytes]], module, *, sport: int = 40000, dport: int = 80) -> list[Observation]:
    """Feed a TCP conversation (from_client, bytes) through a decoder with consistent
    sequence numbers and one shared flow state."""
    state: dict = {}
    seqs = {True: 1000, False: 5000}
    out: list[Observation] = []
    for n, (client, data) in enumerate(chunks, 1):
        src, dst = ("10.0.0.1", "10.0.0.2") if client else ("10.0.0.2", "10.0.0.1")
        sp, dp = (sport, dport) if client else (dport, sport)
        out.extend(module.decode(packet(data, src=src, dst=dst, sport=sp, dport=dp, from_client=client,
                                        state=state, seq=seqs[client], frame=n)))
        seqs[client] += len(data)
    return out


def of_kind(obs, kind: str, proto: str | None = None) -> list[Observation]:
    return [o for o in obs if o.kind == kind and (proto is None or o.proto == proto)]
