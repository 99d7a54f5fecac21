"""Checkpoint alerts on a ring made of two real captures, in process: a Modbus plant
(ICS-Security-Tools/ModbusTCP/modbus_test_data_part1.pcap, no public address), then an MQTT
sensor publishing to a public broker (zeek/mqtt.pcap). egress.internet passes at the first
checkpoint and fails at the next: one check-failed alert carrying that check's ATT&CK ids and
controls, and one new-external alert for the broker; a check never passing before does not alert."""
from __future__ import annotations

import json

from conftest import shared_path
from plantguard.checks.registry import check_meta
from plantguard.monitor.run import Monitor
from plantguard.monitor.session import Session
from plantguard.monitor.sources import RingSource
from plantguard.monitor.state import LEDGER, StateDir
from plantguard.store.db import IN_MEMORY
from support.ring import split, write_piece
from test_monitor_baseline import Lines

MODBUS = "pcaps/ICS-Security-Tools/ModbusTCP/modbus_test_data_part1.pcap"
MQTT = "pcaps/zeek/mqtt.pcap"


def test_check_turning_from_pass_to_fail_alerts_once(tmp_path):
    ring = tmp_path / "ring"
    ring.mkdir()
    for i, rel in enumerate((MODBUS, MQTT)):
        write_piece(ring, i, split(shared_path(rel), 1)[0])
    st = StateDir(tmp_path / "state")
    out = Lines()
    mon = Monitor(RingSource(ring, st.file(LEDGER), poll_s=0.05), Session(None, checkpoint_s=1.0, db=IN_MEMORY),
                  st, out=out)
    mon.run(idle_s=0.3)
    alerts = [d for d in out.lines if d["event"]["kind"] == "alert"]
    failed = [a for a in alerts if a["event"]["action"] == "check-failed"]
    assert [a["message"].split(" ")[0] for a in failed] == ["egress.internet"]
    meta = check_meta("egress.internet")
    assert failed[0]["threat"]["technique"]["id"] == list(meta.attack)
    assert failed[0]["plantguard"]["controls"] == {fw: list(ids) for fw, ids in meta.controls.items()}
    assert failed[0]["rule"]["name"] == meta.title
    assert failed[0]["event"]["severity"] >= 5
    external = [a for a in alerts if a["event"]["action"] == "new-external"]
    assert [a["destination"]["ip"] for a in external] == ["198.41.30.241"]
    assert external[0]["plantguard"]["evidence"][0]["capture"].endswith("ring_00002_20260101120000.pcap")
    checks = json.loads((tmp_path / "state" / "alerts.json").read_text())["checks"]
    assert checks["egress.internet"] == "fail" and checks["crypto.cleartext-telemetry"] == "fail"
    assert not any("crypto.cleartext-telemetry" in a["message"] for a in failed)   # it never passed
