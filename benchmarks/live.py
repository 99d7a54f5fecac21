"""Live capture throughput: tcpreplay a capture onto a veth pair between two network namespaces
and read the other end with capture.live (TPACKET_V3 ring into Chunks), beside the offline read
rate of the same file (formats.read_chunks) and the engine's offline rate (engine.analyze).

    sudo .venv/bin/python benchmarks/live.py [--capture F] [--loop N] [--rates topspeed,200000,...]

For each offered rate (tcpreplay --topspeed or --pps) it prints what tcpreplay sent, what the
ring received, the kernel's drops and the received packets/s (frames over tcpreplay's send
time), then the highest rate with 0 kernel drops. Needs root, ip (iproute2) and tcpreplay.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT = [HERE / ".data" / "plant_r1.pcap",
           Path(os.environ.get("PLANTGUARD_SHARED_DATA", ROOT.parent / "shared" / "data"))
           / "pcaps/ICS-Security-Tools/openics/EIP-ChangePortConfigurationAttempt.pcap"]


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout


def veth() -> tuple[str, str, str, str]:
    tag = uuid.uuid4().hex[:8]
    tx_ns, rx_ns, tx_if, rx_if = f"pgtx-{tag}", f"pgrx-{tag}", f"pgt{tag}", f"pgr{tag}"
    for ns in (tx_ns, rx_ns):
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
           "net.ipv6.conf.default.disable_ipv6=1")
    sh("ip", "link", "add", tx_if, "netns", tx_ns, "type", "veth", "peer", "name", rx_if, "netns", rx_ns)
    for ns, dev in ((tx_ns, tx_if), (rx_ns, rx_if)):
        sh("ip", "-n", ns, "link", "set", dev, "mtu", "9000", "up")
    return tx_ns, rx_ns, tx_if, rx_if


def veth_down(pair) -> None:
    for ns in pair[:2]:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def run_rate(pair, capture: Path, rate: str, loop: int, blocks: int) -> dict:
    tx_ns, rx_ns, tx_if, rx_if = pair
    reader = subprocess.Popen(["ip", "netns", "exec", rx_ns, sys.executable, "-m", "plantguard.capture.live", rx_if,
                               "--idle", "2", "--blocks", str(blocks)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    try:
        assert reader.stdout.readline().strip() == "ready"
        speed = ["--topspeed"] if rate == "topspeed" else [f"--pps={rate}"]
        out = sh("ip", "netns", "exec", tx_ns, "tcpreplay", "-i", tx_if, *speed, f"--loop={loop}", str(capture))
        stats = json.loads(reader.communicate(timeout=600)[0].strip().splitlines()[-1])
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    m = re.search(r"Actual: (\d+) packets .* sent in ([\d.]+) seconds", out)
    sent, secs = int(m.group(1)), float(m.group(2))
    return {"rate": rate, "sent": sent, "send_s": secs, "offered_pps": sent / secs if secs else 0.0, **stats,
            "received_pps": stats["frames"] / secs if secs else 0.0}


def offline(capture: Path) -> dict:
    from plantguard.capture import formats
    from plantguard.capture.engine import analyze
    t = time.perf_counter()
    n = sum(len(c) for c in formats.read_chunks(capture))
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    analyze([capture])
    analyze_s = time.perf_counter() - t
    return {"packets": n, "read_pps": n / read_s, "analyze_pps": n / analyze_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capture", type=Path, default=next((p for p in DEFAULT if p.exists()), None))
    ap.add_argument("--loop", type=int, default=1, help="tcpreplay --loop")
    ap.add_argument("--rates", default="topspeed,400000,200000,100000,50000",
                    help="offered rates, tried in this order: topspeed or packets/s")
    ap.add_argument("--blocks", type=int, default=32, help="ring blocks of 1 MiB")
    a = ap.parse_args()
    if a.capture is None or not a.capture.exists():
        print("error: no capture (give --capture)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "src"))
    off = offline(a.capture)
    print(f"capture {a.capture} ({off['packets']:,} packets), loop {a.loop}")
    print(f"offline: read {off['read_pps']:,.0f} packets/s, engine.analyze {off['analyze_pps']:,.0f} packets/s")
    pair = veth()
    best = None
    try:
        print("| offered | sent | sent pps | received | kernel drops | freeze | received pps |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for rate in a.rates.split(","):
            r = run_rate(pair, a.capture, rate, a.loop, a.blocks)
            print(f"| {rate} | {r['sent']:,} | {r['offered_pps']:,.0f} | {r['frames']:,} | {r['drops']:,} | "
                  f"{r['freeze_q']:,} | {r['received_pps']:,.0f} |", flush=True)
            if r["drops"] == 0 and r["frames"] == r["sent"] and (best is None or r["received_pps"] > best["received_pps"]):
                best = r
    finally:
        veth_down(pair)
    if best:
        print(f"highest rate at 0 kernel drops: {best['received_pps']:,.0f} packets/s (offered {best['rate']})")
    else:
        print("no rate without kernel drops")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
