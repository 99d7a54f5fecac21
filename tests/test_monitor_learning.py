"""Learning ends early when new keys become rare (issue 11, item 3): the Baseline ends learning
once no key joined for its quiet stretch, judged at checkpoints; on a real capture followed as a
ring (2 h 15 min of S7 polling, its last new key after 22 min) learning stops long before
--learn, with every key learnt and none alerting. test_monitor_week.py shows keys first seen
after an early end alerting."""
from __future__ import annotations

import json

from conftest import shared_path
from plantguard.monitor.baseline import LEARNT, NEW, Baseline
from plantguard.monitor.run import Monitor
from plantguard.monitor.session import Session
from plantguard.monitor.sources import RingSource
from plantguard.monitor.state import LEDGER, StateDir
from plantguard.store.db import IN_MEMORY
from support.ring import write_ring

WINCC = "pcaps/ICS-Security-Tools/s7/wincc_s400_production.pcapng"


def test_learning_ends_after_a_quiet_stretch_and_survives_a_restart():
    b = Baseline()
    b.start_learning(0.0, 1000.0, quiet_s=250.0)
    for t in (0.0, 100.0, 200.0):
        assert b.observe("asset", f"10.0.0.{int(t)}", t) == (False, None)
    assert not b.advance(200.0 + 249.0) and b.learning(449.0)
    assert b.advance(460.0) and b.learn_until == 460.0 and b.ended_early
    assert not b.advance(900.0) and b.learn_until == 460.0          # ends once
    # a key first seen before the end but observed later (at a checkpoint) is still learnt
    assert b.observe("conduit", "a>b:502/tcp", 455.0) == (False, None)
    assert b.observe("conduit", "c>b:502/tcp", 470.0) == (True, None)
    assert b.sets["conduit"]["a>b:502/tcp"]["state"] == LEARNT and b.sets["conduit"]["c>b:502/tcp"]["state"] == NEW
    again = Baseline(json.loads(json.dumps(b.as_dict())))
    assert (again.learn_until, again.quiet_s, again.ended_early) == (460.0, 250.0, True)
    # without a quiet stretch learning runs its whole length
    b2 = Baseline()
    b2.start_learning(0.0, 1000.0)
    assert not b2.advance(999.0) and b2.learning(999.0) and not b2.learning(1000.0)


class Lines:
    def __init__(self):
        self.alerts: list[dict] = []

    def write(self, s: str) -> None:
        self.alerts += [d for d in map(json.loads, filter(None, s.splitlines())) if d["event"]["kind"] == "alert"]

    def flush(self) -> None:
        pass


def test_learning_ends_early_on_a_real_polling_capture(tmp_path):
    ring = tmp_path / "ring"
    write_ring(shared_path(WINCC), ring, 4)
    st = StateDir(tmp_path / "state")
    out, said = Lines(), []
    mon = Monitor(RingSource(ring, st.file(LEDGER), poll_s=0.05), Session(None, checkpoint_s=300.0, db=IN_MEMORY),
                  st, learn_s=7200.0, learn_quiet_s=900.0, out=out, status=said.append)
    mon.run(idle_s=0.3)
    b = mon.baseline
    assert b.ended_early and b.learn_from + 900.0 <= b.learn_until < b.learn_from + 7200.0
    assert any("learning ended early" in x for x in said)
    learnt = [e for entries in b.sets.values() for e in entries.values() if e["state"] == LEARNT]
    new = [key for entries in b.sets.values() for key, e in entries.items() if e["state"] == NEW]
    assert learnt and all(e["first"] < b.learn_until for e in learnt)
    assert not new and not [a for a in out.alerts if a["event"]["action"] in
                            {"new-asset", "new-conduit", "new-protocol", "new-external", "new-controller-op"}]
    # the saved baseline says where learning ended, for the next start
    saved = json.loads((tmp_path / "state" / "baseline.json").read_text())
    assert saved["ended_early"] and saved["learn_until"] == b.learn_until
