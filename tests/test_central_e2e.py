"""The central server and its sensors end to end, as real processes on PostgreSQL: `plantguard
server run` on loopback (mutual TLS), sensors as `plantguard sensor ...` processes with their own
state directories, `plantguard monitor --central` for alerts. Two sites from the demo plant and a
shared capture; a link down for simulated hours; kill -9 of a sensor during upload and of the
server during apply; a sensor clock 3 h ahead. The database is read directly to prove every
envelope arrived once, in seq order."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, func, select

from conftest import shared_path
from support.central import PLANTGUARD, Server, cli, push, shifted_pcap
from support.monitor import MonitorProc
from support.ring import write_ring

MODBUS = "pcaps/zeek/modbus/modbusSmall.pcap"
RUNS = 150                  # demo assessments queued for the kill tests (4 envelopes each)


@pytest.fixture
def server(pg_url, tmp_path):
    srv = Server(pg_url, tmp_path / "server-state")
    srv.init()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def demo(tmp_path):
    from plantguard.demo import build_demo
    return build_demo(tmp_path / "demo")         # (demo-plant.pcap, site.yaml)


def assessed(tmp_path, capture, site=None) -> dict:
    """The contract of `plantguard assess --format json` on the capture (no intel database)."""
    args = ["assess", str(capture), "--format", "json", "-o", "-"] + (["--site", str(site)] if site else [])
    p = subprocess.run([*PLANTGUARD, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**_env(), "PLANTGUARD_DB": str(tmp_path / "assess-intel.db")})
    assert p.returncode in (0, 1), p.stderr           # 1: findings failed
    return json.loads(p.stdout)


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "PLANTGUARD_DB"}


def status(state) -> tuple[int, int]:
    """(waiting, last delivered seq) from `plantguard sensor status`."""
    out = cli("sensor", "status", "--state", str(state)).stdout
    m = re.search(r"outbox: ([\d,]+) waiting.*last delivered seq (\d+)", out)
    assert m, out
    return int(m[1].replace(",", "")), int(m[2])


def sensor_id(state) -> str:
    return json.loads((state / "sensor.json").read_text())["sensor_id"]


def envelope_rows(db: str, sid: str) -> list[tuple[int, int]]:
    """(id, seq) of the sensor's rows in central_envelopes, in id order."""
    from plantguard.server import tables as t
    engine = create_engine(db)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(select(t.Envelope.id, t.Envelope.seq)
                                                .where(t.Envelope.sensor_id == sid).order_by(t.Envelope.id))]
    finally:
        engine.dispose()


def envelope_count(sid: str, engine) -> int:
    from plantguard.server import tables as t
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(t.Envelope).where(t.Envelope.sensor_id == sid)).scalar()


def runs_of(db: str, sid: str) -> int:
    from plantguard.server import tables as t
    engine = create_engine(db)
    try:
        with engine.connect() as c:
            return c.execute(select(func.count()).select_from(t.Run).where(t.Run.sensor_id == sid)).scalar()
    finally:
        engine.dispose()


def assert_once_in_order(db: str, sid: str, n: int) -> None:
    """The sensor's rows, in id (apply) order, are seq 1..n: each once, applied in seq order."""
    rows = envelope_rows(db, sid)
    seqs = [s for _, s in rows]
    assert seqs == list(range(1, n + 1)), (len(seqs), n, [s for s in seqs if seqs.count(s) > 1][:5])


def monitor_alerts(alerts: list[dict]) -> list[dict]:
    """The alerts the monitor raised (not the ones central raised for pushed PLC changes)."""
    return [x for x in alerts if not x["event_id"].startswith("plc-")]


def flow_key(f: dict) -> tuple:
    return f["src"], f["dst"], f["proto"], f.get("port"), f.get("vlan"), f.get("first")


def get(client, path: str, **params):
    r = client.get(path, params=params)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def items(client, path: str, **params) -> list:
    out, cursor = [], None
    while True:
        page = get(client, path, limit=500, **params, **({"cursor": cursor} if cursor else {}))
        out += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


