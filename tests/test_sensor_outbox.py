"""The sensor's envelope outbox: seq strictly increasing and never reused (across restarts,
acks and a kill -9 in the middle of a put loop), the bound refuses and counts (persisted)
without using a seq, and the inventory delta of the demo plant: the same contract twice queues
no inventory change the second time, a changed asset queues only it."""
from __future__ import annotations

import copy
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from support import demo as support_demo

from plantguard.errors import InputError
from plantguard.sensor.outbox import EnvelopeOutbox
from plantguard.sensor.push import envelopes_for_assessment, queue

T = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


def seqs(outbox) -> list[int]:
    return [e.seq for e in outbox.head(10_000, 1 << 30)]


def test_order_and_seq_across_restarts_and_acks(tmp_path):
    path = tmp_path / "outbox.db"
    ob = EnvelopeOutbox(path, "s-1")
    assert [ob.put("health", "a", T, {"n": i}) for i in range(5)] == [1, 2, 3, 4, 5]
    ob.close()
    ob = EnvelopeOutbox(path, "s-1")
    assert [ob.put("alerts", "a", T, {"n": i}) for i in range(5, 8)] == [6, 7, 8]
    head = ob.head(100, 1 << 20)
    assert [(e.seq, e.body["n"], e.sensor_id) for e in head] == [(i + 1, i, "s-1") for i in range(8)]
    assert head[0].captured_at == T and head[0].kind == "health" and head[-1].kind == "alerts"
    assert ob.ack(4) == 4 and ob.last_acked == 4
    ob.close()
    ob = EnvelopeOutbox(path, "s-1")
    assert seqs(ob) == [5, 6, 7, 8] and ob.depth == 4 and ob.last_acked == 4
    ob.ack(8)
    assert ob.depth == 0 and ob.stored_bytes == 0
    ob.close()
    ob = EnvelopeOutbox(path, "s-1")
    assert ob.put("health", "a", T, {}) == 9            # every row deleted: still no seq reused
    ob.ack(20)                                          # central holds up to 20: new seqs come after it
    assert ob.put("health", "a", T, {}) == 21
    ob.close()


def test_head_is_bounded_by_count_and_bytes_but_always_gives_one(tmp_path):
    ob = EnvelopeOutbox(tmp_path / "o.db", "s-1")
    for i in range(10):
        ob.put("flows", "a", T, {"pad": "x" * 1000, "i": i})
    assert len(ob.head(3, 1 << 20)) == 3
    assert len(ob.head(100, 3500)) == 3                 # ~1 KB of JSON each
    assert len(ob.head(100, 10)) == 1


def test_full_outbox_refuses_counts_persistently_and_uses_no_seq(tmp_path):
    path = tmp_path / "o.db"
    ob = EnvelopeOutbox(path, "s-1", max_bytes=600)
    body = {"text": os.urandom(100).hex()}              # incompressible: ~200 bytes stored each
    got = [ob.put("health", "a", T, body) for _ in range(6)]
    kept = [s for s in got if s is not None]
    assert kept == list(range(1, len(kept) + 1)) and 1 <= len(kept) < 6
    assert got[len(kept):] == [None] * (6 - len(kept))
    assert ob.dropped == 6 - len(kept) and ob.stored_bytes <= 600
    ob.close()
    ob = EnvelopeOutbox(path, "s-1", max_bytes=600)
    assert ob.dropped == 6 - len(kept)
    ob.ack(kept[-1])
    assert ob.put("health", "a", T, body) == kept[-1] + 1   # refusals used no seq
    ob.close()


def test_an_outbox_belongs_to_one_sensor(tmp_path):
    EnvelopeOutbox(tmp_path / "o.db", "s-1").close()
    with pytest.raises(InputError, match="holds envelopes of sensor s-1"):
        EnvelopeOutbox(tmp_path / "o.db", "s-2")


def test_bodies_must_be_json_safe(tmp_path):
    ob = EnvelopeOutbox(tmp_path / "o.db", "s-1")
    with pytest.raises(ValueError):
        ob.put("health", "a", T, {"x": float("nan")})
    with pytest.raises(TypeError):
        ob.put("health", "a", T, {"x": {1, 2}})
    assert ob.depth == 0 and ob.put("health", "a", T, {}) == 1


CHILD = """
import sys
from datetime import datetime, timezone
from plantguard.sensor.outbox import EnvelopeOutbox
ob = EnvelopeOutbox(sys.argv[1], "s-1")
t = datetime.now(timezone.utc)
while True:
    seq = ob.put("health", "a", t, {"pad": "y" * 300})
    print(seq, flush=True)
    if seq % 40 == 0:
        ob.ack(seq - 20)
        print("acked", seq - 20, flush=True)
"""


