"""Accepted risks on the central server (issue 14): a failing finding the sensor's assessment
accepted (`suppressed` set, as `assess --suppress` writes it) is stored as accepted, listed apart
(API `suppressed` field and filter, console result "accepted") and counted as failing nowhere
(console overview tiles and practices, findings filter `status=fail`). On SQLite and PostgreSQL."""
from __future__ import annotations

import re
from datetime import timedelta

from support.central_app import T0, central_app

from plantguard.central.envelope import SCHEMA_VERSION, Envelope
from plantguard.server.ingest import apply_batch

ACCEPTED = {"reason": "vendor VPN only, replaced in Q3", "owner": "ot-team", "expires": "2027-06-30",
            "ticket": "CHG-1", "file": "accepted.yaml", "entry": 1}
FINDINGS = [
    {"id": "F-open", "check": "PG-T-001", "status": "fail", "severity": "high", "practice": "segmentation",
     "title": "cleartext engineering protocol", "assets": ["10.1.0.1"]},
    {"id": "F-accepted", "check": "PG-T-002", "status": "fail", "severity": "critical", "practice": "remote-access",
     "title": "remote access without MFA", "assets": ["10.1.0.2"], "suppressed": ACCEPTED},
    {"id": "F-pass", "check": "PG-T-003", "status": "pass", "severity": "info", "practice": "inventory",
     "title": "every device is known", "assets": ["10.1.0.1"]},
]


def newer_findings(store) -> None:
    """A second findings envelope from site A's sensor: its latest run."""
    env = Envelope(sensor_id="s-a", seq=9, schema_version=SCHEMA_VERSION, kind="findings", site="A",
                   captured_at=T0 + timedelta(minutes=9), sent_at=None, body={"run_id": "r2", "findings": FINDINGS})
    with store.sessions() as s:
        assert apply_batch(s, "s-a", [env]).applied == [9]


def test_accepted_findings_are_listed_apart_and_never_counted_as_failing(store_url):
    with central_app(store_url) as c:
        newer_findings(c.central)
        h = c.headers("viewer")

        def api(**q):
            r = c.client.get("/api/v1/findings", params={"site": "A", **q}, headers=h)
            assert r.status_code == 200, r.text
            return {f["finding"]["id"]: f for f in r.json()["items"]}

        every = api()
        assert set(every) == {"F-open", "F-accepted", "F-pass"}
        assert [every[k]["suppressed"] for k in ("F-open", "F-accepted", "F-pass")] == [False, True, False]
        assert every["F-accepted"]["finding"]["suppressed"]["owner"] == "ot-team"
        assert set(api(suppressed="true")) == {"F-accepted"}
        assert set(api(status="fail", suppressed="false")) == {"F-open"}
        assert c.client.get("/api/v1/findings", params={"suppressed": "maybe"}, headers=h).status_code == 422

        # the console: a viewer logged in with a session cookie
        user = {"username": "viewer1", "password": "correct horse battery", "role": "viewer"}
        assert c.client.post("/api/v1/users", json=user, headers=c.headers("admin")).status_code == 201
        assert c.client.post("/api/v1/login", json={k: user[k] for k in ("username", "password")}).status_code == 200
        h = {}
        page = c.client.get("/findings", params={"site": "A"}, headers=h)
        assert page.status_code == 200, page.text
        rows = re.findall(r'<span class="chip (\w+)"[^>]*>(\w+)</span></td><td>([^<]+) <span', page.text)
        assert rows == [("bad", "fail", "cleartext engineering protocol"),
                        ("state", "accepted", "remote access without MFA"),
                        ("ok", "pass", "every device is known")]
        assert 'title="accepted risk: vendor VPN only, replaced in Q3"' in page.text
        failing = c.client.get("/findings", params={"site": "A", "status": "fail"}, headers=h).text
        assert "cleartext engineering protocol" in failing and "remote access without MFA" not in failing
        accepted = c.client.get("/findings", params={"site": "A", "status": "accepted"}, headers=h).text
        assert "remote access without MFA" in accepted and "cleartext engineering protocol" not in accepted

        overview = c.client.get("/", headers=h).text
        card = overview[overview.index("/findings?site=A&amp;severity=critical"):]
        assert re.match(r'/findings\?site=A&amp;severity=critical&amp;status=fail"><div class="n">0</div>', card)
        assert re.search(r'severity=high&amp;status=fail"><div class="n">1</div>', card)
        assert "1 accepted risk</a>, not counted as failing" in card
        assert re.search(r"<td>remote-access</td><td><span class=\"chip ok\">pass</span></td><td class=\"num\">0</td>",
                         overview)


def test_the_migration_marks_findings_stored_before_it(store_url):
    """A store at the revision before `suppressed` existed, holding an accepted and a failing
    finding: opening it upgrades it, and the accepted one is marked from its stored JSON."""
    import json

    from alembic import command
    from sqlalchemy import create_engine, text

    from plantguard.store.db import open_engine
    from plantguard.store.migrate import _config
    engine = create_engine(store_url)
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "129037dde8de")
        conn.execute(text("INSERT INTO central_sites (id, name, created_at) VALUES (1, 'A', :at)"), {"at": T0})
        for i, f in enumerate(FINDINGS[:2], 1):
            conn.execute(text("INSERT INTO central_findings (id, site_id, sensor_id, seq, check_id, status, severity, "
                              "title, assets, data, captured_at) VALUES (:id, 1, 's-a', 1, :c, 'fail', 'high', 't', "
                              "' ', :data, :at)"), {"id": i, "c": f["check"], "data": json.dumps(f), "at": T0})
    engine.dispose()
    e = open_engine(store_url)
    try:
        with e.connect() as conn:
            rows = conn.execute(text("SELECT id, suppressed FROM central_findings ORDER BY id")).all()
        assert [(i, bool(s)) for i, s in rows] == [(1, False), (2, True)]
    finally:
        e.dispose()
