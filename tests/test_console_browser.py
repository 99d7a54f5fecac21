"""The console in a real browser (Chromium through Playwright) against a real server process on
SQLite: the demo plant pushed by an enrolled sensor, its alerts delivered by `plantguard monitor
--central`, users made through the API. Journeys: log in (a wrong password shows the error),
filter assets by zone and vendor (the rows are the API's), an asset's evidence display filter, an
incident acknowledged by an analyst (the API sees it), the same action absent for a viewer and a
forged POST refused, a risk accepted with reason and expiry, the audit page with each action and
its before/after and a verified chain. Every page visited is kept as a screenshot; no page loads
anything from outside the server."""
from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, select

from plantguard.server.api.common import CSRF_HEADER
from support.browser import console_browser
from support.central import Server, push
from support.monitor import MonitorProc
from support.ring import write_ring

PASSWORD = "console test password"
SITE = "plant-a"


def _get(client, path: str, **params):
    r = client.get(path, params=params)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return r.json()


def _all(client, path: str, **params) -> list:
    out, cursor = [], None
    while True:
        page = _get(client, path, limit=500, **params, **({"cursor": cursor} if cursor else {}))
        out += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def _endpoint(e) -> str:
    return (e or {}).get("ip") or (e or {}).get("mac") or ""


def incidents_of(alerts: list[dict]) -> dict[tuple, list[dict]]:
    """The API's alerts grouped as the console groups them: (site, rule, source, destination)."""
    out = defaultdict(list)
    for a in alerts:
        out[(a["site"], a["rule_id"] or "", _endpoint(a["event"].get("source")), _endpoint(a["event"].get("destination")))].append(a)
    return out


@pytest.fixture
def plant(tmp_path, monkeypatch):
    """A running server holding the demo plant's assessment and the monitor's alerts on it, with
    an admin (bootstrap), an analyst and a viewer (POST /api/v1/users)."""
    from plantguard.demo import build_demo
    pcap, site_file = build_demo(tmp_path / "demo")
    server = Server(f"sqlite:///{tmp_path / 'central.db'}", tmp_path / "server-state")
    secret = server.init()
    server.start()
    try:
        sensor = tmp_path / "sensor"
        server.enroll(sensor, SITE, "sensor-a")
        push(sensor, str(pcap), "--site", str(site_file))
        viewer_api = server.client(server.token("viewer"))
        ring = tmp_path / "ring"
        ring.mkdir()
        monkeypatch.setenv("PLANTGUARD_SENSOR_DIR", str(sensor))
        mon = MonitorProc(["--watch", str(ring), "--site", str(site_file), "--state", str(tmp_path / "mon-state"),
                           "--checkpoint", "1h", "--status-every", "1s", "--central", server.url], tmp_path)
        try:
            mon.wait_started()
            write_ring(pcap, ring, 1)
            mon.wait_for(lambda: _get(viewer_api, "/api/v1/alerts", site=SITE)["items"], 60, "alerts at central")
            time_left = 10
            seen = -1
            while time_left > 0:        # until the monitor has delivered all it raised on the capture
                n = len(_all(viewer_api, "/api/v1/alerts"))
                if n == seen:
                    break
                seen = n
                mon.wait_for(lambda: True, 1, "")
                import time
                time.sleep(2)
                time_left -= 2
        finally:
            assert mon.stop() == 0
        admin = server.client()
        assert admin.post("/api/v1/bootstrap", json={"secret": secret, "username": "root",
                                                     "password": PASSWORD}).status_code == 201
        r = admin.post("/api/v1/login", json={"username": "root", "password": PASSWORD})
        assert r.status_code == 200, r.text
        csrf = r.json()["csrf"]
        for name in ("analyst", "viewer"):
            r = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD, "role": name},
                           headers={CSRF_HEADER: csrf})
            assert r.status_code == 201, r.text
        yield server, viewer_api
    finally:
        server.stop()


