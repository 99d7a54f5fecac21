#!/usr/bin/env python3
"""Benchmark: the simulated week (tests/support/week.py: 168 hourly ring pieces built from the
shared captures' polling, port churn, new hosts, one S7 download) through `plantguard monitor
--watch` as a child process, --learn 1d, --checkpoint 6h. Reports packets/s (all packets over
the wall time from start to the status line that counts them all) and the child's RSS over
packet time (psutil, sampled every 0.25 s, each sample given the packet time of the last
checkpoint): per half day of packet time the largest RSS seen and the packets read by then.

usage: PLANTGUARD_SHARED_DATA=/work/shared/data python benchmarks/monitor_week.py
       [--max-memory 300] [--hours 168] [--out benchmarks/out/monitor_week]
Prints a Markdown table; writes monitor_week.md and monitor_week.json into --out.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from support.monitor import MonitorProc  # noqa: E402
from support.week import HOURS, T0, build  # noqa: E402

STATUS = re.compile(rb"monitor: ([\d,]+) packets")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-memory", type=int, default=300)
    ap.add_argument("--hours", type=int, default=HOURS)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "monitor_week")
    a = ap.parse_args()
    shared = Path(os.environ.get("PLANTGUARD_SHARED_DATA", HERE.parents[1] / "shared" / "data"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        b0 = time.perf_counter()
        week = build(work / "ring", shared, hours=a.hours, workdir=work)
        build_s = time.perf_counter() - b0
        mon = MonitorProc(["--watch", str(week.ring), "--state", "state", "--learn", "1d", "--checkpoint", "6h",
                           "--max-memory", str(a.max_memory), "--status-every", "1s",
                           "--sink", f"file://{work}/alerts.jsonl?format=ecs"], work)
        proc = psutil.Process(mon.proc.pid)
        mon.wait_started()
        w0 = time.perf_counter()
        rows: dict[int, dict] = {}          # half day of packet time -> its largest RSS and packets
        packets = 0
        while packets < week.packets:
            rss = proc.memory_info().rss >> 20
            counts = STATUS.findall(mon.stderr.read_bytes())
            packets = int(counts[-1].replace(b",", b"")) if counts else 0
            try:
                pt = json.loads((work / "state" / "checkpoint.json").read_text())["packet_time"]
            except (OSError, ValueError):
                pt = None
            if pt is not None:
                r = rows.setdefault(int((pt - T0) // 43200), {"rss_mb": 0})
                r.update(rss_mb=max(r["rss_mb"], rss), packets=packets, wall_s=round(time.perf_counter() - w0, 1))
            time.sleep(0.25)
        wall = time.perf_counter() - w0
        mon.stop()
    result = {"packets": week.packets, "hours": a.hours, "max_memory_mb": a.max_memory, "build_s": round(build_s, 1),
              "wall_s": round(wall, 1), "packets_per_s": round(week.packets / wall),
              "rss": [{"packet_time_h": k * 12, **v} for k, v in sorted(rows.items())]}
    lines = [f"Simulated week: {week.packets:,} packets over {a.hours} h of packet time, --max-memory "
             f"{a.max_memory}; {result['packets_per_s']:,} packets/s ({wall:.1f} s; building the ring "
             f"{build_s:.1f} s)", "", "| packet time | wall s | packets read | RSS MB (max) |", "|---|---|---|---|"]
    lines += [f"| day {r['packet_time_h'] // 24 + 1} {r['packet_time_h'] % 24:02d}:00 | {r['wall_s']} | "
              f"{r['packets']:,} | {r['rss_mb']} |" for r in result["rss"]]
    text = "\n".join(lines) + "\n"
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "monitor_week.md").write_text(text)
    (a.out / "monitor_week.json").write_text(json.dumps(result, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
