"""One memory budget (plantguard.budget): the CLI's --max-memory, the limits derived from it,
and what happens at each limit, counted and noted. The big cases run at the CLI defaults in a
child process whose peak RSS (ru_maxrss) must stay under the budget: 8,000 flows with half-sent
64 KiB PDUs, 1,000,000 MACs that only ARP."""
from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
from support.packets import pcap_bytes, tcp_frame

from plantguard.budget import DEFAULT, Budget
from plantguard.capture.deep import DeepTier, Partial
from plantguard.capture.engine import analyze
from plantguard.model import Packet


def test_limits_follow_the_budget():
    small, big = Budget.from_mb(500), Budget.from_mb(4000)
    for name in ("max_flows", "max_states", "pending_bytes", "max_assets"):
        assert getattr(small, name) < getattr(DEFAULT, name) < getattr(big, name)
    assert DEFAULT.max_memory_mb == 1500
    with pytest.raises(ValueError):
        Budget.from_mb(10)


def test_cli_takes_max_memory(tmp_path):
    from typer.testing import CliRunner
    from plantguard.cli import app
    p = tmp_path / "one.pcap"
    p.write_bytes(pcap_bytes([(1.0, tcp_frame("10.0.0.1", "10.0.0.2", 40000, 80, b"x"))]))
    r = CliRunner().invoke(app, ["inventory", str(p), "--no-store", "-q", "--max-memory", "10"])
    assert r.exit_code == 2 and "--max-memory must be at least" in r.output
    r = CliRunner().invoke(app, ["inventory", str(p), "--no-store", "-q", "-f", "json", "--max-memory", "400"])
    assert r.exit_code == 0, r.output


class _TwoThenBoom:
    """A module that emits an observation per APDU and raises on the third (as BACnet would on a
    garbage APDU after two good ones)."""
    @staticmethod
    def decode(pkt):
        out = [pkt.observe("operation", "bacnet", category="read"),
               pkt.observe("operation", "bacnet", category="write")]
        raise ValueError("garbage APDU")
        return out   # noqa: unreachable


def test_decoder_error_keeps_what_came_before():
    deep = DeepTier()
    got = deep.run(_TwoThenBoom, Packet("c", 1, 0.0, b"x", src="10.0.0.1", l4="udp"))
    assert isinstance(got, Partial) and [o.data["category"] for o in got] == ["read", "write"]
    assert deep.errors == 1 and deep.partial == 1


def test_bacnet_error_after_an_apdu_keeps_it(monkeypatch):
    """The real BACnet decoder raising after its first observation: that observation is kept."""
    from plantguard.protocols import bacnet
    mod = bacnet if hasattr(bacnet, "decode") else bacnet.decode
    calls = []
    real_observe = Packet.observe

    def observe_then_raise(self, *a, **k):
        o = real_observe(self, *a, **k)
        calls.append(o)
        raise RuntimeError("second APDU is garbage")
    deep = DeepTier()
    pkt = Packet("c", 1, 0.0, bytes.fromhex("810a001101040005010c0c023fffff194b"), src="10.0.0.1",
                 dst="10.0.0.2", l4="udp", sport=47808, dport=47808)
    monkeypatch.setattr(Packet, "observe", observe_then_raise)
    got = deep.run(mod, pkt)
    monkeypatch.undo()
    assert calls                 # the decoder emitted its read_property before raising
    assert got == calls[:1] and isinstance(got, Partial)
    assert deep.errors == 1 and deep.partial == 1


def half_open_pdus(n_flows: int, segs: int, seg_len: int) -> bytes:
    """n_flows EtherNet/IP connections, each sending the first segs * seg_len bytes of an
    encapsulation PDU that says it is 65,000 bytes long, and never the rest."""
    frames, t = [], 1_700_000_000.0
    head = struct.pack("<HHIIQI", 0x6F, 65000, 1, 0, 0, 0)
    body = bytes(seg_len)
    for k in range(segs):
        for i in range(n_flows):
            client = f"10.{20 + i // 62500}.{(i // 250) % 250}.{i % 250 + 1}"
            pay = (head + body[len(head):]) if k == 0 else body
            frames.append((t, tcp_frame(client, "10.1.1.1", 30000 + i % 30000, 44818, pay,
                                        seq=1 + k * seg_len)))
            t += 1e-5
    return pcap_bytes(frames)


def test_pending_bytes_share_one_budget(tmp_path):
    p = tmp_path / "half.pcap"
    p.write_bytes(half_open_pdus(200, 4, 8000))
    tight = Budget(1500, 100_000, 10_000, 1 << 20, 10_000)     # 1 MiB for all pending PDUs
    res = analyze([p], budget=tight)
    assert res.counters["decoder_buffers_truncated"] > 0
    assert any("decoder buffers truncated" in n for n in res.notes)
    free = analyze([p])
    assert free.counters["decoder_buffers_truncated"] == 0


CHILD = """
import json, resource, sys
from plantguard.budget import DEFAULT
from plantguard.capture.engine import analyze
from plantguard.protocols import _pdustream
res = analyze([sys.argv[1]], budget=DEFAULT)     # what the CLI runs without --max-memory
print(json.dumps({"rss_kb": int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))), "flows": len(res.flows),
                  "counters": res.counters, "notes": res.notes, "pending": _pdustream.PENDING.used}))
"""


