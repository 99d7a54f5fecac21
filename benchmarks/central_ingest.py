"""The central server under load, on a throwaway PostgreSQL cluster (tests/support/postgres.py):

1. sustained ingest: N sensors (real enrolled sensors, each a process with its own client
   certificate) push alert envelopes at once over mutual TLS to `plantguard server run`;
   envelopes/s and events/s from the first request to the last answer;
2. inventory ingest: 10 k assets pushed as inventory envelopes;
3. API latency: 1 M alerts loaded in bulk (SQL), then the asset list and the alert list with
   their filters, one request at a time: p50 / p95 / p99.

    .venv/bin/python benchmarks/central_ingest.py [--sensors 10] [--envelopes 40] [--per-envelope 100]
        [--assets 10000] [--alerts 1000000] [--requests 200] [--out benchmarks/central_results.md]

Targets (issue 12): >= 5,000 events/s ingested; p95 < 200 ms for the asset list at 10 k assets and
1 M alerts."""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))          # the PostgreSQL cluster helper the tests use

from support import postgres  # noqa: E402
from support.central import free_port  # noqa: E402

from plantguard.central.envelope import SCHEMA_VERSION, Envelope  # noqa: E402
from plantguard.sensor.client import CentralClient  # noqa: E402
from plantguard.server import pki  # noqa: E402

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def envelope(sensor_id: str, site: str, seq: int, kind: str, body: dict) -> Envelope:
    return Envelope(sensor_id=sensor_id, seq=seq, schema_version=SCHEMA_VERSION, kind=kind, site=site,
                    captured_at=T0 + timedelta(seconds=seq), body=body)


def alert_body(sensor: int, seq: int, n: int) -> dict:
    return {"alerts": [{"kind": "alert", "key": f"s{sensor}-e{seq}-{i}", "seq": 0, "id": f"{sensor:02d}{seq:06d}{i:05d}",
                        "time": (T0 + timedelta(seconds=seq)).timestamp(), "severity": ("low", "medium", "high")[i % 3],
                        "message": f"Modbus write to 10.10.{sensor}.{i % 250} from 10.20.0.{i % 200}",
                        "rule": {"id": "plc.unauthorised-write", "title": "write from a station not allowed"}}
                       for i in range(n)]}


def push_alerts(args) -> tuple[float, float, int]:
    """One sensor process: (start, end, envelopes applied)."""
    url, ca, cert, key, sensor_id, site, index, envelopes, per, batch, start_at = args
    envs = [envelope(sensor_id, site, s, "alerts", alert_body(index, s, per)) for s in range(1, envelopes + 1)]
    applied = 0
    with CentralClient(url, ca, cert, key, timeout=120) as client:
        while time.time() < start_at:
            time.sleep(0.005)
        t0 = time.perf_counter()
        for i in range(0, len(envs), batch):
            applied += len(client.push(envs[i:i + batch]).applied)
        t1 = time.perf_counter()
    return t0, t1, applied


def enrol(url: str, ca: Path, db: str, site: str, name: str, folder: Path) -> tuple[str, Path, Path]:
    from plantguard.server.api.admin import create_token
    from plantguard.store.db import open_engine, session_factory
    engine = open_engine(db)
    with session_factory(engine)() as s:
        text, _ = create_token(s, "benchmark", "sensor", [site], timedelta(days=1))
        s.commit()
    engine.dispose()
    csr, key = pki.new_csr(name)
    with CentralClient(url, ca) as c:
        answer = c.enrol(text, name, csr.decode())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "key.pem").write_bytes(key)
    (folder / "cert.pem").write_text(answer["certificate"])
    return answer["sensor_id"], folder / "cert.pem", folder / "key.pem"


def bulk_alerts(db: str, n: int) -> float:
    """n alerts inserted with one INSERT … SELECT generate_series, as a long-running site would
    hold them; seconds taken."""
    from sqlalchemy import create_engine, text
    engine = create_engine(db)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        site, sensor = conn.execute(text("SELECT site_id, id FROM central_sensors ORDER BY id LIMIT 1")).one()
        conn.execute(text("""
            INSERT INTO central_alerts (site_id, sensor_id, seq, event_id, at, received_at, severity, rule_id,
                                        message, data, state)
            SELECT :site, :sensor, 0, 'bulk-' || g, :t0 + g * interval '1 second', now(),
                   (ARRAY['low','medium','high','critical'])[1 + g % 4], 'plc.unauthorised-write',
                   'Modbus write ' || g, json_build_object('kind', 'alert', 'message', 'Modbus write ' || g), 'open'
            FROM generate_series(1, :n) AS g"""), {"site": site, "sensor": sensor, "t0": T0, "n": n})
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - t0


