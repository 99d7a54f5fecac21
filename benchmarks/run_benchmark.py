#!/usr/bin/env python3
"""Benchmark: plantguard's packet engine against tshark in the same run, scaling, the commands.

Sections (each measured run is a fresh child process pinned to one core, see measure.py):
  engine    per capture: plantguard's packet stage (plantguard.capture.engine.analyze) and tshark
            extracting the same protocol fields, interleaved (plantguard, tshark, plantguard,
            tshark ...) --repeat times; wall, CPU, peak RSS, start-up, in-run steady state,
            deep-tier share;
  scaling   plantguard only, on the polling capture at 1x, 2x, 4x, 8x, 16x its length: peak RSS
            against length and the marginal cost (least-squares slope of CPU s against packets);
  commands  `plantguard inventory CAP --format json --db TMP` and
            `plantguard assess CAP --format json -o TMP` as a user runs them.
Prints Markdown tables, writes results.md and results.json (raw figures) into --out.

usage: python benchmarks/run_benchmark.py [--captures poll,poll10,mixed,plant4,plant20] [--repeat 5]
           [--scaling 1,2,4,8,16|none] [--commands poll,plant4|none] [--no-tshark] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import (
    CAPTURES,
    DATA,
    HERE,
    PLANTGUARD,
    PYTHON,
    SMOKE_CAPTURES,
    Pinning,
    build,
    lstsq,
    machine,
    measure,
    median,
    scaled,
    warm_page_cache,
)

TSHARK_FIELDS = ["frame.number", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "udp.srcport",
                 "udp.dstport", "modbus.func_code", "enip.command", "cip.sc", "s7comm.param.func",
                 "dnp3.al.func", "bacapp.confirmed_service", "mqtt.msgtype", "tls.handshake.type"]

# The measured plantguard child: the packet stage end to end in a new interpreter. It reports its
# own start-up (spawn -> ready to read the first packet, i.e. interpreter + imports) and, from the
# progress callback after each chunk, the CPU per packet between the end of the first chunk and
# the end of the last (in-run steady state: no start-up, no first-chunk kernel loading, no result
# building).
CHILD = r"""
import json, os, sys, time
t_start = time.time()
p0 = time.perf_counter()
from plantguard.capture.engine import analyze
import_s = time.perf_counter() - p0
t_ready = time.time()
c_ready = time.process_time()
marks = []
def progress(n):
    marks.append((n, time.process_time(), time.perf_counter()))
w0 = time.perf_counter()
try:
    res = analyze([sys.argv[1]], progress)
except TypeError:
    res = analyze([sys.argv[1]])
w1 = time.perf_counter()
spawn = float(os.environ.get("BENCH_T_SPAWN", t_start))
out = {"interpreter_s": t_start - spawn, "import_s": import_s, "startup_s": t_ready - spawn,
       "analyze_s": w1 - w0, "analyze_cpu_s": time.process_time() - c_ready,
       "first_chunk_s": (marks[0][2] - w0) if marks else None, "chunks": len(marks),
       "packets": sum(c.packets for c in res.captures), "flows": len(res.flows),
       "observations": len(res.observations), "counters": dict(res.counters)}
if len(marks) >= 2:
    pk = sum(m[0] for m in marks[1:])
    out["steady_packets"] = pk
    out["steady_us_per_packet"] = (marks[-1][1] - marks[0][1]) / pk * 1e6
    out["steady_wall_us_per_packet"] = (marks[-1][2] - marks[0][2]) / pk * 1e6
