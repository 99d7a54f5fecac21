#!/usr/bin/env python3
"""Throughput and memory of the plantguard packet engine against tshark on the same capture.

Builds (if missing) plant-scale captures from the shared test captures with
shared/tools/plant_scale.py (--replicas 5 and 20), then measures, each in a fresh process:
  - plantguard: the packet stage end to end (read, columnar + deep tiers, flows, observations),
    wall time, packets/s and peak RSS;
  - tshark: dissecting the same file and extracting the same protocol fields to /dev/null,
    wall time, packets/s and peak RSS.
Prints a Markdown table and writes benchmarks/results.md.

usage: python benchmarks/run_benchmark.py [--replicas 5 20] [--no-tshark] [--fresh-tshark] [--data DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / ".data"
PLANT_SCALE = ROOT.parent / "shared" / "tools" / "plant_scale.py"
TSHARK_FIELDS = ["frame.number", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "udp.srcport",
                 "udp.dstport", "modbus.func_code", "enip.command", "cip.sc", "s7comm.param.func",
                 "dnp3.al.func", "bacapp.confirmed_service", "mqtt.msgtype", "tls.handshake.type"]

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from plantguard.capture.engine import analyze
t1 = time.perf_counter()
res = analyze([sys.argv[1]])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "analyze_s": t2 - t1,
                  "packets": sum(c.packets for c in res.captures), "flows": len(res.flows),
                  "observations": len(res.observations), "counters": res.counters,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build(replicas: int, data_dir: Path) -> Path:
    out = data_dir / f"plant_r{replicas}.pcap"
    if not out.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"building {out.name} ...", flush=True)
        subprocess.run([sys.executable, str(PLANT_SCALE), "--replicas", str(replicas), str(out)], check=True)
    return out


def time_v(cmd: list[str], stdout=subprocess.DEVNULL) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of a command, via /usr/bin/time -v when present."""
    tv = shutil.which("time") or "/usr/bin/time"
    use_tv = os.path.exists(tv)
    full = [tv, "-v"] + cmd if use_tv else cmd
    t = time.perf_counter()
    p = subprocess.run(full, stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE,
                       text=True, env={**os.environ, "LC_ALL": "C"})
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {p.stderr[-500:]}")
    rss = 0.0
    for line in p.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.rsplit(":", 1)[1]) / 1024
    return wall, rss, p.stdout or ""


def run_plantguard(path: Path) -> dict:
    py = ROOT / ".venv" / "bin" / "python"
    exe = str(py) if py.exists() else sys.executable
    # one warm-up run so compiled kernels are cached on disk, as they are after installation
    subprocess.run([exe, "-c", CHILD, str(path)], capture_output=True, check=True)
    wall, rss, out = time_v([exe, "-c", CHILD, str(path)], stdout=None)
    info = json.loads(out.strip().splitlines()[-1])
    info.update(wall_s=wall, peak_rss_mb=rss or info["rss_mb"])
    return info


def run_tshark(path: Path, fresh: bool) -> dict:
    """tshark's figures for a capture; kept beside it (tshark_<name>.json) and reused unless
    fresh, since they do not change when plantguard does."""
    cache = path.with_name(f"tshark_{path.stem}.json")
    if cache.exists() and not fresh:
        return json.loads(cache.read_text())
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    wall, rss, _ = time_v(cmd)
    out = {"wall_s": wall, "peak_rss_mb": rss, "measured": time.strftime("%Y-%m-%d %H:%M")}
    cache.write_text(json.dumps(out))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--fresh-tshark", action="store_true", help="measure tshark again even if cached")
    args = ap.parse_args()
    tshark = None if args.no_tshark else shutil.which("tshark")
    rows = []
    for n in args.replicas:
        path = build(n, args.data)
        pg = run_plantguard(path)
        pkts = pg["packets"]
        row = {"capture": path.name, "packets": pkts, "size_mb": path.stat().st_size / 2**20, "pg": pg}
        if tshark:
            row["ts"] = run_tshark(path, args.fresh_tshark)
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = render(rows)
    print(table)
    (HERE / "results.md").write_text(table)
    return 0


def render(rows: list[dict]) -> str:
    lines = [
        "# Packet engine benchmark",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU(s) visible, Python {platform.python_version()}; "
        f"one core used by each tool. Generated by `benchmarks/run_benchmark.py` on {time.strftime('%Y-%m-%d')}.",
        "",
        "| capture | packets | MB | plantguard wall s | plantguard pkt/s | plantguard peak RSS MB "
        "| tshark wall s | tshark pkt/s | tshark peak RSS MB | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        pg = r["pg"]
        pg_rate = r["packets"] / pg["wall_s"]
        ts = r.get("ts")
        ts_cells = ["n/a", "n/a", "n/a", "n/a"]
        if ts:
            ts_rate = r["packets"] / ts["wall_s"]
            ts_cells = [f"{ts['wall_s']:.1f}", f"{ts_rate:,.0f}", f"{ts['peak_rss_mb']:.0f}",
                        f"{pg_rate / ts_rate:.1f}x"]
        lines.append(f"| {r['capture']} | {r['packets']:,} | {r['size_mb']:.0f} | {pg['wall_s']:.1f} | "
                     f"{pg_rate:,.0f} | {pg['peak_rss_mb']:.0f} | " + " | ".join(ts_cells) + " |")
    lines += ["", "Wall time is the whole process (start-up and import included). Engine detail:", ""]
    for r in rows:
        pg = r["pg"]
        c = pg["counters"]
        lines.append(f"- {r['capture']}: analyze() {pg['analyze_s']:.1f} s "
                     f"({r['packets'] / pg['analyze_s']:,.0f} pkt/s), import {pg['import_s']:.1f} s; "
                     f"{pg['flows']:,} flows, {pg['observations']:,} distinct observations; "
                     f"routine packets replayed {c.get('routine_packets', 0):,}, deep-decoded "
                     f"{c.get('deep_packets', 0):,} ({100 * c.get('deep_packets', 0) / max(r['packets'], 1):.1f}%)")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