def latencies(client, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"GET {path}: {r.status_code} {r.text[:200]}")
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sensors", type=int, default=10)
    ap.add_argument("--envelopes", type=int, default=40, help="alert envelopes per sensor")
    ap.add_argument("--per-envelope", type=int, default=100, help="alerts per envelope")
    ap.add_argument("--batch", type=int, default=5, help="envelopes per request")
    ap.add_argument("--assets", type=int, default=10_000)
    ap.add_argument("--alerts", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200, help="requests per latency figure")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "central_results.md")
    a = ap.parse_args()
    import httpx

    from plantguard.server.run import init
    tmp = Path(tempfile.mkdtemp(prefix="pg-central-bench-"))
    with postgres.cluster() as cluster, cluster.database() as db:
        pg_version = cluster.run("postgres", "--version").stdout.strip()
        state = tmp / "server"
        init(db, state, ["127.0.0.1"])
        port = free_port()
        url = f"https://127.0.0.1:{port}"
        log = open(tmp / "server.log", "wb")
        server = subprocess.Popen([sys.executable, "-m", "plantguard", "server", "run", "--db", db, "--state",
                                   str(state), "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        try:
            ca = state / "ca.pem"
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/api/v1/health", verify=str(ca)).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            sensors = [enrol(url, ca, db, f"Plant {i % 5}", f"sensor-{i}", tmp / f"s{i}") for i in range(a.sensors)]
            sites = {sid: f"Plant {i % 5}" for i, (sid, _, _) in enumerate(sensors)}

            # 1. sustained ingest, every sensor at once
            start_at = time.time() + 2.0
            jobs = [(url, ca, cert, key, sid, sites[sid], i, a.envelopes, a.per_envelope, a.batch, start_at)
                    for i, (sid, cert, key) in enumerate(sensors)]
            with mp.get_context("fork").Pool(a.sensors) as pool:
                spans = pool.map(push_alerts, jobs)
            wall = max(e for _, e, _ in spans) - min(s for s, _, _ in spans)
            envs = sum(n for _, _, n in spans)
            events = envs * a.per_envelope

            # 2. inventory: assets as inventory envelopes from the first sensor
            sid, cert, key = sensors[0]
            chunk = 500
            inv = [envelope(sid, sites[sid], a.envelopes + 1 + k, "inventory",
                            {"assets": [{"ip": f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
                                         "vendor": ("Siemens", "Rockwell Automation", "Schneider Electric")[n % 3],
                                         "role": ("plc", "hmi", "io-device", "engineering-workstation")[n % 4],
                                         "zone": ("control", "sensing", "office")[n % 3],
                                         "protocols": [("s7comm", "enip", "modbus")[n % 3]]}
                                        for n in range(k * chunk, min(a.assets, (k + 1) * chunk))], "gone": []})
                   for k in range((a.assets + chunk - 1) // chunk)]
            t0 = time.perf_counter()
            with CentralClient(url, ca, cert, key, timeout=300) as c:
                for i in range(0, len(inv), 2):
                    c.push(inv[i:i + 2])
            inv_s = time.perf_counter() - t0

            # 3. latency at scale
            bulk_s = bulk_alerts(db, a.alerts)
            from plantguard.server.api.admin import create_token
            from plantguard.store.db import open_engine, session_factory
            engine = open_engine(db)
            with session_factory(engine)() as s:
                viewer, _ = create_token(s, "benchmark", "viewer", [], timedelta(days=1))
                s.commit()
            engine.dispose()
            client = httpx.Client(base_url=url, verify=str(ca), headers={"Authorization": f"Bearer {viewer}"}, timeout=60)
            client.get("/api/v1/assets?limit=1")
            paths = {
                "assets, first page (100)": "/api/v1/assets?limit=100",
                "assets, zone + role": "/api/v1/assets?zone=control&role=plc&limit=100",
                "assets, vendor contains": "/api/v1/assets?vendor=siemens&limit=100",
                "assets, protocol": "/api/v1/assets?protocol=enip&limit=100",
                "assets, deep page (cursor 9000)": "/api/v1/assets?cursor=9000&limit=100",
                "alerts, newest filter (severity >= high)": "/api/v1/alerts?severity=high&limit=100",
                "alerts, time range": "/api/v1/alerts?since=2026-11-05T00:00:00Z&until=2026-11-06T00:00:00Z&limit=100",
                "sites (counts over 1 M alerts)": "/api/v1/sites",
            }
            lat = {name: latencies(client, p, a.requests) for name, p in paths.items()}
            client.close()
        finally:
            server.terminate()
            server.wait(20)
    lines = [
        "# Central server benchmark", "",
        f"Generated by `benchmarks/central_ingest.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"Machine: {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}; {pg_version} "
        "(throwaway cluster, fsync off); server, database and the sensor processes share the machine.", "",
        "## Sustained ingest", "",
        "| sensors | envelopes | events | per request | wall s | envelopes/s | events/s | target |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {a.sensors} | {envs:,} | {events:,} | {a.batch} envelopes × {a.per_envelope} alerts | {wall:.2f} | "
        f"{envs / wall:,.0f} | {events / wall:,.0f} | >= 5,000 events/s: **{'met' if events / wall >= 5000 else 'not met'}** |",
        "",
        f"Inventory: {a.assets:,} assets in {len(inv)} envelopes of {chunk}: {inv_s:.2f} s "
        f"({a.assets / inv_s:,.0f} assets/s). Bulk load of {a.alerts:,} alerts (SQL) {bulk_s:.1f} s.", "",
        f"## API latency at {a.assets:,} assets and {a.alerts + events:,} alerts", "",
        f"{a.requests} sequential requests each, over TLS with a viewer token.", "",
        "| request | p50 ms | p95 ms | p99 ms | target |", "|---|---:|---:|---:|---|",
    ]
    for name, v in lat.items():
        p95 = pct(v, 95)
        target = f"p95 < 200 ms: **{'met' if p95 < 200 else 'not met'}**" if name.startswith("assets") else ""
        lines.append(f"| {name} | {pct(v, 50):.1f} | {p95:.1f} | {pct(v, 99):.1f} | {target} |")
    text = "\n".join(lines) + "\n"
    a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
