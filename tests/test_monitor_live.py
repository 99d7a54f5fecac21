"""`plantguard monitor --interface` on one end of a veth pair between two network namespaces
(the fixture of test_live_capture.py), real captures replayed onto the other end with tcpreplay:
its final checkpoint's assets equal `assess` of the file as sent, VLAN kept, and the S7 program
download raises its one alert live. Needs root, ip and tcpreplay (a failure under CI)."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import shared_path
from plantguard.assess import run_assessment
from plantguard.capture.engine import analyze
from plantguard.store.db import IN_MEMORY
from support.monitor import MonitorProc, alerts_of, jsonl
from test_live_capture import ENIP_VLAN, as_sent, sh, veth  # noqa: F401 - the namespace fixture, reused
from test_siem_syslog import EVENT_ID, Rsyslog, make_certs, require_rsyslog

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



class NsRsyslog(Rsyslog):
    """The rsyslog of test_siem_syslog.py inside a namespace (the monitor's, so that its sinks reach
    it on the namespace's loopback); listening is asked of the namespace's socket table, since a
    handshake from here would reach the host's loopback."""

    def __init__(self, ns: str, d: Path):
        super().__init__(require_rsyslog(), d, make_certs(d))
        self.ns, self.prefix = ns, ("ip", "netns", "exec", ns)   # ip netns exec execs rsyslogd itself

    def start(self):
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        super().start()

    def listening(self) -> bool:
        return bool(subprocess.run([*self.prefix, "ss", "-Hltn", f"sport = :{self.port}"],
                                   capture_output=True, text=True, check=False).stdout.strip())


@pytest.mark.slow
def test_live_alert_reaches_rsyslog_over_tls_within_2s(veth, tmp_path):  # noqa: F811
    """The issue's whole path: a real plant capture replayed onto the veth, `monitor --interface`
    in the other namespace, the unauthorised S7 program download's alert delivered once to a real
    rsyslog over TLS in CEF and in ECS, within 2 s of the replay, with its frame as evidence."""
    src = as_sent(shared_path(DOWNLOAD), tmp_path / "sent.pcap")
    syslog_dir = tmp_path / "rsyslog"
    syslog_dir.mkdir()
    rsyslog = NsRsyslog(veth.rx_ns, syslog_dir)
    rsyslog.start()
    ca = rsyslog.certs["ca"]
    (tmp_path / "site.yaml").write_text("site: test plant\nengineering_workstations: [192.168.1.99]\n")
    args = ["--interface", veth.rx_if, "--site", "site.yaml", "--state", "state", "--checkpoint", "1h",
            "--status-every", "0.2s"]
    for fmt in ("cef", "ecs"):
        args += ["--sink", f"syslog+tls://127.0.0.1:{rsyslog.port}?format={fmt}&ca={ca}"]
    mon = MonitorProc(args, tmp_path, prefix=["ip", "netns", "exec", veth.rx_ns])
    try:
        mon.wait_started()
        sent = time.monotonic()
        sh("ip", "netns", "exec", veth.tx_ns, "tcpreplay", "-q", "-i", veth.tx_if, "--topspeed", str(src))
        while time.monotonic() < sent + 10 and not (
                any(b"act=program-change" in x for x in rsyslog.lines())
                and any(b'"action":"program-change"' in x for x in rsyslog.lines())):
            time.sleep(0.02)
        delay = time.monotonic() - sent
        assert mon.stop(signal.SIGTERM) == 0
    finally:
        if mon.proc.poll() is None:
            mon.proc.kill()
            mon.proc.wait()
        rsyslog.stop()
    lines = rsyslog.lines()
    cef = [x for x in lines if b"CEF:0|" in x and b"act=program-change" in x]
    ecs = [x for x in lines if b'"action":"program-change"' in x]
    assert len(cef) == 1 and len(ecs) == 1, (cef, ecs)
    print(f"program-change alert in rsyslog {delay:.2f} s after the replay started")
    assert delay <= 2.0, f"alert {delay:.2f} s after the replay started"
    assert EVENT_ID["cef"].search(cef[0]).group(1) == EVENT_ID["ecs"].search(ecs[0]).group(1)
    assert b"cs4=" in cef[0]                                   # the evidence frame
