"""`plantguard monitor --watch` killed with SIGKILL mid-ring and started again: it resumes at the
ledger of its last checkpoint, and the alerts delivered by both runs, deduplicated by event id,
are exactly those of a run that was never killed (none lost, none new); a repeat carries the
same event id. A real capture (ICS-Security-Tools/s7/wincc_s400_production.pcapng, 1,658
packets over 2 h 15 min) as 8 ring pieces, checkpoints every 20 min of packet time, killed after 3 pieces
(after a checkpoint, before the next)."""
from __future__ import annotations

import json
import signal
from collections import Counter

import pytest

from conftest import shared_path
from support.monitor import MonitorProc, alerts_of, jsonl
from support.ring import split, write_piece

CAPTURE = "pcaps/ICS-Security-Tools/s7/wincc_s400_production.pcapng"
DOWNLOAD = "pcaps/ICS-Security-Tools/s7/s7comm_downloading_block_db1.pcap"


def packets_line(mon: MonitorProc, n: int):
    return lambda: f"monitor: {n:,} packets" in mon.stderr.read_text()


def ledger_packets(path) -> int:
    return json.loads(path.read_text())["packets"] if path.exists() else 0


def run(tmp_path, pieces, kill_after: int | None, every: str) -> tuple[list[dict], dict]:
    ring, out = tmp_path / "ring", tmp_path / "alerts.jsonl"
    ring.mkdir()
    args = ["--watch", str(ring), "--sink", f"file://{out}?format=ecs", "--state", "state",
            "--checkpoint", every, "--status-every", "0.2s"]
    mon = MonitorProc(args, tmp_path)
    mon.wait_started()
    first = pieces if kill_after is None else pieces[:kill_after]
    for i, chunk in enumerate(first):
        write_piece(ring, i, chunk)
    mon.wait_for(packets_line(mon, sum(len(c) for c in first)), 60, "status line of the pieces written")
    if kill_after is not None:
        assert mon.stop(signal.SIGKILL) == -signal.SIGKILL
        at_kill = ledger_packets(tmp_path / "state" / "ring.ledger.json")
        # the last checkpoint (if any) was before the kill: what came after it is read again
        assert at_kill < sum(len(c) for c in first)
        mon = MonitorProc(args, tmp_path)
        mon.wait_started()
        for i, chunk in enumerate(pieces[kill_after:], kill_after):
            write_piece(ring, i, chunk)
        again = sum(len(c) for c in pieces) - at_kill     # resumed at the ledger
        mon.wait_for(packets_line(mon, again), 60, "status line after the restart")
    assert mon.stop() == 0
    return jsonl(out), json.loads((tmp_path / "state" / "ring.ledger.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("rel, n, every, repeats_min", [(CAPTURE, 8, "20m", 0), (DOWNLOAD, 4, "1h", 1)])
def test_sigkill_mid_ring_loses_and_adds_no_alert(tmp_path, rel, n, every, repeats_min):
    """The download ring has no checkpoint before the kill: everything is read again and its
    program-change alert, already delivered, comes again with the same event id."""
    pieces = split(shared_path(rel), n)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    want, ledger_a = run(tmp_path / "a", pieces, None, every)
    got, ledger_b = run(tmp_path / "b", pieces, 3, every)
    want_ids = [d["event"]["id"] for d in alerts_of(want)]
    got_ids = [d["event"]["id"] for d in alerts_of(got)]
    assert want_ids and len(want_ids) == len(set(want_ids))
    assert set(got_ids) == set(want_ids)
    repeats = Counter(got_ids) - Counter(set(got_ids))
    for d in alerts_of(got):            # a repeat is the same alert
        assert d["event"]["id"] in set(want_ids)
    assert ledger_b["packets"] == ledger_a["packets"] == sum(len(c) for c in pieces)
    assert ledger_b["file"] == ledger_a["file"]
    assert sum(repeats.values()) >= repeats_min
    print(f"{len(want_ids)} alerts, {sum(repeats.values())} repeats after the kill")
