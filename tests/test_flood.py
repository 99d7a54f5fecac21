"""A flood of 1,000,000 distinct source addresses (a scan or a spoofed SYN flood) must not
make memory grow with packets: with the flow table capped at what the default memory budget
allows (plantguard.budget, the CLI's defaults), the least recently seen flows are folded into
aggregates, the run says so in notes and counters, and every packet is still counted. Peak RSS
of the analysing process, and of `assess` and `inventory` (with a store) run through the real
CLI, is held under the budget."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from support.packets import pcap_bytes, tcp_frame

from plantguard.budget import DEFAULT

N_SOURCES = 1_000_000
FLOW_CAP = DEFAULT.max_flows             # the CLI's default, from the memory budget
FLOOD_RSS_CAP_MB = 600   # analysis alone, measured ~330 MB; the file alone is ~70 MB of mapped pages


def write_flood(path, n: int) -> None:
    """n SYNs from n different sources to one server, written with array operations."""
    template = tcp_frame("10.0.0.0", "10.200.0.1", 40000, 80, b"", flags=0x02)
    rec = np.frombuffer(pcap_bytes([(1_700_000_000, template)])[24:], np.uint8)
    m = np.tile(rec, (n, 1))
    i = np.arange(n, dtype=np.int64)
    m[:, 4:8] = (i % 1_000_000).astype("<u4").view(np.uint8).reshape(n, 4)   # µs
    m[:, 0:4] = (1_700_000_000 + i // 1_000_000).astype("<u4").view(np.uint8).reshape(n, 4)
    src = 16 + 14 + 12           # record header + Ethernet + offset of the IPv4 source
    m[:, src + 1] = (i >> 16) & 0xFF
    m[:, src + 2] = (i >> 8) & 0xFF
    m[:, src + 3] = i & 0xFF
    with open(path, "wb") as fh:
        fh.write(pcap_bytes([]))
        fh.write(m.tobytes())


CHILD = """
import json, resource, sys
from plantguard.capture.engine import analyze
res = analyze([sys.argv[1]])            # the defaults: budget.DEFAULT
print(json.dumps({"rss_kb": int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))),
                  "packets": sum(f.packets for f in res.flows), "flows": len(res.flows),
                  "to_server": sum(f.packets_to_server for f in res.flows),
                  "notes": res.notes, "counters": res.counters,
                  "captured": res.captures[0].packets,
                  "clients": sorted({f.client for f in res.flows})[:3]}))
"""


def test_million_source_flood_stays_bounded(tmp_path):
    path = tmp_path / "flood.pcap"
    write_flood(path, N_SOURCES)
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    assert r["captured"] == N_SOURCES
    assert r["packets"] == N_SOURCES and r["to_server"] == N_SOURCES   # nothing lost in aggregation
    assert r["counters"]["flows_evicted"] >= N_SOURCES - FLOW_CAP
    assert r["flows"] < FLOW_CAP + 10_000
    assert any("flow table capped" in n for n in r["notes"])
    assert r["clients"][0].endswith("/24")
    assert r["rss_kb"] / 1024 < FLOOD_RSS_CAP_MB, r["rss_kb"]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["assess", "inventory"])
def test_million_source_flood_through_the_cli(tmp_path, command):
    """The real CLI at its defaults (no --max-memory): assess to JSON, inventory into a store.
    Before the budget: 2.1 GB and 3.3 GB; now under DEFAULT.max_memory_mb, with the losses
    counted and noted."""
    from test_budget import run_cli_measured
    path = tmp_path / "flood.pcap"
    write_flood(path, N_SOURCES)
    if command == "assess":
        args = ["assess", str(path), "-f", "json", "-o", str(tmp_path / "r.json"), "-q"]
    else:
        args = ["inventory", str(path), "-f", "json", "-q", "--db", str(tmp_path / "inv.db")]
    r = run_cli_measured(args, tmp_path)
    assert r["rc"] == 0, r["err"]
    doc = json.loads((tmp_path / "r.json").read_text() if command == "assess" else r["out"])
    notes = doc["notes"]
    assert any("flow table capped" in n for n in notes)
    assert any("asset table capped" in n for n in notes)
    assert doc["counters"]["flows_evicted"] >= N_SOURCES - FLOW_CAP
    assert doc["counters"]["assets_dropped"] > 0
    assert len(doc["assets"]) <= DEFAULT.max_assets + 10
    assert r["rss_kb"] / 1024 < DEFAULT.max_memory_mb, r["rss_kb"]


def test_small_flood_aggregates_like_the_big_one(tmp_path):
    """The same behaviour at a size that runs in a second, in process."""
    from plantguard.capture.engine import analyze
    path = tmp_path / "small.pcap"
    write_flood(path, 5000)
    res = analyze([path], max_flows=1000, chunk_records=512)
    assert sum(f.packets for f in res.flows) == 5000
    assert res.counters["flows_evicted"] >= 4000
    agg = [f for f in res.flows if "/" in f.client]
    assert agg and all(f.client_port == 0 and f.server == "10.200.0.1" and f.port == 80 for f in agg)
    assert any("flow table capped" in n for n in res.notes)
    full = analyze([path])
    assert len(full.flows) == 5000 and full.counters["flows_evicted"] == 0 and not full.notes


def test_protocol_state_table_is_capped(tmp_path):
    """More live Modbus flows than decoder states allowed: the least recently used states go,
    the run says so, and every request is still counted."""
    from plantguard.capture.engine import analyze
    frames, t = [], 1_700_000_000.0
    for rnd in range(3):
        for i in range(200):
            client = f"10.9.{i // 250}.{i % 250 + 1}"
            req = bytes.fromhex("0001000000060103000a0002")
            frames.append((t, tcp_frame(client, "10.9.9.9", 30000 + i, 502, req, seq=1 + 12 * rnd)))
            t += 0.001
    path = tmp_path / "many.pcap"
    path.write_bytes(pcap_bytes(frames))
    res = analyze([path], max_states=50, chunk_records=128)
    assert res.counters["states_evicted"] > 0
    assert any("protocol state kept for at most 50" in n for n in res.notes)
    assert sum(f.operations.get("read", 0) for f in res.flows) == 600
    assert all(f.app == "modbus" for f in res.flows)
