"""`plantguard monitor --interface` on one end of a veth pair between two network namespaces
(the fixture of test_live_capture.py), real captures replayed onto the other end with tcpreplay:
its final checkpoint's assets equal `assess` of the file as sent, VLAN kept, and the S7 program
download raises its one alert live. Needs root, ip and tcpreplay (a failure under CI)."""
from __future__ import annotations

import json
import signal

import pytest

from conftest import shared_path
from plantguard.assess import run_assessment
from plantguard.capture.engine import analyze
from plantguard.store.db import IN_MEMORY
from support.monitor import MonitorProc, alerts_of, jsonl
from test_live_capture import ENIP_VLAN, as_sent, sh, veth  # noqa: F401 - the namespace fixture, reused

DOWNLOAD = "pcaps/ICS-Security-Tools/s7/s7comm_downloading_block_db1.pcap"


def asset_keys(contract: dict) -> list:
    """Assets without what a replay changes (times, capture names, frame numbers)."""
    return sorted((a["ip"] or "", a["mac"] or "", a["ips"], a["macs"], a["vlans"], a["role"], a["protocols"],
                   sorted(a["identity"].items()), a["zone"]) for a in contract["assets"])


@pytest.mark.slow
@pytest.mark.parametrize("rel, program_alerts", [(DOWNLOAD, 1), (ENIP_VLAN, 0)])
def test_live_monitor_assets_equal_the_offline_run(veth, tmp_path, rel, program_alerts):  # noqa: F811
    src = as_sent(shared_path(rel), tmp_path / "sent.pcap")
    want = run_assessment(analyze([src]), None, db=IN_MEMORY)
    out = tmp_path / "alerts.jsonl"
    mon = MonitorProc(["--interface", veth.rx_if, "--state", "state", "--sink", f"file://{out}?format=ecs",
                       "--checkpoint", "1h", "--status-every", "0.2s"], tmp_path, prefix=["ip", "netns", "exec", veth.rx_ns])
    try:
        mon.wait_started()
        sh("ip", "netns", "exec", veth.tx_ns, "tcpreplay", "-q", "-i", veth.tx_if, "--pps=2000", str(src))
        n = want["summary"]["packets"]
        mon.wait_for(lambda: f"monitor: {n:,} packets, kernel drops 0," in mon.stderr.read_text(), 30,
                     "status line of every packet replayed")
        assert mon.stop(signal.SIGTERM) == 0
    finally:
        if mon.proc.poll() is None:
            mon.proc.kill()
            mon.proc.wait()
    got = json.loads((tmp_path / "state" / "assessment.json").read_text())
    assert got["summary"]["packets"] == n
    assert asset_keys(got) == asset_keys(want)
    assert [f["check"] for f in got["findings"] if f["status"] == "fail"] == \
        [f["check"] for f in want["findings"] if f["status"] == "fail"]
    assert len(alerts_of(jsonl(out), "program-change")) == program_alerts
