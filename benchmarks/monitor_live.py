#!/usr/bin/env python3
"""Benchmark: `plantguard monitor --interface` on a veth pair between two network namespaces,
a capture replayed onto the other end with tcpreplay at several offered rates: packets the monitor
counted and kernel drops per rate, beside the offline rate of the same file (engine.analyze).
Needs root, ip and tcpreplay. The sensor's rate at 0 kernel drops is the highest rate with none.

usage: python benchmarks/monitor_live.py [--capture FILE] [--rates 100000,150000,200000,250000,topspeed]
(default capture: poll_scale.py --seconds 149 --cells 4, built into benchmarks/.data)"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live import sh, veth, veth_down  # the veth pair of benchmarks/live.py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PLANTGUARD = [sys.executable, "-m", "plantguard"]
STATUS = re.compile(r"monitor: ([\d,]+) packets, kernel drops ([\d,]+)")


def default_capture() -> Path:
    out = HERE / ".data" / "poll_s149_c4.pcap"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tool = ROOT.parent / "shared" / "tools" / "poll_scale.py"
        subprocess.run([sys.executable, str(tool), "--seconds", "149", "--cells", "4", str(out)], check=True)
    return out


def one_rate(capture: Path, rate: str) -> dict:
    pair = veth()
    tx_ns, rx_ns, tx_if, rx_if = pair
    try:
        with tempfile.TemporaryDirectory() as d:
            err = Path(d) / "stderr"
            env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
            with open(err, "w") as fh:
                mon = subprocess.Popen(["ip", "netns", "exec", rx_ns, *PLANTGUARD, "monitor", "--interface", rx_if,
                                        "--state", f"{d}/state", "--sink", f"file://{d}/alerts.jsonl?format=ecs",
                                        "--checkpoint", "1h", "--status-every", "0.5s"], stderr=fh, env=env, cwd=d)
            time.sleep(4)                                   # started and the ring open
            opt = "--topspeed" if rate == "topspeed" else f"--pps={rate}"
            t0 = time.monotonic()
            sh("ip", "netns", "exec", tx_ns, "tcpreplay", "-q", "-i", tx_if, opt, str(capture))
            replay_s = time.monotonic() - t0
            time.sleep(3)                                   # the backlog drained
            mon.send_signal(signal.SIGTERM)
            mon.wait(120)
            last = STATUS.findall(err.read_text().replace("\r", "\n"))
        packets, drops = (int(x.replace(",", "")) for x in last[-1]) if last else (0, 0)
        return {"rate": rate, "replay_s": replay_s, "packets": packets, "kernel_drops": drops}
    finally:
        veth_down(pair)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capture", type=Path)
    ap.add_argument("--rates", default="100000,150000,200000,250000,topspeed")
    args = ap.parse_args()
    cap = args.capture or default_capture()
    sys.path.insert(0, str(ROOT / "src"))
    from plantguard.capture.engine import analyze
    t0 = time.perf_counter()
    total = analyze([cap]).captures[0].packets
    offline = total / (time.perf_counter() - t0)
    print(f"{cap.name}: {total:,} packets; offline engine.analyze {offline:,.0f} packets/s (this process)\n")
    print("| offered | replay s | offered pkt/s | counted | kernel drops |\n|---|---:|---:|---:|---:|")
    for rate in args.rates.split(","):
        r = one_rate(cap, rate)
        print(f"| {rate} | {r['replay_s']:.2f} | {total / r['replay_s']:,.0f} | {r['packets']:,} | {r['kernel_drops']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
