"""A sensor whose certificate has less than a third of its life left renews it on its next
delivery, against a real server process: new key and certificate on disk, the server audits the
renewal and accepts the new certificate."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from plantguard.server import audit, pki
from plantguard.server import tables as t
from plantguard.store.db import open_engine, session_factory
from support.central import cli, push, running_server


def test_push_renews_a_certificate_near_its_end(tmp_path):
    db = f"sqlite:///{tmp_path / 'central.db'}"
    with running_server(db, tmp_path) as server:
        state = tmp_path / "sensor"
        server.enroll(state, "Plant A", "line-1")
        sensor_id = pki.sensor_id_of((state / "cert.pem").read_bytes())
        # the same key, certified 25 of 30 days ago: still valid, renewal due
        ca, ca_key = (server.state / "ca.pem").read_bytes(), (server.state / "ca.key").read_bytes()
        csr, key = pki.new_csr("line-1")
        old = pki.sign_sensor(ca, ca_key, csr, sensor_id, days=30, now=datetime.now(timezone.utc) - timedelta(days=25))
        (state / "key.pem").write_bytes(key)
        (state / "cert.pem").write_bytes(old)
        engine = open_engine(db)
        sessions = session_factory(engine)
        with sessions() as s:
            s.get(t.Sensor, sensor_id).cert_fingerprint = pki.fingerprint(old)
            s.commit()
        assert pki.needs_renewal(old)
        p = push(state)
        assert "client certificate renewed" in p.stderr
        new = (state / "cert.pem").read_bytes()
        assert new != old and not pki.needs_renewal(new) and pki.sensor_id_of(new) == sensor_id
        assert (state / "key.pem").read_bytes() != key
        demo = tmp_path / "demo"
        cli("demo", "--out", str(demo), "--format", "json")
        sent = push(state, str(demo / "demo-plant.pcap"))      # the new certificate is accepted
        assert "0 waiting" in sent.stderr
        with sessions() as s:
            sensor = s.get(t.Sensor, sensor_id)
            assert sensor.cert_fingerprint == pki.fingerprint(new) and sensor.previous_fingerprint is None
            actions = [r.action for r in s.scalars(select(audit.AuditRow).order_by(audit.AuditRow.id))]
        assert "sensor.renew" in actions
        engine.dispose()
        assert cli("server", "audit", "verify", "--db", db).returncode == 0
