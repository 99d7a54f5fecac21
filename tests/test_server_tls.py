"""Mutual TLS against a real `plantguard server run` process: another CA's client certificate is
refused at the handshake; an expired or revoked sensor reaches the app and is refused there with a
401 and an audit row; a renewed certificate replaces the old one once it is used; people connect
without a client certificate and use their tokens."""
from __future__ import annotations

import json
import socket
import ssl
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from plantguard.central.envelope import CONTENT_TYPE, SCHEMA_VERSION, Envelope, encode_batch
from plantguard.server import pki
from plantguard.server import tables as t
from plantguard.server.ingest import site_named
from plantguard.store.db import open_engine, session_factory
from support.central import running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    with running_server(f"sqlite:///{tmp / 'central.db'}", tmp) as srv:
        srv.admin = srv.token("admin")
        yield srv


def mtls(server, cert: Path | None, key: Path | None) -> httpx.Client:
    """A client of the server that presents `cert` (or no certificate), on its own connections."""
    ctx = ssl.create_default_context(cafile=str(server.state / "ca.pem"))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return httpx.Client(base_url=server.url, verify=ctx, timeout=30)


_seqs: dict[str, int] = {}


def ingest(client: httpx.Client, sensor_id: str = "s-none", site: str = "none") -> httpx.Response:
    """Push the sensor's next envelope (a health report); the seq advances only when it is applied."""
    seq = _seqs.get(sensor_id, 0) + 1
    env = Envelope(sensor_id=sensor_id, seq=seq, schema_version=SCHEMA_VERSION, kind="health", site=site,
                   captured_at=datetime.now(timezone.utc), sent_at=None, body={"outbox_depth": 0})
    r = client.post("/api/v1/ingest", content=encode_batch([env]), headers={"content-type": CONTENT_TYPE})
    if r.status_code == 200:
        assert r.json()["applied"] == [seq], r.text
        _seqs[sensor_id] = seq
    return r


def write_pair(dir: Path, name: str, cert_pem: bytes, key_pem: bytes) -> tuple[Path, Path]:
    dir.mkdir(parents=True, exist_ok=True)
    (dir / f"{name}.pem").write_bytes(cert_pem)
    (dir / f"{name}.key").write_bytes(key_pem)
    return dir / f"{name}.pem", dir / f"{name}.key"


def refusals(server, sensor: str | None = None) -> list[dict]:
    with server.client(server.admin) as c:
        r = c.get("/api/v1/audit", params={"action": "sensor.refused", "limit": 500})
    assert r.status_code == 200, r.text
    return [row for row in r.json()["items"] if sensor is None or row["after"]["sensor"] == sensor]


def enrolled(server, tmp_path: Path, site: str, name: str) -> tuple[str, Path, Path]:
    state = tmp_path / name
    server.enroll(state, site, name)
    return json.loads((state / "sensor.json").read_text())["sensor_id"], state / "cert.pem", state / "key.pem"


def test_another_cas_certificate_is_refused_at_the_handshake(server, tmp_path):
    ca_cert, ca_key = pki.new_ca("someone else's CA")
    csr, key = pki.new_csr("intruder")
    cert = pki.sign_sensor(ca_cert, ca_key, csr, "intruder")
    before = len(refusals(server))
    pair = write_pair(tmp_path, "intruder", cert, key)
    with mtls(server, *pair) as c, pytest.raises(httpx.TransportError):
        ingest(c)              # TLS 1.3: the server's refusal arrives after the client's handshake
    # TLS 1.2 finishes the handshake only once the server accepted the client's certificate:
    # without one it completes, with the foreign one it does not
    for presented in (None, pair):
        ctx = ssl.create_default_context(cafile=str(server.state / "ca.pem"))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if presented:
            ctx.load_cert_chain(*map(str, presented))
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            if presented is None:
                ctx.wrap_socket(raw, server_hostname="127.0.0.1").close()
            else:
                with pytest.raises(ssl.SSLError):
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    assert len(refusals(server)) == before        # never reached the application


