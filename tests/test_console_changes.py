"""Change tickets authorising PLC changes, and the zone map, end to end in a real browser against a
real server: an engineer adds a ticket in the console; the demo plant's program download inside
the ticket's window is authorised, the same download an hour later (the capture pushed again, an
hour on) is not and raises an alert naming why; a conduit clicked on the map lists its flows; a
viewer sees the timeline but cannot add a ticket; the audit log holds the ticket."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from support.browser import ARTEFACTS, console_browser
from support.central import cli, push, running_server, shifted_pcap

pytestmark = pytest.mark.slow
PASSWORD = "a long enough password"
SITE = "Plant A"
PLC, STATION = "10.10.1.11", "10.10.1.50"          # the demo's S7 controller and engineering station


def log_in(con, page, user: str):
    con.visit(page, "/login", f"login-{user}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def downloads(changes: list[dict]) -> dict[str, dict]:
    """first time -> the Request Download record of the S7 controller."""
    return {r["first"]: r for r in changes if r["controller"] == PLC and r["operation"] == "Request Download"}


def test_ticket_window_authorises_the_download_and_an_hour_later_it_is_an_alert(tmp_path):
    db = f"sqlite:///{tmp_path / 'central.db'}"
    with running_server(db, tmp_path) as server:
        sensor = tmp_path / "sensor"
        server.enroll(sensor, SITE, "line-1")
        admin = server.client(server.token("admin"))
        for user, role in (("eng", "engineer"), ("view", "viewer")):
            r = admin.post("/api/v1/users", json={"username": user, "password": PASSWORD, "role": role})
            assert r.status_code == 201, r.text
        demo = tmp_path / "demo"
        cli("demo", "--out", str(demo), "--format", "json")
        with console_browser(server.url, server.state / "server.pem", ARTEFACTS.parent / "console-changes") as con:
            page = con.new_page()
            log_in(con, page, "eng")
            assert con.visit(page, f"/changes?site={quote(SITE)}", "changes-empty") == 200
            page.fill("input[name=ticket]", "CHG-1")
            page.fill("input[name=plcs]", PLC)
            page.fill("input[name=stations]", STATION)
            page.fill("input[name=start]", "2024-04-14T02:00:00")
            page.fill("input[name=end]", "2024-04-14T03:00:00")
            page.check("input[name=op-program]")
            page.click("text=Add ticket")
            page.wait_for_load_state()
            con.shot(page, "ticket-added")
            assert "CHG-1" in page.inner_text("main")

            # the demo's download at 02:31 inside the window, then the same capture an hour later
            push(sensor, str(demo / "demo-plant.pcap"), "--site", str(demo / "site.yaml"))
            later = shifted_pcap(demo / "demo-plant.pcap", tmp_path / "later.pcap", 3600)
            push(sensor, str(later), "--site", str(demo / "site.yaml"))

            viewer = server.client(server.token("viewer"))
            timeline = viewer.get("/api/v1/changes", params={"site": SITE}).json()
            assert [t["id"] for t in timeline["tickets"]] == ["CHG-1"]
            got = downloads(timeline["changes"])
            inside, after = got["2024-04-14T02:31:15.860300Z"], got["2024-04-14T03:31:15.860300Z"]
            assert inside["verdict"]["authorised"] and inside["verdict"]["ticket"] == "CHG-1"
            assert inside["judged_by"] == "central"
            assert not after["verdict"]["authorised"]
            assert "after ticket CHG-1 closed at 2024-04-14T03:00:00Z" in after["verdict"]["reason"]

            alerts = viewer.get("/api/v1/alerts", params={"check": "plc.unauthorized-program-change",
                                                          "limit": 500}).json()["items"]
            about = [a for a in alerts if PLC in a["message"] and "Request Download" in a["message"]]
            assert [a["at"][:19] for a in about] == ["2024-04-14T03:31:15"], about
            assert "after ticket CHG-1 closed" in about[0]["message"] and about[0]["severity"] == "critical"

            # the timeline page says the same
            assert con.visit(page, f"/changes?site={quote(SITE)}&controller={PLC}", "timeline") == 200
            rows = {r.split("\t")[0].strip(): r for r in page.locator("tr.change").all_inner_texts()
                    if "Request Download" in r}
            assert "not authorised" not in rows["2024-04-14T02:31:15.860300Z"]
            assert "authorised" in rows["2024-04-14T02:31:15.860300Z"]
            assert "not authorised" in rows["2024-04-14T03:31:15.860300Z"]
            assert con.visit(page, "/alerts?check=plc.unauthorized-program-change", "alerts") == 200

            # the zone map: click the guest-wifi -> control arrow, see that conduit's flows
            assert con.visit(page, f"/zones?site={quote(SITE)}", "zones") == 200
            arrow = page.locator('svg a[href*="from=guest-wifi"][href*="to=control"] rect').first   # its label
            arrow.click()
            page.wait_for_load_state()
            con.shot(page, "zones-conduit")
            flows = page.locator("#flows tbody tr").all_inner_texts()
            assert flows and all("10.30.0." in f and "10.10.1." in f for f in flows), flows
            assert any("s7comm" in f for f in flows)

            # a viewer reads the timeline, is offered no form, and a forged post is refused
            vpage = con.new_page()
            log_in(con, vpage, "view")
            assert con.visit(vpage, f"/changes?site={quote(SITE)}", "changes-viewer") == 200
            assert vpage.locator("text=Add a ticket").count() == 0
            csrf = vpage.evaluate("() => document.querySelector('input[name=csrf]').value")
            with vpage.expect_navigation() as nav:
                vpage.evaluate("""([csrf]) => { const f = document.createElement('form'); f.method = 'post';
                    f.action = '/changes'; for (const [k, v] of [['csrf', csrf], ['site', 'Plant A'], ['ticket', 'X'],
                    ['plcs', '10.10.1.11'], ['stations', '10.10.1.50'], ['start', '2024-04-14T00:00:00'],
                    ['end', '2024-04-14T09:00:00']]) { const i = document.createElement('input'); i.name = k;
                    i.value = v; f.appendChild(i); } document.body.appendChild(f); f.submit(); }""", [csrf])
            assert nav.value.status == 403
            assert not con.foreign_requests(), con.foreign_requests()

        audit = server.client(server.token("admin")).get("/api/v1/audit", params={"action": "change"}).json()["items"]
        assert [(x["action"], x["actor"], x["after"]["id"]) for x in audit] == [("change.add", "user:eng", "CHG-1")]
        assert cli("server", "audit", "verify", "--db", db).returncode == 0