# -- done when ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_sites_read_by_a_viewer_acknowledged_by_an_analyst_and_audited(server, demo, tmp_path, monkeypatch):
    modbus = shared_path(MODBUS)
    pcap, site_file = demo
    a, b = tmp_path / "sensor-a", tmp_path / "sensor-b"
    server.enroll(a, "plant-a", "sensor-a")
    server.enroll(b, "plant-b", "sensor-b")
    push(a, str(pcap), "--site", str(site_file))
    push(b, str(modbus))
    expected = {"plant-a": assessed(tmp_path, pcap, site_file), "plant-b": assessed(tmp_path, modbus)}

    viewer = server.client(server.token("viewer"))
    sites = {s["name"]: s for s in get(viewer, "/api/v1/sites")}
    assert set(sites) == {"plant-a", "plant-b"}
    for name, contract in expected.items():
        keys = {x.get("ip") or x.get("mac") for x in contract["assets"]}
        assert len(contract["assets"]) > 0 and sites[name]["assets"] == len(keys), (name, sites[name], len(keys))
        assert sites[name]["sensors"] == 1
        got = items(viewer, "/api/v1/assets", site=name)
        assert {x["key"] for x in got} == keys
        findings = items(viewer, "/api/v1/findings", site=name)
        assert {(f["finding"]["check"], f["finding"]["status"]) for f in findings} == \
            {(f["check"], f["status"]) for f in contract["findings"]}
        # central keeps one summary per (src, dst, proto, port, vlan); the contract may hold several
        flows = items(viewer, "/api/v1/flows", site=name)
        assert sorted(flow_key(f["flow"]) for f in flows) == sorted(flow_key(f) for f in contract["flows"])
        assert sorted(f["flow"]["packets"] for f in flows) == sorted(f["packets"] for f in contract["flows"])
        runs = items(viewer, "/api/v1/runs", site=name)
        assert [r["packets"] for r in runs] == [contract["summary"]["packets"]]

    # alerts: the monitor as sensor A, on a ring holding the demo capture
    ring = tmp_path / "ring"
    ring.mkdir()
    monkeypatch.setenv("PLANTGUARD_SENSOR_DIR", str(a))
    mon = MonitorProc(["--watch", str(ring), "--site", str(site_file), "--state", str(tmp_path / "mon-state"),
                       "--checkpoint", "1h", "--status-every", "1s", "--central", server.url], tmp_path)
    try:
        mon.wait_started()
        write_ring(pcap, ring, 1)
        mon.wait_for(lambda: monitor_alerts(get(viewer, "/api/v1/alerts", site="plant-a", limit=500)["items"]), 30,
                     "alerts at central")
    finally:
        assert mon.stop() == 0
    every = items(viewer, "/api/v1/alerts")
    # the pushed assessments' unauthorised PLC changes are alerts of both sites (server/plc_changes.py)
    assert {x["site"] for x in every if x["event_id"].startswith("plc-")} == {"plant-a", "plant-b"}
    alerts = monitor_alerts(every)
    assert alerts and {x["site"] for x in alerts} == {"plant-a"} and all(x["state"] == "open" for x in alerts)
    # the monitor's checkpoint went too: a monitor run, its baseline
    kinds = [r["kind"] for r in items(viewer, "/api/v1/runs", site="plant-a")]
    assert kinds == ["assess", "monitor"], kinds
    assert items(viewer, "/api/v1/baselines", site="plant-a")
    first = alerts[0]
    r = viewer.post(f"/api/v1/alerts/{first['id']}/acknowledge")
    assert r.status_code == 403, r.text
    analyst_token = server.token("analyst")
    r = server.client(analyst_token).post(f"/api/v1/alerts/{first['id']}/acknowledge")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "acknowledged"
    assert get(viewer, "/api/v1/alerts", state="acknowledged")["items"][0]["id"] == first["id"]

    assert "chain intact" in cli("server", "audit", "verify", "--db", server.db).stderr
    audit = items(server.client(server.token("admin")), "/api/v1/audit")
    (ack,) = [x for x in audit if x["action"] == "alert.acknowledged"]
    assert ack["actor"] == "token:" + analyst_token.split("_")[1]
    assert ack["object"].startswith(f"alert {first['id']} ")
    assert ack["before"]["state"] == "open" and ack["after"]["state"] == "acknowledged"


# -- outage ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_hours_of_outage_then_every_envelope_once_in_order(server, demo, tmp_path):
    pcap, site_file = demo
    state = tmp_path / "sensor"
    server.enroll(state, "plant", "sensor")
    server.stop()
    depths = []
    for hour in range(6):
        capture = shifted_pcap(pcap, tmp_path / f"hour{hour}.pcap", hour * 3600)
        p = push(state, str(capture), "--site", str(site_file), timeout=0.5, check=False)
        assert p.returncode == 3, (p.returncode, p.stderr)
        depths.append(status(state)[0])
    assert all(x < y for x, y in zip(depths, depths[1:])) and status(state)[1] == 0, depths
    n = depths[-1]
    server.start()
    push(state)
    assert status(state) == (0, n)
    assert_once_in_order(server.db, sensor_id(state), n)
    # each hour's run arrived with its own capture time
    runs = items(server.client(server.token("viewer")), "/api/v1/runs")
    times = [datetime.fromisoformat(r["captured_at"]) for r in runs]
    assert [(x - times[0]).total_seconds() for x in times] == [hour * 3600 for hour in range(6)]


# -- kill -9 --------------------------------------------------------------------------------------
def queue_many(state, contract: dict, runs: int) -> int:
    """Queue `runs` times the demo assessment's envelopes (whole inventory each time) in the
    sensor's outbox, as `sensor push` queues them; the outbox's last seq."""
    from plantguard.sensor import push as pushing
    from plantguard.sensor.outbox import EnvelopeOutbox
    me = json.loads((state / "sensor.json").read_text())
    outbox = EnvelopeOutbox(state / "outbox.db", me["sensor_id"])
    try:
        for _ in range(runs):
            pushing.queue(outbox, me["site"], pushing.envelopes_for_assessment(contract, me["site"]))
        return outbox.depth
    finally:
        outbox.close()


