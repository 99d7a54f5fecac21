#!/usr/bin/env python3
"""Benchmark: the packet engine with --jobs 1 and --jobs 2 (capture/parallel.py), same run.

For each capture, --repeat rounds of (jobs 1, jobs 2), each a fresh child process
(measure.measure: wall and CPU seconds of the child and its workers, peak RSS), held to the
first two cores (taskset -c 0,1); the packet stage's own wall time and packets/s come from
inside the child. Then, in one child, what the parallel path costs beside the analysis: starting
a worker with the fork and the forkserver start methods, pickling a worker's result and loading
it (as a child sends it), and the merge.

usage: python benchmarks/parallel.py [--captures poll,plant4] [--repeat 5] [--jobs 2] [--smoke]
Prints a Markdown table; writes parallel.md and parallel.json into --out
(default benchmarks/out/parallel/).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import CAPTURES, DATA, HERE, PYTHON, SMOKE_CAPTURES, Pinning, build, machine, measure, median, warm_page_cache

# The packet stage in N jobs; prints its own wall time and the sizes of the result.
CHILD = r"""
import json, sys, time
from plantguard.capture.parallel import analyze_parallel
w0 = time.perf_counter()
res = analyze_parallel([sys.argv[1]], int(sys.argv[2]))
w = time.perf_counter() - w0
packets = sum(c.packets for c in res.captures)
print(json.dumps({"analyze_s": w, "packets": packets, "packets_per_s": packets / w, "flows": len(res.flows),
                  "observations": len(res.observations)}))
"""

# What the parallel path costs beside the analysis.
COSTS = r"""
import json, multiprocessing as mp, sys, time
from plantguard.capture import formats
from plantguard.capture.engine import DEFAULT_CHUNK
from plantguard.capture.parallel import _analyze_shard, _pack, _unpack, merge
from plantguard.budget import DEFAULT
from plantguard.protocols import registry
registry.protocol_modules(); registry.port_tables()

def start_cost(method):
    # seconds from start() to the child running, three times: the forkserver's first start
    # includes starting the server, which imports the engine
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["plantguard.capture.engine"])
    out = []
    for _ in range(3):
        q = ctx.SimpleQueue()
        t = time.perf_counter()
        p = ctx.Process(target=q.put, args=(None,))
        p.start()
        q.get()
        out.append(time.perf_counter() - t)
        p.join()
    return out

n = int(sys.argv[2])
files = formats.expand_paths([sys.argv[1]])
kw = {"chunk_records": DEFAULT_CHUNK, "budget": DEFAULT.split(n)}
shards, shard_s = [], []
for k in range(n):
    t = time.process_time()
    shards.append(_analyze_shard(files, k, n, kw))
    shard_s.append(time.process_time() - t)
t = time.perf_counter(); blob = _pack(shards[-1]); dumps = time.perf_counter() - t
t = time.perf_counter(); _unpack(blob); loads = time.perf_counter() - t
parts, first = zip(*shards)
t = time.perf_counter(); merge(list(parts), [str(f) for f in files], DEFAULT.pending_bytes, list(first)); m = time.perf_counter() - t
print(json.dumps({"fork_start_s": start_cost("fork"), "forkserver_start_s": start_cost("forkserver"),
                  "shard_cpu_s": shard_s, "result_bytes": len(blob), "pickle_dumps_s": dumps,
                  "pickle_loads_s": loads, "merge_s": m}))
"""


def run(path: Path, jobs: int, pin: Pinning) -> dict:
    r = measure([PYTHON, "-c", CHILD, str(path), str(jobs)], pin, keep_stdout=True)
    r.update(json.loads(r.pop("stdout").strip().splitlines()[-1]))
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--captures", default="poll,plant4")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="small captures, to check the script works")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "parallel")
    args = ap.parse_args()
    specs = SMOKE_CAPTURES if args.smoke else CAPTURES
    pin = Pinning(None)
    cores = ",".join(str(c) for c in range(args.jobs))
    if shutil.which("taskset"):
        pin.prefix, pin.how = ["taskset", "-c", cores], f"taskset -c {cores}"
    res = {"machine": machine(pin), "jobs": args.jobs, "captures": {}}
    lines = ["| capture | packets | jobs | wall s | CPU s | analyze s | packets/s | speed-up | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in args.captures.split(","):
        cap = build(specs[name], args.data)
        warm_page_cache(cap["path"])
        runs: dict[int, list[dict]] = {1: [], args.jobs: []}
        for _ in range(args.repeat):
            for j in runs:
                runs[j].append(run(cap["path"], j, pin))
        costs = measure([PYTHON, "-c", COSTS, str(cap["path"]), str(args.jobs)], pin, keep_stdout=True)
        costs = json.loads(costs["stdout"].strip().splitlines()[-1])
        base = median([r["analyze_s"] for r in runs[1]])
        for j, rs in runs.items():
            a = median([r["analyze_s"] for r in rs])
            lines.append(f"| {name} | {rs[0]['packets']:,} | {j} | {median([r['wall_s'] for r in rs]):.2f} | "
                         f"{median([r['cpu_s'] for r in rs]):.2f} | {a:.2f} | {median([r['packets_per_s'] for r in rs]):,.0f} | "
                         f"{base / a:.2f}x | {median([r['peak_rss_mb'] for r in rs]):.0f} |")
        res["captures"][name] = {"capture": {k: str(v) for k, v in cap.items()}, "runs": runs, "costs": costs}
    table = "\n".join(lines)
    extra = ["", "| capture | fork start ms | forkserver start ms (first, then) | shard CPU s | result MB | "
             "pickle dumps / loads s | merge s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, c in res["captures"].items():
        k = c["costs"]
        fs = k["forkserver_start_s"]
        extra.append(f"| {name} | {median(k['fork_start_s']) * 1e3:.1f} | {fs[0] * 1e3:.0f}, {median(fs[1:]) * 1e3:.1f} | "
                     f"{' / '.join(f'{s:.2f}' for s in k['shard_cpu_s'])} | {k['result_bytes'] / 1e6:.2f} | "
                     f"{k['pickle_dumps_s']:.3f} / {k['pickle_loads_s']:.3f} | {k['merge_s']:.3f} |")
    text = (f"Medians of {args.repeat} rounds, {pin.how}, load average at the start "
            f"{res['machine']['loadavg_start'][0]:.2f}.\n\n{table}\n" + "\n".join(extra) + "\n")
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "parallel.md").write_text(text)
    (args.out / "parallel.json").write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