print(json.dumps(out), flush=True)
import gc
gc.freeze()   # as plantguard's command line does once its output is written (cli._Group.main)
"""


# ------------------------------------------------------------------------------------ runs
def run_plantguard(path: Path, pin: Pinning) -> dict:
    r = measure([PYTHON, "-c", CHILD, str(path)], pin, keep_stdout=True)
    child = json.loads(r.pop("stdout").strip().splitlines()[-1])
    r.update(child)
    return r


def tshark_cmd(path: Path) -> list[str]:
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    return cmd


def run_tshark(path: Path, pin: Pinning) -> dict:
    return measure(tshark_cmd(path), pin)


def summarise(runs: list[dict], packets: int) -> dict:
    """Median and min over the repetitions of one tool on one capture."""
    wall = [r["wall_s"] for r in runs]
    s = {"runs": len(runs), "wall_median_s": median(wall), "wall_min_s": min(wall),
         "cpu_median_s": median([r["cpu_s"] for r in runs]), "cpu_min_s": min(r["cpu_s"] for r in runs),
         "peak_rss_max_mb": max(r["peak_rss_mb"] for r in runs),
         "peak_rss_median_mb": median([r["peak_rss_mb"] for r in runs])}
    s["pps_median"] = packets / s["wall_median_s"]
    s["pps_best"] = packets / s["wall_min_s"]
    if "startup_s" in runs[0]:
        s["startup_median_s"] = median([r["startup_s"] for r in runs])
        s["import_median_s"] = median([r["import_s"] for r in runs])
        s["steady_us_per_packet_median"] = median([r.get("steady_us_per_packet") for r in runs])
        c = runs[0]["counters"]
        s["counters"] = c
        s["flows"], s["observations"] = runs[0]["flows"], runs[0]["observations"]
        for k in ("deep_packets", "routine_packets", "primed_packets"):
            s[k.replace("_packets", "_share")] = c.get(k, 0) / packets if packets else None
    return s


def section_engine(names, specs, args, pin, tshark: bool) -> list[dict]:
    rows = []
    for name in names:
        cap = build(specs[name], args.data)
        path = cap["path"]
        warm_page_cache(path)
        print(f"[engine] {name} ({cap['file']}, {cap['packets'] or 0:,} packets): warm-up ...", flush=True)
        run_plantguard(path, pin)             # untimed: compiled kernels cached, file in page cache
        pg_runs, ts_runs = [], []
        for i in range(args.repeat):
            pg_runs.append(run_plantguard(path, pin))
            line = f"  run {i + 1}/{args.repeat}: plantguard {pg_runs[-1]['wall_s']:.2f} s"
            if tshark:
                ts_runs.append(run_tshark(path, pin))
                line += f", tshark {ts_runs[-1]['wall_s']:.2f} s"
            print(line, flush=True)
        packets = pg_runs[0]["packets"]
        if cap["packets"] and cap["packets"] != packets:
            print(f"  note: generator reported {cap['packets']:,} packets, plantguard read {packets:,}", flush=True)
        row = {"capture": name, "file": cap["file"], "built_with": cap["command"], "bytes": cap["bytes"],
               "packets": packets, "generator_packets": cap["packets"],
               "plantguard": summarise(pg_runs, packets), "plantguard_runs": pg_runs}
        if tshark:
            row["tshark"] = summarise(ts_runs, packets)
            row["tshark_runs"] = ts_runs
            row["speedup_median"] = row["tshark"]["wall_median_s"] / row["plantguard"]["wall_median_s"]
            row["speedup_min"] = row["tshark"]["wall_min_s"] / row["plantguard"]["wall_min_s"]
        rows.append(row)
    return rows


def section_scaling(factors, specs, args, pin) -> dict:
    caps = {k: build(scaled(specs["poll"], k), args.data) for k in factors}
    for cap in caps.values():
        warm_page_cache(cap["path"])
    print(f"[scaling] {', '.join(f'{k}x' for k in factors)}: warm-up ...", flush=True)
    run_plantguard(caps[factors[0]]["path"], pin)
    runs = {k: [] for k in factors}
    for i in range(args.repeat):          # interleaved over the lengths, so drift hits them all alike
        for k in factors:
            runs[k].append(run_plantguard(caps[k]["path"], pin))
        print(f"  run {i + 1}/{args.repeat}: " + ", ".join(f"{k}x {runs[k][-1]['wall_s']:.2f} s" for k in factors),
              flush=True)
    points = []
    for k in factors:
        packets = runs[k][0]["packets"]
        s = summarise(runs[k], packets)
        points.append({"factor": k, "file": caps[k]["file"], "built_with": caps[k]["command"],
                       "bytes": caps[k]["bytes"], "packets": packets, **s, "runs_raw": runs[k]})
    out = {"points": points}
    xs = [p["packets"] for p in points]
    for key, field in (("cpu", "cpu_median_s"), ("wall", "wall_median_s")):
        fit = lstsq(xs, [p[field] for p in points])
        if fit:
            slope, icpt, r2 = fit
            out[f"{key}_fit"] = {"us_per_packet": slope * 1e6, "packets_per_s": 1 / slope if slope > 0 else None,
                                 "intercept_s": icpt, "r2": r2}
    rss = [p["peak_rss_max_mb"] for p in points]
    out["rss_first_mb"], out["rss_last_mb"] = rss[0], rss[-1]
    out["rss_growth"] = rss[-1] / rss[0] if rss[0] else None
    return out


def section_commands(names, specs, args, pin, engine_rows) -> list[dict]:
    rows = []
    engine = {r["capture"]: r for r in engine_rows}
    for name in names:
        cap = build(specs[name], args.data)
        path = str(cap["path"])
        warm_page_cache(cap["path"])

        def inventory(tmp, path=path):
            return PLANTGUARD + ["inventory", path, "--format", "json", "--db", str(Path(tmp) / "inventory.db")]

        def assess(tmp, path=path):
            return PLANTGUARD + ["assess", path, "--format", "json", "-o", str(Path(tmp) / "report.json")]

        def once(make):
            # a fresh scratch folder each time: a new store, and no ./plantguard.db picked up by assess
            with tempfile.TemporaryDirectory(prefix="pgbench-") as tmp:
                return measure(make(tmp), pin, cwd=tmp)

        print(f"[commands] {name} ({cap['file']}): warm-up ...", flush=True)
        once(inventory)
        once(assess)
        inv_runs, ass_runs = [], []
        for i in range(args.repeat):
            inv_runs.append(once(inventory))
            ass_runs.append(once(assess))
            print(f"  run {i + 1}/{args.repeat}: inventory {inv_runs[-1]['wall_s']:.2f} s, "
                  f"assess {ass_runs[-1]['wall_s']:.2f} s", flush=True)
        packets = engine[name]["packets"] if name in engine else cap["packets"]
        row = {"capture": name, "file": cap["file"], "packets": packets,
               "inventory_command": "plantguard inventory CAPTURE --format json --db TMP/inventory.db",
               "assess_command": "plantguard assess CAPTURE --format json -o TMP/report.json",
               "inventory": summarise(inv_runs, packets), "assess": summarise(ass_runs, packets),
               "inventory_runs": inv_runs, "assess_runs": ass_runs}
        inv, ass = row["inventory"]["wall_median_s"], row["assess"]["wall_median_s"]
        row["assess_over_inventory"] = (ass - inv) / inv
        if name in engine:
            row["engine_wall_median_s"] = engine[name]["plantguard"]["wall_median_s"]
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------ targets
def targets(res: dict) -> list[dict]:
    eng = {r["capture"]: r for r in res["engine"]}
    sc = res.get("scaling") or {}
    out = []

    def add(what, goal, value, fmt, ok, how):
        out.append({"target": what, "goal": goal, "measured": (fmt.format(value) if value is not None else "n/a"),
                    "met": (None if value is None else bool(ok(value))), "how": how})

    steady = None
    how = "not measured (run the scaling series)"
    if sc.get("cpu_fit"):
        steady, how = sc["cpu_fit"]["packets_per_s"], "1 / slope of CPU s against packets, scaling series"
    elif "poll" in eng and eng["poll"]["plantguard"].get("steady_us_per_packet_median"):
        steady = 1e6 / eng["poll"]["plantguard"]["steady_us_per_packet_median"]
        how = "in-run steady state of the polling capture (no scaling series in this run)"
    add("polling, steady state per core", ">= 1.5 M pkt/s", steady, "{:,.0f} pkt/s", lambda v: v >= 1.5e6, how)
    v = eng["poll"]["plantguard"]["pps_median"] if "poll" in eng else None
    add("polling, end to end", ">= 1 M pkt/s", v, "{:,.0f} pkt/s", lambda v: v >= 1e6,
        "packets / median wall s of a fresh process")
    v = eng["poll"].get("speedup_median") if "poll" in eng else None
    add("polling, against tshark in the same run", ">= 30x", v, "{:.1f}x", lambda v: v >= 30,
        "median tshark wall s / median plantguard wall s")
    for name in ("plant4", "plant20"):
        v = eng[name]["plantguard"]["pps_median"] if name in eng else None
        add(f"plant-scale ({name}), end to end", ">= 0.8 M pkt/s", v, "{:,.0f} pkt/s", lambda v: v >= 0.8e6,
            "packets / median wall s of a fresh process")
    add("--jobs 2 against --jobs 1", ">= 1.8x", None, "", lambda v: False,
        "benchmarks/parallel.py (needs both cores, so not in this pinned run)")
    v, how = None, "largest ru_maxrss of the plantguard runs on poll10"
    if "poll10" in eng:
        v = eng["poll10"]["plantguard"]["peak_rss_max_mb"]
    else:   # the scaling series' longest polling capture, when it is at least 10x
        long = [pt for pt in sc.get("points", ()) if pt["factor"] >= 10]
        if long:
            v = max(pt["peak_rss_max_mb"] for pt in long)
            how = f"largest ru_maxrss of the scaling series' {max(pt['factor'] for pt in long)}x polling capture"
    add("peak RSS on the 10x polling capture", "<= 250 MB", v, "{:.0f} MB", lambda v: v <= 250, how)
    return out


# ------------------------------------------------------------------------------------ report
def _f(v, fmt, na="n/a"):
    return na if v is None else fmt.format(v)


def render_commands(rows: list[dict]) -> list[str]:
    L = ["## The commands as a user runs them", "",
         ("`plantguard inventory CAPTURE --format json --db TMP` and `plantguard assess CAPTURE --format json "
         "-o TMP`, each in a new scratch folder, pinned like the rest; stdout to /dev/null. The last column is "
         "the command's median wall s minus the packet stage's (engine table) on the same capture."), "",
         "| capture | packets | command | wall s | pkt/s end to end | CPU s | peak RSS MB | over the packet stage |",
         "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        for cmd in ("inventory", "assess"):
            s = r[cmd]
            eng = r.get("engine_wall_median_s")
            over = f"{s['wall_median_s'] - eng:+.2f} s" if eng else "n/a"
            L.append(f"| {r['capture']} | {r['packets']:,} | {cmd} | {s['wall_median_s']:.2f} ({s['wall_min_s']:.2f}) "
                     f"| {s['pps_median']:,.0f} | {s['cpu_median_s']:.2f} ({s['cpu_min_s']:.2f}) "
                     f"| {s['peak_rss_max_mb']:.0f} | {over} |")
    L.append("")
    L += [f"- {r['capture']}: assess {100 * r['assess_over_inventory']:+.0f} % wall time against inventory (medians)"
          for r in rows]
    L.append("")
    return L


def busy_runs(res: dict) -> int:
    """How many measured runs spent over 10 % of their wall time off the CPU (waiting for the core)."""
    runs = [x for r in res["engine"] for k in ("plantguard_runs", "tshark_runs") for x in r.get(k, [])]
    runs += [x for p in (res.get("scaling") or {}).get("points", []) for x in p["runs_raw"]]
    runs += [x for r in res.get("commands") or [] for k in ("inventory_runs", "assess_runs") for x in r[k]]
    return sum(1 for x in runs if x["cpu_s"] < 0.9 * x["wall_s"])


def render(res: dict) -> str:
    m = res["machine"]
    L = ["# Packet engine benchmark", ""]
    if res["args"]["smoke"]:
        L += [("**Smoke run (--smoke): small captures, only to check that the benchmark works. "
              "These figures are not comparable with the targets.**"), ""]
    L += [(f"Generated by `benchmarks/run_benchmark.py` on {res['date']} ({res['elapsed_s'] / 60:.1f} min), "
          f"plantguard `{m['plantguard_commit']}`."),
          "",
          (f"Machine: {m['nproc']} CPU(s), {m['cpu_model']} ({m['arch']}, Linux {m['kernel']}); Python {m['python']}, "
          f"numpy {m['numpy']}, numba {m['numba']}; {m['tshark'].rstrip('.')}. Every measured process is a fresh process "
          f"pinned to one core ({m['pinning']}), the same core for plantguard and tshark. Load average "
          f"{m['loadavg_start'][0]:.2f} at the start, {m['loadavg_end'][0]:.2f} at the end."),
          "",
          (f"{res['args']['repeat']} repetition(s) per figure, plantguard and tshark interleaved; wall and CPU are "
          f"medians (min in brackets), peak RSS the largest seen. See benchmarks/README.md for the columns."), ""]
    busy = busy_runs(res)
    if busy:
        L += [(f"**Warning: in {busy} measured run(s) the wall time exceeded the CPU time by more than 10 % (the process "
              f"waited: other processes on the core, or I/O), so wall-based figures are pessimistic. Run again on a quiet "
              f"machine.**"), ""]
    if res["engine"]:
        L += ["## Packet stage against tshark (same run)", "",
              ("| capture | tool | packets | wall s | pkt/s end to end | CPU s | peak RSS MB | start-up s "
              "| steady µs/pkt | deep tier | vs tshark | --jobs 2 |"),
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in res["engine"]:
            pg, n = r["plantguard"], r["packets"]
            vs = (f"{r['speedup_median']:.1f}x ({r['speedup_min']:.1f}x)" if "speedup_median" in r else "n/a")
            L.append(f"| {r['capture']} | plantguard | {n:,} | {pg['wall_median_s']:.2f} ({pg['wall_min_s']:.2f}) "
                     f"| {pg['pps_median']:,.0f} | {pg['cpu_median_s']:.2f} ({pg['cpu_min_s']:.2f}) "
                     f"| {pg['peak_rss_max_mb']:.0f} | {pg['startup_median_s']:.2f} "
                     f"| {_f(pg['steady_us_per_packet_median'], '{:.2f}')} | {100 * pg['deep_share']:.1f} % "
                     f"| {vs} | n/a |")
            if "tshark" in r:
                ts = r["tshark"]
                L.append(f"| {r['capture']} | tshark | {n:,} | {ts['wall_median_s']:.2f} ({ts['wall_min_s']:.2f}) "
                         f"| {ts['pps_median']:,.0f} | {ts['cpu_median_s']:.2f} ({ts['cpu_min_s']:.2f}) "
                         f"| {ts['peak_rss_max_mb']:.0f} | | | | 1x | |")
        L += ["", "Captures and engine detail:", ""]
        for r in res["engine"]:
            pg = r["plantguard"]
            c = pg["counters"]
            L.append(f"- {r['capture']}: `{r['file']}` ({r['bytes'] / 2**20:,.0f} MB, `{r['built_with']}`); "
                     f"{pg['flows']:,} flows, {pg['observations']:,} distinct observations; deep-decoded "
                     f"{c.get('deep_packets', 0):,} ({100 * pg['deep_share']:.1f} %), routine replayed "
                     f"{c.get('routine_packets', 0):,} ({100 * pg['routine_share']:.1f} %), primed "
                     f"{c.get('primed_packets', 0):,} ({100 * pg['primed_share']:.1f} %); import "
                     f"{pg['import_median_s']:.2f} s")
        L.append("")
    sc = res.get("scaling")
    if sc:
        L += ["## Scaling: the polling capture at k times its length (plantguard only)", "",
              "| length | packets | MB | wall s | CPU s | CPU µs/pkt (average) | peak RSS MB |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
        for p in sc["points"]:
            L.append(f"| {p['factor']}x | {p['packets']:,} | {p['bytes'] / 2**20:,.0f} "
                     f"| {p['wall_median_s']:.2f} ({p['wall_min_s']:.2f}) | {p['cpu_median_s']:.2f} ({p['cpu_min_s']:.2f}) "
                     f"| {p['cpu_median_s'] / p['packets'] * 1e6:.3f} | {p['peak_rss_max_mb']:.0f} |")
        L.append("")
        if sc.get("cpu_fit"):
            f = sc["cpu_fit"]
            L.append(f"Marginal cost (least-squares slope of median CPU s against packets): **{f['us_per_packet']:.3f} "
                     f"µs/packet = {_f(f['packets_per_s'], '{:,.0f}')} packets/s per core** steady state; fixed cost "
                     f"(intercept) {f['intercept_s']:.2f} CPU s; r² {f['r2']:.4f}.")
        if sc.get("wall_fit"):
            f = sc["wall_fit"]
            L.append(f"Same fit on wall s: {f['us_per_packet']:.3f} µs/packet, intercept {f['intercept_s']:.2f} s.")
        L.append(f"Peak RSS {sc['rss_first_mb']:.0f} MB at 1x, {sc['rss_last_mb']:.0f} MB at "
                 f"{sc['points'][-1]['factor']}x ({_f(sc['rss_growth'], '{:.2f}')}x).")
        L.append("")
    if res.get("commands"):
        L += render_commands(res["commands"])
    L += ["## Targets", "", "| target | goal | measured | met | how |", "|---|---|---:|---|---|"]
    for t in res["targets"]:
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        if res["args"]["smoke"] and t["met"] is not None:
            met += " (smoke)"
        L.append(f"| {t['target']} | {t['goal']} | {t['measured']} | {met} | {t['how']} |")
    L.append("")
    return "\n".join(L)


def write(res: dict, out_dir: Path) -> str:
    res["targets"] = targets(res)
    res["machine"].setdefault("loadavg_end", os.getloadavg())
    table = render(res)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(table)
    (out_dir / "results.json").write_text(json.dumps(res, indent=1, default=str))
    return table


def _list(s: str, allowed=None, conv=str):
    if s.strip().lower() in ("", "none"):
        return []
    items = [conv(x.strip()) for x in s.split(",") if x.strip()]
    if allowed is not None:
        bad = [x for x in items if x not in allowed]
        if bad:
            raise SystemExit(f"unknown: {', '.join(map(str, bad))} (choose from {', '.join(allowed)})")
    return items


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--captures", default="poll,poll10,mixed,plant4,plant20",
                    help="engine section: comma list of " + ",".join(CAPTURES) + " or none")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions of every measurement (default 5)")
    ap.add_argument("--scaling", default="1,2,4,8,16", help="length factors of the polling capture, or none")
    ap.add_argument("--commands", default="poll,plant4", help="captures for inventory/assess, or none")
    ap.add_argument("--no-tshark", action="store_true", help="plantguard only (no comparison figures)")
    ap.add_argument("--smoke", action="store_true",
                    help="small captures (poll_scale --seconds 10 --cells 1, plant_scale --replicas 1 ...), "
                         "to check the script; results go to benchmarks/out/smoke/ unless --out")
    ap.add_argument("--core", type=int, default=0, help="core every measured process is pinned to (default 0)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the measured processes")
    ap.add_argument("--data", type=Path, default=DATA, help="where captures are built (default benchmarks/.data)")
    ap.add_argument("--out", type=Path, default=None, help="where results.md/json go (default benchmarks/)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    specs = SMOKE_CAPTURES if args.smoke else CAPTURES
    out_dir = args.out or (HERE / "out" / "smoke" if args.smoke else HERE)
    names = _list(args.captures, list(specs))
    factors = sorted(set(_list(args.scaling, conv=int)))
    cmd_names = _list(args.commands, list(specs))
    tshark = not args.no_tshark
    if tshark and not shutil.which("tshark"):
        ap.error("tshark not found (install it, or --no-tshark)")
    pin = Pinning(None if args.no_pin else args.core)
    t0 = time.time()
    res = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(pin),
           "args": {"captures": names, "repeat": args.repeat, "scaling": factors, "commands": cmd_names,
                    "tshark": tshark, "smoke": args.smoke, "tshark_command": " ".join(tshark_cmd(Path("CAPTURE")))},
           "engine": [], "scaling": None, "commands": [], "elapsed_s": 0.0}
    print(f"pinning: {pin.how}; {args.repeat} repetition(s); output to {out_dir}", flush=True)
    if tshark:                               # untimed: tshark's first start (plugins, profile)
        measure(tshark_cmd(build(specs["poll"], args.data)["path"]) + ["-c", "2000"], pin)
    res["engine"] = section_engine(names, specs, args, pin, tshark)
    res["elapsed_s"] = time.time() - t0
    write(res, out_dir)
    if factors:
        res["scaling"] = section_scaling(factors, specs, args, pin)
        res["elapsed_s"] = time.time() - t0
        write(res, out_dir)
    if cmd_names:
        res["commands"] = section_commands(cmd_names, specs, args, pin, res["engine"])
    res["elapsed_s"] = time.time() - t0
    res["machine"]["loadavg_end"] = os.getloadavg()
    table = write(res, out_dir)
    print()
    print(table)
    print(f"written: {out_dir / 'results.md'}, {out_dir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