def log_in(con, page, user: str, password: str = PASSWORD):
    con.visit(page, "/login", f"login-{user}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def forged_post(page, path: str, **fields) -> int:
    """POST a form the page does not offer, from the page (its cookie, the browser's TLS); the status."""
    with page.expect_navigation() as nav:
        page.evaluate("""([action, fields]) => {
            const f = document.createElement('form'); f.method = 'post'; f.action = action;
            for (const [k, v] of Object.entries(fields)) {
                const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
            }
            document.body.appendChild(f); f.submit(); }""", [path, fields])
    return nav.value.status


def cells(page, selector: str) -> list[str]:
    return [x.strip() for x in page.locator(selector).all_inner_texts()]


@pytest.mark.slow
def test_console_journeys(plant):
    server, api = plant
    alerts = _all(api, "/api/v1/alerts")
    assets = _all(api, "/api/v1/assets", site=SITE)
    assert alerts and assets
    with console_browser(server.url, server.state / "server.pem") as con:
        analyst = con.new_page()
        # log in: a wrong password shows the error and no session; the right one the overview
        log_in(con, analyst, "analyst", "not the password")
        con.shot(analyst, "login-wrong-password")
        assert "Wrong user name or password." in analyst.locator("p.error").inner_text()
        assert analyst.url.endswith("/login")
        log_in(con, analyst, "analyst")
        con.shot(analyst, "overview")
        assert analyst.locator("h1").first.inner_text() == "Overview"
        assert "analyst (analyst)" in analyst.locator(".user").inner_text()

        # assets filtered by zone and vendor: the API's rows, and fewer than all
        pairs = defaultdict(set)
        for a in assets:
            if a["asset"].get("zone") and a["asset"].get("vendor"):
                pairs[a["asset"]["zone"], a["asset"]["vendor"]].add(a["key"])
        (zone, vendor), _ = max(pairs.items(), key=lambda kv: len(kv[1]))
        needle = vendor.split()[0].lower()
        con.visit(analyst, "/assets", "assets")
        analyst.select_option("select[name=zone]", zone)
        analyst.fill("input[name=vendor]", needle)
        analyst.click("form.filters button[type=submit]")
        analyst.wait_for_load_state()
        con.shot(analyst, "assets-filtered")
        shown = cells(analyst, "main table tbody td.mono a")
        expected = {a["key"] for a in _all(api, "/api/v1/assets", site=SITE, zone=zone, vendor=needle)}
        assert set(shown) == expected and len(shown) == len(expected), (zone, needle, shown, expected)
        assert 0 < len(expected) < len(assets)
        assert all(z == zone for z in cells(analyst, "main table tbody tr td:nth-child(6)"))
        assert all(needle in v.lower() for v in cells(analyst, "main table tbody tr td:nth-child(3)"))

        # an asset's page: its evidence frames as Wireshark display filters
        findings = _all(api, "/api/v1/findings", site=SITE)
        with_frames = {k for f in findings for k in f["finding"]["assets"]
                       if any(ev.get("frame") for ev in f["finding"].get("evidence") or [])}
        target = next(a for a in assets if a["key"] in with_frames and a["asset"].get("ip"))
        con.visit(analyst, f"/assets?q={target['key']}", "assets-search")
        analyst.get_by_role("link", name=target["key"], exact=True).click()
        analyst.wait_for_load_state()
        con.shot(analyst, "asset")
        assert analyst.locator("h1").first.inner_text().startswith(target["key"])
        filters = cells(analyst, "main section code")
        assert any(re.fullmatch(rf"frame\.number == \d+ && ip\.addr == {re.escape(target['asset']['ip'])}", x) for x in filters), filters

        # alerts: incidents as the API's alerts grouped; acknowledge the first one
        groups = incidents_of(alerts)
        con.visit(analyst, "/alerts", "alerts")
        rows = analyst.locator("table.incidents tbody tr")
        assert rows.count() == len(groups)
        counts = sorted(int(x) for x in cells(analyst, "table.incidents tbody td.num"))
        assert counts == sorted(len(v) for v in groups.values())
        rows.first.locator("a").first.click()
        analyst.wait_for_load_state()
        con.shot(analyst, "incident")
        first_id = int(analyst.url.rstrip("/").split("/")[-1])
        (key, members), = [(k, v) for k, v in groups.items() if first_id in {a["id"] for a in v}]
        assert analyst.locator("table.incident-alerts tbody tr").count() == len(members)
        analyst.get_by_role("button", name="Acknowledge").click()
        analyst.wait_for_load_state()
        con.shot(analyst, "incident-acknowledged")
        assert f"acknowledged: {len(members)} alert" in analyst.locator("p.notice").inner_text()
        now_states = {a["id"]: a for a in _all(api, "/api/v1/alerts")}
        assert all(now_states[a["id"]]["state"] == "acknowledged" and now_states[a["id"]]["state_by"] == "user:analyst"
                   for a in members)
        others = [a for k, v in groups.items() if k != key for a in v]
        assert all(now_states[a["id"]]["state"] == "open" for a in others)
        con.visit(analyst, "/alerts?state=acknowledged", "alerts-acknowledged")
        assert analyst.locator("table.incidents tbody tr").count() == 1

        # accept the risk of another incident, with a reason and an expiry date
        second = next((v for k, v in groups.items() if k != key), None)
        assert second, "the demo raised a single incident"
        until = (datetime.now(timezone.utc) + timedelta(days=30)).date()
        con.visit(analyst, f"/alerts/{second[0]['id']}", "incident-2")
        form = analyst.locator("form", has=analyst.locator("input[name=action][value=accept-risk]"))
        form.locator("input[name=reason]").fill("compensating control: PLC behind a data diode")
        form.locator("input[name=until]").fill(until.isoformat())
        form.get_by_role("button", name="Accept risk").click()
        analyst.wait_for_load_state()
        con.shot(analyst, "incident-2-risk-accepted")
        now_states = {a["id"]: a for a in _all(api, "/api/v1/alerts")}
        assert all(now_states[a["id"]]["state"] == "risk-accepted" and
                   now_states[a["id"]]["state_reason"] == "compensating control: PLC behind a data diode" for a in second)
        from plantguard.server import tables as t
        engine = create_engine(server.db)
        try:
            with engine.connect() as c:
                untils = set(c.execute(select(t.Alert.state_until).where(t.Alert.id.in_([a["id"] for a in second]))).scalars())
        finally:
            engine.dispose()
        assert {u.replace(tzinfo=None) for u in untils} == {datetime.combine(until + timedelta(days=1), datetime.min.time())}

        # findings and sensors
        con.visit(analyst, "/findings?status=fail", "findings-failing")
        failing = {(f["finding"]["check"], " ".join(f["finding"]["assets"])) for f in findings if f["finding"]["status"] == "fail"}
        assert analyst.locator("table.findings tbody tr").count() == len(failing)
        con.visit(analyst, "/sensors", "sensors")
        assert "sensor-a" in analyst.locator("table.sensors tbody").inner_text()
        assert con.visit(analyst, "/audit", "audit-refused-for-analyst") == 403

        # a viewer: no action buttons, and a forged POST with the viewer's own CSRF token is refused
        viewer = con.new_page()
        log_in(con, viewer, "viewer")
        untouched = [a for a in others if a["id"] not in {x["id"] for x in second}]
        target_id = (untouched or others)[0]["id"]
        before = {a["id"]: a["state"] for a in _all(api, "/api/v1/alerts")}[target_id]
        con.visit(viewer, f"/alerts/{target_id}", "incident-as-viewer")
        assert viewer.get_by_role("button", name="Acknowledge").count() == 0
        assert viewer.locator("form[action$='/acknowledge'], form[action$='/state']").count() == 0
        csrf = viewer.locator("form[action='/logout'] input[name=csrf]").get_attribute("value")
        assert forged_post(viewer, f"/alerts/{target_id}/acknowledge", csrf=csrf) == 403
        con.shot(viewer, "forged-acknowledge-as-viewer")
        assert "may not acknowledge an alert" in viewer.locator("p.error").inner_text()
        assert forged_post(viewer, f"/alerts/{target_id}/state", csrf=csrf, action="close", reason="x") == 403
        assert {a["id"]: a["state"] for a in _all(api, "/api/v1/alerts")}[target_id] == before

        # the audit log as admin: each action with its actor and before → after, the chain verified
        admin = con.new_page()
        log_in(con, admin, "root")
        con.visit(admin, "/audit", "audit")
        assert "Chain verified" in admin.locator("p.chain-ok").inner_text()
        assert _get(server.client(server.token("admin")), "/api/v1/audit/verify")["ok"] is True
        rows = admin.locator("table.audit tbody tr")
        logged = defaultdict(list)
        for i in range(rows.count()):
            _, _, actor, action, obj, change = cells(rows.nth(i), "td")
            logged[action].append((actor, obj, change))
        acked = logged["alert.acknowledged"]
        assert sorted(o for _, o, _ in acked) == sorted(f"alert {a['id']} ({SITE})" for a in members)
        assert all(actor == "user:analyst" and '"state": "open"' in ch.split("→")[0] and
                   '"state": "acknowledged"' in ch.split("→")[1] for actor, _, ch in acked)
        accepted = logged["alert.risk-accepted"]
        assert len(accepted) == len(second) and all(
            actor == "user:analyst" and '"state": "risk-accepted"' in ch.split("→")[1] and
            f'"until": "{until + timedelta(days=1)}T00:00:00.000000+00:00"' in ch for actor, _, ch in accepted)
        assert [actor for actor, _, _ in logged["login.failed"]][-1].startswith("anonymous@")
        assert "user:viewer" in {actor for actor, _, _ in logged["login"]}

        assert con.foreign_requests() == [], con.foreign_requests()
        assert len(con.shots) >= 15


# -- the rules behind the journeys, without a browser --------------------------------------------
def test_risk_expiry_action_fields_and_pages(store_url):
    from plantguard.server import audit
    from plantguard.server import tables as t
    from support.central_app import central_app
    with central_app(store_url) as c:
        r = c.client.post("/api/v1/users", json={"username": "ana", "password": PASSWORD, "role": "analyst"},
                          headers=c.headers("admin"))
        assert r.status_code == 201, r.text
        r = c.client.post("/login", data={"username": "ana", "password": PASSWORD, "next": "/"}, follow_redirects=False)
        assert r.status_code == 303
        alert_id = c.ids["alert_id"]
        page = c.client.get(f"/alerts/{alert_id}")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]

        def act(**form):
            return c.client.post(f"/alerts/{alert_id}/state", data={"csrf": csrf, **form}, follow_redirects=False)
        assert act(action="close", reason=" ").status_code == 422
        assert act(action="accept-risk", reason="diode").status_code == 422
        assert act(action="accept-risk", reason="", until="2099-01-01").status_code == 422
        assert act(action="accept-risk", reason="diode", until="2020-01-01").status_code == 422
        assert c.client.post(f"/alerts/{alert_id}/acknowledge", data={"csrf": "wrong"}).status_code == 403
        until = (datetime.now(timezone.utc) + timedelta(days=2)).date()
        assert act(action="accept-risk", reason="diode", until=until.isoformat()).status_code == 303
        assert "1 risk-accepted" in c.client.get("/alerts?state=risk-accepted").text
        assert "no alert matches" in c.client.get("/alerts?state=open&site=A").text
        # two days later: the acceptance has expired and the alert counts as open again
        with c.central.sessions() as s:
            s.get(t.Alert, alert_id).state_until = datetime.now(timezone.utc) - timedelta(minutes=1)
            s.commit()
        assert "no alert matches" in c.client.get("/alerts?state=risk-accepted").text
        assert "1 open" in c.client.get("/alerts?state=open&site=A").text
        page = c.client.get(f"/alerts/{alert_id}").text
        assert "state-open" in page and "expired" in page
        # the console's change and the API's are audited alike: one row, before and after
        assert act(action="reopen").status_code == 303
        r = c.client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=c.headers("analyst"))
        assert r.status_code == 200
        with c.central.sessions() as s:
            rows = list(s.scalars(select(audit.AuditRow).where(audit.AuditRow.action.like("alert.%"))
                                  .order_by(audit.AuditRow.id)))
            assert audit.verify(s).ok
        assert [(x.action, x.actor) for x in rows] == [("alert.risk-accepted", "user:ana"), ("alert.open", "user:ana"),
                                                      ("alert.acknowledged", rows[-1].actor)]
        assert rows[0].before == {"state": "open", "assignee": None, "reason": None}
        assert rows[0].after["until"] == f"{until + timedelta(days=1)}T00:00:00.000000+00:00"
        assert rows[1].after == {"state": "open", "assignee": None, "reason": None}
        assert rows[2].before == rows[1].after and rows[2].after["state"] == "acknowledged"
        # the other pages on this store: the seeded finding, both sensors, the audit log for admins only
        page = c.client.get("/findings?site=A&severity=high&status=fail").text
        assert "PG-T-001" in page and "1–1 of 1" in page
        assert "no finding matches" in c.client.get("/findings?severity=critical").text
        page = c.client.get("/sensors").text
        assert "s-a" in page and "s-b" in page
        assert c.client.get("/audit").status_code == 403