@pytest.mark.parametrize("lines", [150, 900, 2000])
def test_kill_9_in_a_put_loop_leaves_a_consistent_outbox_and_no_seq_reused(tmp_path, lines):
    path = tmp_path / "o.db"
    printed, acked = [], 0
    for _round in range(2):                 # killed twice: the second child resumes after the first
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
        seen = 0
        for line in child.stdout:
            if line.startswith("acked"):
                acked = max(acked, int(line.split()[1]))
            else:
                printed.append(int(line))
            seen += 1
            if seen >= lines:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert printed == sorted(set(printed)), "a seq was given twice"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ob = EnvelopeOutbox(path, "s-1")
    stored = seqs(ob)
    assert ob.last_acked >= acked and stored and stored[0] == ob.last_acked + 1
    assert stored == list(range(stored[0], stored[-1] + 1))            # contiguous, nothing lost
    assert set(p for p in printed if p > ob.last_acked) <= set(stored)  # every committed put is there
    assert stored[-1] >= printed[-1]                                    # at most one more, uncommitted-to-us
    assert ob.stored_bytes == sum(len(r[0]) for r in ob._db.execute("SELECT body FROM envelopes"))
    assert ob.put("health", "a", T, {}) > max(stored[-1], printed[-1])
    ob.close()


# -- inventory delta on the demo plant --------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_contract(tmp_path_factory):
    return support_demo.demo_contract(tmp_path_factory.mktemp("demo"))


def inventory(envs) -> tuple[list[dict], list[str]]:
    bodies = [b for k, _, b in envs if k == "inventory"]
    return [a for b in bodies for a in b["assets"]], [g for b in bodies for g in b["gone"]]


def test_inventory_delta_same_contract_twice_then_one_changed_asset(tmp_path, demo_contract):
    ob = EnvelopeOutbox(tmp_path / "o.db", "s-1")
    first = envelopes_for_assessment(demo_contract, "plant a", ob)
    assets, gone = inventory(first)
    assert len(assets) == len(demo_contract["assets"]) == 23 and gone == []
    assert queue(ob, "plant a", first) == (len(first), 0)

    again = envelopes_for_assessment(demo_contract, "plant a", ob)
    assert inventory(again) == ([], [])
    assert {k for k, _, _ in again} == {"run", "findings", "flows"}
    assert envelopes_for_assessment(demo_contract, "plant b", ob) and \
        len(inventory(envelopes_for_assessment(demo_contract, "plant b", ob))[0]) == 23   # per site

    changed = copy.deepcopy(demo_contract)
    victim = changed["assets"][5]
    victim["role"] = "engineering-workstation" if victim["role"] != "engineering-workstation" else "hmi"
    removed = changed["assets"].pop(7)
    delta = envelopes_for_assessment(changed, "plant a", ob)
    assert inventory(delta) == ([victim], [removed["ip"] or removed["mac"]])
    queue(ob, "plant a", delta)
    assert inventory(envelopes_for_assessment(changed, "plant a", ob)) == ([], [])


def test_a_refused_inventory_is_offered_again(tmp_path, demo_contract):
    ob = EnvelopeOutbox(tmp_path / "o.db", "s-1", max_bytes=64)
    envs = envelopes_for_assessment(demo_contract, "plant a", ob)
    assert queue(ob, "plant a", envs) == (0, len(envs)) and ob.dropped == len(envs)
    assert len(inventory(envelopes_for_assessment(demo_contract, "plant a", ob))[0]) == 23


def test_envelope_fields_are_checked_when_put(tmp_path):
    from pydantic import ValidationError
    ob = EnvelopeOutbox(tmp_path / "o.db", "s-1")
    for bad in [("exfiltrate", "a", T), ("health", "x" * 201, T), ("health", "a", "yesterday"), ("health", "a", T.replace(tzinfo=None))]:
        with pytest.raises(ValidationError):
            ob.put(*bad, {})
    assert ob.depth == 0 and ob.put("health", "a", T, {}) == 1


def test_health_reports_the_outbox(tmp_path):
    from plantguard import __version__
    from plantguard.sensor.push import health
    ob = EnvelopeOutbox(tmp_path / "o.db", "s-1", max_bytes=100)
    ob.put("alerts", "a", T, {"x": 1})
    ob.put("alerts", "a", T, {"x": os.urandom(200).hex()})
    kind, _, body = health(ob)
    assert kind == "health" and body == {"outbox_depth": 1, "outbox_bytes": ob.stored_bytes, "dropped": 1,
                                         "last_acked": 0, "version": __version__}


def test_sensor_state(tmp_path, monkeypatch):
    from plantguard.sensor.state import Enrolment, SensorState
    monkeypatch.setenv("PLANTGUARD_SENSOR_DIR", str(tmp_path / "sensor"))
    state = SensorState()
    assert state.dir == tmp_path / "sensor" and state.outbox == tmp_path / "sensor" / "outbox.db"
    with pytest.raises(InputError, match="^not enrolled: run plantguard sensor enroll$"):
        state.load()
    e = Enrolment("https://central:8443", "s-1", "line 1", "plant a")
    state.save(e, b"KEY", "CERT", "CA")
    assert SensorState().load() == e
    assert (state.key.stat().st_mode & 0o777) == 0o600 and state.cert.read_text() == "CERT"
    state.save_certificate("CERT2")
    assert state.cert.read_text() == "CERT2" and state.key.read_bytes() == b"KEY"
    state.config.write_text('{"server": 1}')
    with pytest.raises(InputError, match="needs text server, sensor_id, name, site"):
        state.load()
    state.config.write_text('{"server": ')
    with pytest.raises(InputError, match="sensor state .*sensor.json") as err:
        state.load()
    assert "\n" not in str(err.value)
