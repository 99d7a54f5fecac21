"""A simulated week in minutes: `plantguard monitor --watch` as a subprocess on a ring of 168
hourly pieces built from real shared captures (support/week.py: the corpus' polling
conversations once an hour, clients reconnecting from new ports every hour, two new hosts a day
from day 2, one S7 program download from an unauthorised new host on day 5), the clock driven by
packet time, --learn 1d (ending early, after 6 h without a new key), the smallest memory budget so the engine's caps are reached.
Exactly the expected alerts fire, each once; the monitor's RSS plateaus; the tables stay under
their caps."""
from __future__ import annotations

import json
import time
from collections import Counter

import psutil
import pytest
from conftest import SHARED_DATA, shared_path
from support.monitor import MonitorProc, alerts_of, jsonl
from support.ring import piece_name
from support.week import DOWNLOAD, HOURS, T0, build

from plantguard.budget import Budget

MAX_MEMORY_MB = 300                 # the smallest budget: 10,000 flows, 2,560 decoder states
RSS_GROWTH = 1.20                   # last third's RSS within +20 % of the first third's maximum
THIRD = HOURS * 3600 / 3


def subject(a: dict) -> str:
    """What an alert is about, from its message or endpoints (the alert key's host part)."""
    act, msg = a["event"]["action"], a["message"]
    if act == "new-asset":
        return msg.split()[2]
    if act == "new-protocol":
        return msg.split()[0]
    if act == "new-conduit":
        return msg.split()[-1]
    return f"{a['source']['ip']}>{a['destination']['ip']}"


@pytest.mark.slow
def test_a_simulated_week(tmp_path):
    shared_path(DOWNLOAD)
    week = build(tmp_path / "ring", SHARED_DATA, workdir=tmp_path)
    (tmp_path / "site.yaml").write_text("site: week plant\nengineering_workstations: [192.168.1.99]\n")
    out = tmp_path / "alerts.jsonl"
    mon = MonitorProc(["--watch", str(week.ring), "--site", "site.yaml", "--state", "state", "--learn", "1d",
                       "--checkpoint", "6h", "--max-memory", str(MAX_MEMORY_MB), "--status-every", "1s",
                       "--sink", f"file://{out}?format=ecs"], tmp_path)
    proc = psutil.Process(mon.proc.pid)
    mon.wait_started()
    # RSS against packet time: each sample is given the packet time of the last checkpoint
    samples, done, deadline = [], f"monitor: {week.packets:,} packets", time.monotonic() + 120
    while done not in mon.stderr.read_text():
        assert time.monotonic() < deadline and mon.proc.poll() is None, mon.stderr.read_text()[-2000:]
        rss = proc.memory_info().rss
        try:
            pt = json.loads((tmp_path / "state" / "checkpoint.json").read_text())["packet_time"]
            samples.append((pt - T0, rss))
        except (OSError, ValueError):
            pass
        time.sleep(0.25)
    assert mon.stop() == 0
    first = max(r for t, r in samples if t < THIRD)
    last = [r for t, r in samples if t >= 2 * THIRD]
    assert last and max(last) <= first * RSS_GROWTH, (first >> 20, max(last) >> 20)
    print(f"RSS: first third max {first >> 20} MB, last third max {max(last) >> 20} MB")

    alerts = alerts_of(jsonl(out))
    ids = [a["event"]["id"] for a in alerts]
    assert len(ids) == len(set(ids))                              # each key once: no storm from port churn
    after = Counter((a["event"]["action"], subject(a)) for a in alerts
                    if a["event"]["action"] != "plc-write" or subject(a).split(">")[0] not in week.learnt_clients)
    expected = Counter()
    for ip, (_, server) in week.new_hosts.items():
        expected.update([("new-asset", ip), ("new-protocol", ip), ("new-conduit", f"{ip}>{server}:502/tcp"),
                         ("plc-write", f"{ip}>{server}")])       # the copied conversation writes coils
    i, plc = week.intruder, week.plc
    expected.update([("new-asset", i), ("new-protocol", i), ("new-conduit", f"{i}>{plc}:102/tcp"),
                     ("new-conduit", f"{plc}>{i}:102/tcp"),      # the PLC's own SYN to port 102 in that capture
                     # (once the flow cap folds that flow into its client's /24, the aggregate
                     # repeats a known conduit and raises nothing)
                     ("program-change", f"{i}>{plc}")])
    assert after == expected, (after - expected, expected - after)
    # the learnt clients' writes alert once per key, all on the first burst, never again
    learnt = [a for a in alerts if a["event"]["action"] == "plc-write" and subject(a).split(">")[0] in week.learnt_clients]
    assert learnt and all(a["@timestamp"] < "2026-01-05T00:02" for a in learnt)
    new = [a for a in alerts if a not in learnt]
    assert all(a["@timestamp"] >= "2026-01-06" for a in new)      # nothing after learning but what is new

    (dl,) = [a for a in alerts if a["event"]["action"] == "program-change"]
    assert dl["@timestamp"].startswith("2026-01-09T10:") and dl["event"]["severity"] == 10   # day 5, critical
    ev = dl["plantguard"]["evidence"][0]
    assert ev["capture"].endswith(piece_name(week.download[0])) and ev["frame"] == week.download[1]

    # the tables stay under their caps, and the caps were reached (the churn is bounded)
    b = Budget.from_mb(MAX_MEMORY_MB)
    contract = json.loads((tmp_path / "state" / "assessment.json").read_text())
    c = contract["counters"]
    assert len(contract["flows"]) <= b.max_flows and c["flows_evicted"] > 0
    assert c["states_evicted"] > 0 and c["observations_dropped"] == 0
    assert len(contract["assets"]) <= b.max_assets
    base = json.loads((tmp_path / "state" / "baseline.json").read_text())
    # the plant's keys all show in its first hours: learning ended at a checkpoint (every 6 h) once
    # a quarter of --learn (the default quiet stretch) passed without a new key, before day 2
    assert base["ended_early"] and base["last_new"] + 6 * 3600 <= base["learn_until"] < T0 + 86400
    assert all(len(v) < 1000 for v in base["sets"].values())      # keys without client ports: no churn
    assert contract["summary"]["packets"] == week.packets
