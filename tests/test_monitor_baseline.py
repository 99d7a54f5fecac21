"""The baseline on real captures followed as a ring, in process: --learn keeps what is first seen
while learning silent and alerts what comes after, once per key; an exported baseline loaded
with --baseline knows everything already; `baseline accept` promotes the new keys; an
authorised station's program change outside the site's maintenance windows alerts once."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from conftest import shared_path
from plantguard.cli import app
from plantguard.monitor.run import Monitor
from plantguard.monitor.session import Session
from plantguard.monitor.sources import RingSource
from plantguard.monitor.state import LEDGER, StateDir
from plantguard.site import load_site
from plantguard.store.db import IN_MEMORY
from support.ring import write_ring

WINCC = "pcaps/ICS-Security-Tools/s7/wincc_s400_production.pcapng"        # 2 h 15 min of S7 polling
DOWNLOAD = "pcaps/ICS-Security-Tools/s7/s7comm_downloading_block_db1.pcap"
BASELINE_ACTIONS = {"new-asset", "new-conduit", "new-protocol", "new-external", "new-controller-op"}
PLC_ACTIONS = {"plc-write", "program-change", "change-outside-window"}


class Lines:
    def __init__(self):
        self.lines: list[dict] = []

    def write(self, s: str) -> None:
        self.lines += [json.loads(x) for x in s.splitlines() if x]

    def flush(self) -> None:
        pass


def watch(tmp_path, rel, *, learn_s=None, baseline=None, site=None, state="state", every=600.0) -> tuple[list[dict], Monitor]:
    ring = tmp_path / "ring"
    if not ring.exists():
        write_ring(shared_path(rel), ring, 4)
    st = StateDir(tmp_path / state)
    out = Lines()
    mon = Monitor(RingSource(ring, st.file(LEDGER), poll_s=0.05), Session(site, checkpoint_s=every, db=IN_MEMORY),
                  st, learn_s=learn_s, baseline=baseline, out=out)
    mon.run(idle_s=0.3)
    return [d for d in out.lines if d["event"]["kind"] == "alert"], mon


def test_learning_is_silent_then_new_keys_alert_once(tmp_path):
    alerts, mon = watch(tmp_path, WINCC, learn_s=3600.0)
    b = mon.baseline
    until = b.learn_until
    assert until is not None
    base = [a for a in alerts if a["event"]["action"] in BASELINE_ACTIONS]
    new = {(k, key) for k, entries in b.sets.items() for key, e in entries.items() if e["state"] == "new"}
    learnt = [e for entries in b.sets.values() for e in entries.values() if e["state"] == "learnt"]
    assert learnt and all(e["first"] < until for e in learnt)
    assert all(e["first"] >= until for k, key in new for e in [b.sets[k][key]])
    assert len(base) == len(new) and len({a["event"]["id"] for a in base}) == len(base)
    # without learning, every key is new and alerts once (a controller operation from a host
    # that is not a station as the PLC-change alert)
    (tmp_path / "b").mkdir()
    alerts2, mon2 = watch(tmp_path / "b", WINCC)
    assert len([a for a in alerts2 if a["event"]["action"] in BASELINE_ACTIONS | PLC_ACTIONS]) == \
        sum(len(e) for e in mon2.baseline.sets.values()) > len(base)


def test_exported_baseline_knows_everything_and_accept_promotes(tmp_path):
    alerts, mon = watch(tmp_path, DOWNLOAD)
    assert [a for a in alerts if a["event"]["action"] == "new-asset"]
    runner = CliRunner()
    state = str(tmp_path / "state")
    r = runner.invoke(app, ["baseline", "export", "--state", state, "-o", str(tmp_path / "baseline.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "baseline.json").read_text())
    alerts2, _ = watch(tmp_path, DOWNLOAD, baseline=doc, state="state2")
    assert not [a for a in alerts2 if a["event"]["action"] in BASELINE_ACTIONS]
    assert [a["event"]["action"] for a in alerts2] == ["program-change"]   # not a baseline matter
    r = runner.invoke(app, ["baseline", "accept", "--state", state])
    assert r.exit_code == 0 and "keys accepted" in r.output, r.output
    r = runner.invoke(app, ["baseline", "show", "--state", state, "--new"])
    assert r.exit_code == 0 and "\tnew\t" not in r.output and "accepted" in r.output


def test_authorised_station_outside_window_alerts_once(tmp_path):
    site_file = tmp_path / "site.yaml"
    site_file.write_text("site: test plant\nengineering_workstations: [192.168.1.10]\nmaintenance_windows:\n"
                         "  - {name: sunday-night, days: [sun], start: \"02:00\", hours: 4}\n")
    alerts, _ = watch(tmp_path, DOWNLOAD, site=load_site(site_file))
    actions = [a["event"]["action"] for a in alerts]
    assert actions.count("change-outside-window") == 1 and "program-change" not in actions
    a = next(a for a in alerts if a["event"]["action"] == "change-outside-window")
    assert a["source"]["ip"] == "192.168.1.10" and a["rule"]["id"] == "alert.change-outside-window"


def test_export_replays_the_checkpoint_findings_into_a_sink(tmp_path):
    watch(tmp_path, DOWNLOAD)
    contract = json.loads((tmp_path / "state" / "assessment.json").read_text())
    fails = [f for f in contract["findings"] if f["status"] == "fail"]
    out = tmp_path / "export.jsonl"
    r = CliRunner().invoke(app, ["export", "--state", str(tmp_path / "state"), "--sink", f"file://{out}?format=ecs"])
    assert r.exit_code == 0, r.output
    docs = [json.loads(x) for x in out.read_text().splitlines()]
    findings = [d["rule"]["id"] for d in docs if d["event"]["kind"] == "state"]      # ECS: a finding is state
    assert findings == [f["check"] for f in fails] and findings
    assert len([d for d in docs if d["event"]["kind"] == "asset"]) == len(contract["assets"])
    r = CliRunner().invoke(app, ["export", "--state", str(tmp_path / "nothing"), "--sink", f"file://{out}"])
    assert r.exit_code == 2 and "nothing: no monitor state here (does not exist" in r.output   # one line
    assert not (tmp_path / "nothing").exists()           # and no state directory made for a mistyped path