def test_an_expired_certificate_gets_401_and_is_audited(server, tmp_path):
    ca, ca_key = (server.state / "ca.pem").read_bytes(), (server.state / "ca.key").read_bytes()
    csr, key = pki.new_csr("old")
    past = datetime.now(timezone.utc) - timedelta(days=60)
    cert = pki.sign_sensor(ca, ca_key, csr, "s-expired", days=30, now=past)
    # a sensor enrolled two months ago whose certificate was never renewed
    engine = open_engine(server.db)
    try:
        with session_factory(engine)() as s:
            site = site_named(s, "Plant X")
            s.add(t.Sensor(id="s-expired", name="old", site_id=site.id, cert_fingerprint=pki.fingerprint(cert),
                           cert_not_after=pki.not_after(cert), enrolled_at=past, health={}))
            s.commit()
    finally:
        engine.dispose()
    with mtls(server, *write_pair(tmp_path, "expired", cert, key)) as c:
        r = ingest(c, "s-expired", "Plant X")
    assert r.status_code == 401 and "certificate expired" in r.json()["detail"]
    rows = refusals(server, "s-expired")
    assert [row["after"]["reason"] for row in rows] == ["certificate expired"]
    assert rows[0]["actor"].startswith("anonymous@127.0.0.1")


def test_a_revoked_sensor_gets_401_and_is_audited(server, tmp_path):
    sensor_id, cert, key = enrolled(server, tmp_path, "Plant R", "to-revoke")
    with mtls(server, cert, key) as c:
        assert ingest(c, sensor_id, "Plant R").status_code == 200
    with server.client(server.admin) as c:
        r = c.post(f"/api/v1/sensors/{sensor_id}/revoke")
    assert r.status_code == 200 and r.json()["revoked"] is True
    with mtls(server, cert, key) as c:
        r = ingest(c, sensor_id, "Plant R")
        renew = c.post("/api/v1/sensor/renew", json={"csr": pki.new_csr("x")[0].decode()})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert renew.status_code == 401
    assert [row["after"]["reason"] for row in refusals(server, sensor_id)] == ["sensor revoked"] * 2


def test_renewal_new_certificate_works_and_retires_the_old_once_used(server, tmp_path):
    sensor_id, old_cert, old_key = enrolled(server, tmp_path, "Plant N", "renewing")
    csr, new_key_pem = pki.new_csr(sensor_id)
    with mtls(server, old_cert, old_key) as c:
        r = c.post("/api/v1/sensor/renew", json={"csr": csr.decode()})
    assert r.status_code == 200, r.text
    new_pem = r.json()["certificate"].encode()
    assert pki.sensor_id_of(new_pem) == sensor_id and pki.fingerprint(new_pem) != pki.fingerprint(old_cert.read_bytes())
    new_cert, new_key = write_pair(tmp_path, "renewed", new_pem, new_key_pem)
    with mtls(server, old_cert, old_key) as c:          # not yet replaced: the new one is unused
        assert ingest(c, sensor_id, "Plant N").status_code == 200
        assert ingest(c, sensor_id, "Plant N").status_code == 200
    with mtls(server, new_cert, new_key) as c:
        assert ingest(c, sensor_id, "Plant N").status_code == 200
    with mtls(server, old_cert, old_key) as c:          # the new one was used: the old one is done
        r = ingest(c, sensor_id, "Plant N")
    assert r.status_code == 401 and "unknown certificate" in r.json()["detail"]
    with mtls(server, new_cert, new_key) as c:
        assert ingest(c, sensor_id, "Plant N").status_code == 200
    with server.client(server.admin) as c:
        sensors = {s["id"]: s for s in c.get("/api/v1/sensors").json()}
    assert sensors[sensor_id]["cert_not_after"].startswith(pki.not_after(new_pem).strftime("%Y-%m-%dT%H:%M:%S"))


def test_people_connect_without_a_client_certificate(server, tmp_path):
    viewer = server.token("viewer")
    with mtls(server, None, None) as c:
        h = {"Authorization": f"Bearer {viewer}"}
        assert c.get("/api/v1/assets", headers=h).status_code == 200
        assert c.get("/api/v1/whoami", headers=h).json()["role"] == "viewer"
        assert c.get("/api/v1/assets").status_code == 401
        assert c.post("/api/v1/alerts/1/acknowledge", headers=h).status_code == 403
        r = c.post("/api/v1/ingest", content=b"", headers={**h, "content-type": CONTENT_TYPE})
        assert r.status_code == 401           # a token is no sensor credential