def start_push(state, timeout: float) -> subprocess.Popen:
    return subprocess.Popen([*PLANTGUARD, "sensor", "push", "--state", str(state), "--timeout", str(timeout), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())


def wait_partly_applied(db: str, sid: str, n: int, proc: subprocess.Popen, timeout: float = 60) -> int:
    """Poll central_envelopes until some but not all of the sensor's n envelopes are there."""
    engine = create_engine(db)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = envelope_count(sid, engine)
            if 0 < got < n:
                return got
            assert got < n, "all applied before the kill: queue more"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.005)
        raise AssertionError(f"no envelope applied within {timeout} s")
    finally:
        engine.dispose()


@pytest.fixture
def demo_contract(demo, tmp_path):
    from support.demo import demo_contract
    return demo_contract(tmp_path / "contract")


@pytest.mark.slow
def test_sensor_killed_during_upload_loses_and_repeats_nothing(server, demo_contract, tmp_path):
    state = tmp_path / "sensor"
    server.enroll(state, "plant", "sensor")
    sid = sensor_id(state)
    n = queue_many(state, demo_contract, RUNS)
    t0 = time.monotonic()
    proc = start_push(state, 120)
    applied = wait_partly_applied(server.db, sid, n, proc)
    proc.kill()
    proc.wait(10)
    waiting, acked = status(state)
    print(f"sensor killed {time.monotonic() - t0:.1f} s into the drain: {applied}/{n} applied, {acked} acked")
    assert waiting > 0 and acked <= applied
    print(push(state).stderr.strip())
    assert status(state) == (0, n)
    assert_once_in_order(server.db, sid, n)
    assert runs_of(server.db, sid) == RUNS          # what the envelopes carry, applied once too


@pytest.mark.slow
def test_server_killed_during_apply_loses_and_repeats_nothing(server, demo_contract, tmp_path):
    state = tmp_path / "sensor"
    server.enroll(state, "plant", "sensor")
    sid = sensor_id(state)
    n = queue_many(state, demo_contract, RUNS)
    proc = start_push(state, 120)
    wait_partly_applied(server.db, sid, n, proc)
    server.stop(signal.SIGKILL)
    engine = create_engine(server.db)
    left = envelope_count(sid, engine)
    engine.dispose()
    print(f"server killed with {left}/{n} envelopes applied")
    assert left < n
    server.start()
    # the running push backs off, then delivers to the restarted server (or runs out of time: 3)
    assert proc.wait(150) in (0, 3), proc.communicate()
    print(push(state).stderr.strip())
    assert status(state) == (0, n)
    assert_once_in_order(server.db, sid, n)
    assert runs_of(server.db, sid) == RUNS          # what the envelopes carry, applied once too


# -- clock skew -----------------------------------------------------------------------------------
SKEW = timedelta(hours=3)


def test_clock_skew_flagged_and_capture_time_kept(server, demo_contract, tmp_path, monkeypatch):
    from plantguard.central.envelope import SCHEMA_VERSION, Envelope
    from plantguard.sensor import client as sensor_client
    state = tmp_path / "sensor"
    server.enroll(state, "plant", "sensor")
    me = json.loads((state / "sensor.json").read_text())

    class SensorClock(datetime):          # the sensor's clock runs 3 h ahead: it stamps sent_at
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + SKEW
    monkeypatch.setattr(sensor_client, "datetime", SensorClock)
    captured = datetime(2024, 4, 14, 2, 35, tzinfo=timezone.utc)
    asset = demo_contract["assets"][0]
    env = Envelope(sensor_id=me["sensor_id"], seq=1, schema_version=SCHEMA_VERSION, kind="inventory", site=me["site"],
                   captured_at=captured, sent_at=None, body={"assets": [asset], "gone": []})
    before = datetime.now(timezone.utc)
    with sensor_client.CentralClient(me["server"], state / "ca.pem", state / "cert.pem", state / "key.pem") as c:
        got = c.push([env])
    after = datetime.now(timezone.utc)
    assert got.applied == [1] and got.next_seq == 2

    viewer = server.client(server.token("viewer"))
    (sensor,) = get(viewer, "/api/v1/sensors")
    assert sensor["clock_skew_s"] == pytest.approx(SKEW.total_seconds(), abs=30)
    (row,) = items(viewer, "/api/v1/assets")
    assert row["key"] == (asset.get("ip") or asset.get("mac"))
    assert datetime.fromisoformat(row["first_seen_at"]) == datetime.fromisoformat(row["last_seen_at"]) == captured
    assert before - timedelta(seconds=1) <= datetime.fromisoformat(row["received_at"]) <= after + timedelta(seconds=1)
    (change,) = get(viewer, f"/api/v1/assets/{row['id']}/history")
    assert change["seq"] == 1 and datetime.fromisoformat(change["captured_at"]) == captured