@pytest.mark.slow
def test_8k_half_open_64k_pdus_at_cli_defaults(tmp_path):
    p = tmp_path / "half.pcap"
    p.write_bytes(half_open_pdus(8000, 8, 8000))
    out = subprocess.run([sys.executable, "-c", CHILD, str(p)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    assert r["flows"] == 8000
    assert r["pending"] <= DEFAULT.pending_bytes
    assert r["counters"]["decoder_buffers_truncated"] > 0
    assert any("decoder buffers truncated" in n for n in r["notes"])
    assert r["rss_kb"] / 1024 < DEFAULT.max_memory_mb, r["rss_kb"]


def write_arp_flood(path, n: int) -> None:
    """n gratuitous ARP announcements, each from its own MAC and address."""
    arp = struct.pack(">HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\x02" + bytes(5), bytes([10, 50, 0, 0]),
                      bytes(6), bytes([10, 50, 0, 0]))
    frame = b"\xff" * 6 + b"\x02" + bytes(5) + b"\x08\x06" + arp
    rec = np.frombuffer(pcap_bytes([(1_700_000_000, frame)])[24:], np.uint8)
    m = np.tile(rec, (n, 1))
    i = np.arange(n, dtype=np.int64)
    m[:, 4:8] = (i % 1_000_000).astype("<u4").view(np.uint8).reshape(n, 4)
    m[:, 0:4] = (1_700_000_000 + i // 1_000_000).astype("<u4").view(np.uint8).reshape(n, 4)
    base = 16
    for col in (base + 6 + 3, base + 14 + 8 + 3):      # Ethernet source MAC, ARP sender MAC
        m[:, col], m[:, col + 1], m[:, col + 2] = (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF
    for col in (base + 14 + 14, base + 14 + 24):       # ARP sender and target address 10.50.0.0 + i
        m[:, col + 1], m[:, col + 2], m[:, col + 3] = 50 + (i >> 16), (i >> 8) & 0xFF, i & 0xFF
    with open(path, "wb") as fh:
        fh.write(pcap_bytes([]))
        fh.write(m.tobytes())


MEASURE = """
import json, os, resource, subprocess, sys
with open(sys.argv[1], "wb") as fh:
    p = subprocess.run(sys.argv[2:], stdout=fh, stderr=subprocess.PIPE)
print(json.dumps({"rc": p.returncode, "rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "err": p.stderr.decode()[-3000:]}))
"""


def run_cli_measured(args, cwd) -> dict:
    """The real CLI in a child process: its exit code, stdout (r["out"]), stderr and peak RSS
    (ru_maxrss of the measuring process's children)."""
    stdout = cwd / "cli.out"
    out = subprocess.run([sys.executable, "-c", MEASURE, str(stdout), sys.executable, "-m", "plantguard", *args],
                         capture_output=True, text=True, timeout=600, cwd=cwd)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    r["out"] = stdout.read_text()
    return r


@pytest.mark.slow
def test_million_arp_only_macs_give_a_capped_inventory(tmp_path):
    p = tmp_path / "arp.pcap"
    write_arp_flood(p, 1_000_000)
    r = run_cli_measured(["inventory", str(p), "--no-store", "-q", "-f", "json"], tmp_path)
    assert r["rc"] == 0, r["err"]
    inv = json.loads(r["out"])
    assets = inv["assets"]
    print("peak RSS MiB", r["rss_kb"] // 1024)
    assert r["rss_kb"] / 1024 < DEFAULT.max_memory_mb, r["rss_kb"]
    assert len(assets) == DEFAULT.max_assets                 # capped, not empty
    assert any("asset table capped" in n for n in inv["notes"])
    # 1,000,000 distinct address observations: the budget's observation cap keeps the first
    # ones, the asset cap the busiest of what remains
    assert inv["counters"]["observations_dropped"] >= 1_000_000 - DEFAULT.max_observations
    assert any("observations dropped" in n for n in inv["notes"])
    assert inv["counters"]["assets_dropped"] > 100_000


def test_asset_cap_keeps_identities_and_counts_layer2_devices():
    """Past the budget's asset limit: a device with identity stays however quiet it is,
    addresses seen only in ARP weigh by their observations, and layer-2-only devices (LLDP
    here) take their share of the limit."""
    from plantguard.inventory.build import build_assets
    from plantguard.model import AnalysisResult, Flow, Observation
    res = AnalysisResult()
    res.limits = {"max_assets": 6}
    res.flows = [Flow("tcp", f"10.0.0.{i}", "10.0.1.1", 40000, 80, packets=100 + i,
                      client_mac=f"02:00:00:00:00:{i:02x}", server_mac="02:00:00:00:01:01") for i in range(1, 9)]
    res.observations = [
        Observation("identity", "modbus", "c", 1, 0.0, "10.0.9.9", "10.0.1.1", "02:00:00:00:09:09", None,
                    "tcp", 502, 40000, data={"vendor": "Acme"}),
        Observation("address", "arp", "c", 2, 0.0, "10.0.5.5", None, "02:00:00:00:05:05", None,
                    data={"ip": "10.0.5.5", "mac": "02:00:00:00:05:05", "source": "arp"}, count=10_000),
        Observation("identity", "lldp", "c", 3, 0.0, None, None, "02:00:00:00:07:07", None,
                    data={"name": "switch"}),
    ]
    notes: list[str] = []
    assets = build_assets(res, None, notes)
    ips = {a.ip for a in assets if a.ip}
    assert "10.0.9.9" in ips                      # identity: always kept
    assert "10.0.5.5" in ips                      # ARP only, but busy
    assert any("asset table capped at 6" in n and "1 layer-2-only" in n for n in notes), notes
    assert res.counters["assets_dropped"] == len({f.client for f in res.flows} | {"10.0.1.1", "10.0.9.9",
                                                                                "10.0.5.5"}) - (6 - 1)
