#!/usr/bin/env python3
"""How much more `assess` costs than `inventory` on the same plant-scale capture, end to end as a
user runs them (each a fresh process, best of N): inventory = read + decode + assets + store + JSON;
assess = the same + checks + compliance + roadmap + patch plan + the HTML report.

usage: benchmarks/assess_overhead.py [--replicas 5] [--runs 3]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_benchmark import DATA, build  # noqa: E402


def best_of(cmd: list[str], runs: int, cwd: str) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    cap = build(args.replicas, DATA)
    exe = [sys.executable, "-m", "plantguard"]
    # as a user runs them: inventory records the run in its store; assess writes the HTML report
    with tempfile.TemporaryDirectory() as tmp:
        inv = best_of(exe + ["inventory", str(cap.resolve()), "--db", "inv.db", "-f", "json", "-q"], args.runs, tmp)
        ass = best_of(exe + ["assess", str(cap.resolve()), "-f", "html", "-o", "r.html", "-q"], args.runs, tmp)
    over = (ass - inv) / inv * 100
    line = (f"| {cap.name} | inventory {inv:.1f} s | assess {ass:.1f} s | assess costs {over:+.0f} % "
            f"more |")
    print(line)
    print("(copy the row into benchmarks/results.md, section 'assess vs inventory')")

if __name__ == "__main__":
    main()
