"""The central server and its sensors end to end, as real processes on PostgreSQL: `plantguard
server run` on loopback (mutual TLS), sensors as `plantguard sensor ...` processes with their own
state directories, `plantguard monitor --central` for alerts. Two sites from the demo plant and a
shared capture; a link down for simulated hours; kill -9 of a sensor during upload and of the
server during apply; a sensor clock 3 h ahead. The database is read directly to prove every
envelope arrived once, in seq order."""
from __future__ import annotations

import json
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
    import os
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


def envelope_count(db: str, sid: str, engine=None) -> int:
    from plantguard.server import tables as t
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(t.Envelope).where(t.Envelope.sensor_id == sid)).scalar()


def assert_once_in_order(db: str, sid: str, n: int) -> None:
    rows = envelope_rows(db, sid)
    seqs = [s for _, s in rows]
    assert seqs == list(range(1, n + 1)), (len(seqs), n, [s for s in seqs if seqs.count(s) > 1][:5])


def flow_key(f: dict) -> tuple:
    return f["src"], f["dst"], f["proto"], f.get("port"), f.get("vlan")


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
        assert sorted(flow_key(f["flow"]) for f in flows) == sorted({flow_key(f) for f in contract["flows"]})
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
        mon.wait_for(lambda: get(viewer, "/api/v1/alerts", site="plant-a")["items"], 30, "alerts at central")
    finally:
        assert mon.stop() == 0
    alerts = items(viewer, "/api/v1/alerts")
    assert alerts and {x["site"] for x in alerts} == {"plant-a"} and all(x["state"] == "open" for x in alerts)
    first = alerts[0]
    r = viewer.post(f"/api/v1/alerts/{first['id']}/acknowledge")
    assert r.status_code == 403, r.text
    analyst_token = server.token("analyst")
    r = server.client(analyst_token).post(f"/api/v1/alerts/{first['id']}/acknowledge")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "acknowledged"
    assert get(viewer, f"/api/v1/alerts", state="acknowledged")["items"][0]["id"] == first["id"]

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
    rows = envelope_rows(server.db, sensor_id(state))
    assert [s for _, s in sorted(rows)] == sorted(s for _, s in rows)       # ids increase with seq
