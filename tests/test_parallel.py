"""--jobs N (capture/parallel.py) against the single process, on the shared captures: the merged
result of N workers, each analysing its shard of the packets, is the single run's byte for
byte (every field of every capture, flow and observation, in order, the counters in order, the
notes and limits), for each capture alone and for directory runs; the command line's JSON too.
Below the caps only: with a capped budget each worker keeps its own share of the caps."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import shared_path
from support.packets import pcap_bytes, read_pcap
from plantguard.budget import DEFAULT, Budget
from plantguard.capture import columns, engine, formats, parallel
from plantguard.capture.engine import analyze
from plantguard.capture.parallel import Shard, analyze_parallel, merge, shard_of
from test_engine_equivalence import CAPTURES, PCAPS, needs_data


def dump(res) -> str:
    """Every field of an AnalysisResult, in its order, as JSON text."""
    return json.dumps({"captures": [dataclasses.asdict(c) for c in res.captures],
                       "flows": [dataclasses.asdict(f) for f in res.flows],
                       "observations": [dataclasses.asdict(o) for o in res.observations],
                       "counters": list(res.counters.items()), "notes": res.notes,
                       "limits": res.limits}, default=repr)


def first_difference(a: str, b: str) -> str:
    """Where two dumps part, for the failure message."""
    x, y = json.loads(a), json.loads(b)
    for part in x:
        if x[part] != y[part]:
            if isinstance(x[part], list) and len(x[part]) == len(y[part]):
                i = next(i for i, (p, q) in enumerate(zip(x[part], y[part])) if p != q)
                return f"{part}[{i}]: {x[part][i]!r:.400} != {y[part][i]!r:.400}"
            return f"{part}: {x[part]!r:.400} != {y[part]!r:.400}"
    return "equal"


def assert_same(single, parallel_res) -> None:
    a, b = dump(single), dump(parallel_res)
    assert a == b, first_difference(a, b)


@needs_data
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: str(p.relative_to(PCAPS)))
def test_two_jobs_give_the_single_run(path):
    assert_same(analyze([path]), analyze_parallel([path], 2))


@needs_data
def test_directory_runs_give_the_single_run():
    """The whole corpus as one run (a flow or device in several captures), each top folder, and
    three jobs (an odd split) on the largest folder."""
    for d in [PCAPS, *sorted(p for p in PCAPS.iterdir() if p.is_dir())]:
        assert_same(analyze([d]), analyze_parallel([d], 2))
    biggest = max((p for p in PCAPS.iterdir() if p.is_dir()), key=lambda p: sum(1 for _ in p.rglob("*")))
    assert_same(analyze([biggest]), analyze_parallel([biggest], 3))


@needs_data
def test_merge_of_whole_captures_gives_the_single_run(tmp_path):
    """The merge alone, with the captures of a run split between two analyses: the folders
    where no flow spans two captures (the engine follows a flow's stream and decoder state from
    one capture into the next, which a split by file cannot: that is why workers split by
    packet), and captures whose flows were dealt to two files, where the same observation (a
    client's new connection to the same server) comes from both halves: it folds into the
    earliest, counts add up, the latest repeat wins."""
    runs = [formats.expand_paths([d]) for d in sorted(p for p in PCAPS.iterdir() if p.is_dir())]
    runs = [files for files in runs if len(files) > 1 and not _flows_span_captures(files)]
    assert len(runs) >= 5
    for rel in ("ICS-Security-Tools/dnp3/dnp3_test_data_part1.pcap", "zeek/http/methods.pcap",
                "ICS-Security-Tools/ModbusTCP/Modbus/modbus_test_2.pcap"):
        runs.append(_deal_flows(PCAPS / rel, tmp_path / rel.replace("/", "_")))
    folded = 0
    for files in runs:
        single = analyze(files)
        parts = [analyze(files[0::2]), analyze(files[1::2])]
        merged = merge(parts, [str(f) for f in files], DEFAULT.pending_bytes)
        merged.limits = single.limits
        assert merged.counters == single.counters   # their order needs Shard.first_chunk
        merged.counters = dict(single.counters)
        assert_same(single, merged)
        folded += sum(len(p.observations) for p in parts) - len(merged.observations)
    assert folded > 0


def _flows_span_captures(files) -> bool:
    seen: dict[tuple, str] = {}
    for f in files:
        for fl in analyze([f]).flows:
            key = (fl.l4, fl.vlan, *sorted(((fl.client, fl.client_port), (fl.server, fl.port))))
            if seen.setdefault(key, str(f)) != str(f):
                return True
    return False


def _deal_flows(src, stem) -> list:
    """The capture's flows dealt in turn to two files, whole and in capture order (the other
    frames to the first)."""
    chunk = next(formats.read_chunks(src, formats.ReadStats(str(src))))
    cols = columns.decode(np.frombuffer(chunk.buf, np.uint8), chunk.offsets, chunk.caplen, chunk.linktype)
    records = read_pcap(src)
    assert len(chunk) == len(records)                # one chunk: the whole capture
    flows: dict[tuple, int] = {}
    halves: list[list] = [[], []]
    for i, (ts, frame) in enumerate(records):
        side = 0
        if cols.l4[i]:
            a = (int(cols.src_hi[i]), int(cols.src_lo[i]), int(cols.sport[i]))
            b = (int(cols.dst_hi[i]), int(cols.dst_lo[i]), int(cols.dport[i]))
            side = flows.setdefault((int(cols.l4[i]), int(cols.vlan[i]), *sorted((a, b))), len(flows)) % 2
        halves[side].append((ts, frame))
    out = []
    for k, frames in enumerate(halves):
        path = stem.with_name(f"{stem.name}.{k}.pcap")
        path.write_bytes(pcap_bytes(frames))
        out.append(path)
    return out


def test_shard_rule_keeps_both_directions_together():
    """Every record in exactly one shard; a record and its reverse (addresses, ports and MACs
    swapped) in the same one, so a flow's two directions and a datagram's fragments meet."""
    path = shared_path("pcaps")
    caps = sorted(CAPTURES, key=lambda p: p.stat().st_size)[-5:]
    assert caps, f"no captures under {path}"
    for cap in caps:
        for chunk in formats.read_chunks(cap, formats.ReadStats(str(cap))):
            cols = columns.decode(np.frombuffer(chunk.buf, np.uint8), chunk.offsets, chunk.caplen, chunk.linktype)
            swapped = dataclasses.replace(cols, src_hi=cols.dst_hi, src_lo=cols.dst_lo, dst_hi=cols.src_hi,
                                          dst_lo=cols.src_lo, sport=cols.dport, dport=cols.sport,
                                          src_mac=cols.dst_mac, dst_mac=cols.src_mac)
            for n in (2, 3):
                w = shard_of(cols, n)
                assert ((w >= 0) & (w < n)).all()
                assert (w == shard_of(swapped, n)).all()
                assert (w[~cols.ok] == 0).all()
                taken = [Shard(k, n).take(chunk, cols, {})[0] for k in range(n)]
                frames = np.sort(np.concatenate([c.frame_numbers() for c in taken]))
                assert (frames == chunk.frame_numbers()).all()


@needs_data
def test_caps_hold_per_worker():
    """A capped budget: each worker folds and drops within its share of the caps, so the merged
    run stays within the single run's (and says so). Not the single run's result: which flows
    are folded depends on what each worker holds."""
    d = PCAPS / "ICS-Security-Tools"
    cap = 400
    res = analyze_parallel([d], 2, max_flows=cap, max_states=50)
    live = len(res.flows) - res.counters["flows_aggregated"]
    assert res.counters["flows_evicted"] > 0 and live <= cap
    assert res.limits["max_flows"] == cap and res.limits["max_states"] == 50
    assert any(n.startswith(f"flow table capped at {cap // 2:,} flows") for n in res.notes)
    for k in range(2):
        part = analyze([d], max_flows=cap // 2, max_states=25, shard=Shard(k, 2))
        assert len(part.flows) - part.counters["flows_aggregated"] <= cap // 2
        assert part.counters["states_evicted"] > 0


def test_budget_split_keeps_the_total():
    b = Budget.from_mb(1500)
    half = b.split(2)
    assert b.split(1) is b
    assert 2 * half.max_flows <= b.max_flows and 2 * half.max_states <= b.max_states
    assert 2 * half.pending_bytes <= b.pending_bytes and 2 * half.max_observations <= b.max_observations
    assert (half.max_assets, half.chunk_bytes, half.max_memory_mb) == (b.max_assets, b.chunk_bytes, b.max_memory_mb)


def test_default_jobs_is_the_cores_we_may_use():
    want = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert parallel.default_jobs() == want


@needs_data
def test_a_worker_that_dies_is_one_error(monkeypatch):
    """A worker killed (out of memory, say) ends the run with one line, not a hang."""
    real = engine.analyze

    def dying(paths, progress=None, **kw):
        if kw["shard"].k == 1:
            os._exit(9)
        return real(paths, progress, **kw)

    monkeypatch.setattr(engine, "analyze", dying)   # the forked child runs it too
    with pytest.raises(parallel.WorkerFailed, match="worker 1 of 2 ended with exit code 9"):
        analyze_parallel([CAPTURES[0]], 2)


def _cli(*args) -> bytes:
    proc = subprocess.run([sys.executable, "-m", "plantguard", *map(str, args)], capture_output=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr.decode()[-2000:]
    return proc.stdout


@needs_data
def test_command_line_json_is_the_same_with_jobs(tmp_path):
    """`plantguard inventory --format json` and the assess contract, --jobs 1 against --jobs 2
    (and the default, one per core), byte for byte, on the largest capture and on a folder."""
    big = max(CAPTURES, key=lambda p: p.stat().st_size)
    folder = PCAPS / "icsnpp-profinet-io-cm"
    for target in (big, folder):
        one = _cli("inventory", target, "--format", "json", "--no-store", "-q", "--jobs", "1")
        assert json.loads(one)["assets"]
        assert _cli("inventory", target, "--format", "json", "--no-store", "-q", "--jobs", "2") == one
        assert _cli("inventory", target, "--format", "json", "--no-store", "-q") == one
    one = _cli("assess", big, "--format", "json", "-o", "-", "-q", "--jobs", "1")
    assert json.loads(one)["findings"]
    assert _cli("assess", big, "--format", "json", "-o", "-", "-q", "--jobs", "2") == one
