"""The central server in process for the API tests: the ASGI app on a fresh store with its own CA,
two sites (A and B) filled by applying real envelopes, one API token per human role (made the way
the admin API makes them), a token scoped to site A, and the ids of seeded objects for path
parameters."""
from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator

from fastapi.testclient import TestClient
from sqlalchemy import select

from plantguard.central.envelope import SCHEMA_VERSION, Envelope
from plantguard.server import pki, roles
from plantguard.server import tables as t
from plantguard.server.api.admin import create_token
from plantguard.server.app import Central, create_app
from plantguard.server.ingest import apply_batch
from plantguard.store.db import open_engine

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
SITES = ("A", "B")
BASE_URL = "https://testserver"          # https: the session cookie is Secure


def envelopes(sensor: str, site: str, net: int) -> list[Envelope]:
    """One of each kind a sensor sends, for site `site` with addresses in 10.<net>.0.0/24."""
    ip = f"10.{net}.0.1"
    bodies = [
        ("run", {"kind": "assess", "run_id": "r1", "packets": 100, "captures": [], "summary": {}}),
        ("inventory", {"assets": [{"ip": ip, "vendor": "Siemens", "role": "plc", "protocols": ["s7comm"]},
                                  {"ip": f"10.{net}.0.2", "vendor": "Moxa", "role": "gateway",
                                   "protocols": ["modbus"]}]}),
        ("inventory", {"assets": [{"ip": ip, "vendor": "Siemens AG", "role": "plc", "protocols": ["s7comm"]}]}),
        ("findings", {"run_id": "r1", "findings": [{"check": "PG-T-001", "status": "fail", "severity": "high",
                                                    "title": "cleartext engineering protocol", "assets": [ip]}]}),
        ("flows", {"flows": [{"src": f"10.{net}.0.9", "dst": ip, "proto": "tcp", "port": 102, "app": "s7comm",
                              "packets": 10, "bytes": 1000}]}),
        ("alerts", {"alerts": [{"id": f"e-{site}", "kind": "alert", "key": ip, "message": f"write to PLC {ip}",
                                "severity": "high", "time": T0.timestamp()}]}),
        ("baseline", {"baseline": {"flows": 1}}),
        ("health", {"outbox_depth": 0, "outbox_bytes": 0, "dropped": 0, "version": "test"}),
    ]
    return [Envelope(sensor_id=sensor, seq=i, schema_version=SCHEMA_VERSION, kind=kind, site=site,
                     captured_at=T0 + timedelta(minutes=i), sent_at=None, body=body)
            for i, (kind, body) in enumerate(bodies, 1)]


@dataclasses.dataclass
class CentralApp:
    central: Central
    client: TestClient
    tokens: dict[str, str]               # role -> token text; "scoped": a viewer token for site A only
    ids: dict[str, object]               # path parameter -> an existing id (site A's objects)
    site_b: dict[str, int]               # site B's asset and alert ids

    def headers(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}


def _seed(central: Central) -> tuple[dict, dict, dict]:
    with central.sessions() as s:
        for name in SITES:
            site = t.Site(name=name)
            s.add(site)
            s.flush()
            s.add(t.Sensor(id=f"s-{name.lower()}", name=f"line-{name}", site_id=site.id, health={}))
            if name == "A":                  # the sensor the revoke route may revoke
                s.add(t.Sensor(id="s-spare", name="spare", site_id=site.id, health={}))
        s.commit()
    for net, name in enumerate(SITES, 1):
        with central.sessions() as s:
            done = apply_batch(s, f"s-{name.lower()}", envelopes(f"s-{name.lower()}", name, net))
            assert done.applied == list(range(1, 9)), done
    with central.sessions() as s:
        tokens = {}
        for role in roles.ROLES:
            tokens[role], _ = create_token(s, "test", role, [], timedelta(days=1), name=role)
        tokens["scoped"], _ = create_token(s, "test", "viewer", ["A"], timedelta(days=1), name="scoped")
        _, spare = create_token(s, "test", "viewer", [], timedelta(days=1), name="to revoke")
        s.commit()

        def first(model, site):
            return s.scalar(select(model.id).join(t.Site, t.Site.id == model.site_id).where(t.Site.name == site)
                            .order_by(model.id))
        ids = {"asset_id": first(t.Asset, "A"), "alert_id": first(t.Alert, "A"),
               "baseline_id": first(t.Baseline, "A"), "sensor_id": "s-spare", "token_id": spare.id}
        site_b = {"asset_id": first(t.Asset, "B"), "alert_id": first(t.Alert, "B")}
    return tokens, ids, site_b


@contextmanager
def central_app(url: str) -> Iterator[CentralApp]:
    ca_cert, ca_key = pki.new_ca("test central CA")
    engine = open_engine(url)
    try:
        central = Central(engine=engine, ca_cert=ca_cert.decode(), ca_key=ca_key.decode())
        tokens, ids, site_b = _seed(central)
        with TestClient(create_app(central), base_url=BASE_URL) as client:
            yield CentralApp(central, client, tokens, ids, site_b)
    finally:
        engine.dispose()
