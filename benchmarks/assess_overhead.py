#!/usr/bin/env python3
"""How much more `assess` costs than `inventory`, end to end as a user runs them. This is the
commands section of run_benchmark.py on its own, measured with the same helper (measure.py: a
fresh process per run, pinned to one core, wall, CPU and peak RSS from os.wait4):
  plantguard inventory CAPTURE --format json --db TMP/inventory.db
  plantguard assess CAPTURE --format json -o TMP/report.json
each in a new scratch folder, inventory and assess interleaved --repeat times. It only prints the
table; run_benchmark.py writes it into results.md with the rest.

usage: benchmarks/assess_overhead.py [--captures poll,plant4] [--repeat 3] [--smoke]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import CAPTURES, DATA, SMOKE_CAPTURES, Pinning
from run_benchmark import _list, render_commands, section_commands


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--captures", default="poll,plant4", help="comma list of " + ",".join(CAPTURES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="small captures, to check the script")
    ap.add_argument("--core", type=int, default=0)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    specs = SMOKE_CAPTURES if args.smoke else CAPTURES
    pin = Pinning(None if args.no_pin else args.core)
    print(f"pinning: {pin.how}; {args.repeat} repetition(s)", flush=True)
    rows = section_commands(_list(args.captures, list(specs)), specs, args, pin, [])
    print()
    print("\n".join(render_commands(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
