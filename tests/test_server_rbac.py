"""Every route of the central server declares its permission, and the permission holds: the route
table enumerated, then one token per role, no credential and garbage tokens against every route
(the RBAC matrix) on SQLite and PostgreSQL; cookie sessions with CSRF and the log-in limiter;
security headers; site scoping."""
from __future__ import annotations

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from plantguard.server import audit, roles, run
from plantguard.server.api import admin, alerts, changes, sensors, session
from plantguard.server.api.common import CSRF_HEADER, SESSION_COOKIE, Require
from plantguard.server.app import SECURITY_HEADERS, create_app, load_central
from plantguard.store.db import open_engine
from support.central_app import BASE_URL, central_app

GARBAGE = {"malformed": "garbage", "unknown": "pgt_aaaaaaaaaaaa_" + "A" * 43}

# A minimal valid JSON body per request model (checked against the model below).
BODIES = {
    session.Bootstrap: {"secret": "pga_aaaaaaaaaaaa_" + "A" * 43, "username": "root", "password": "x" * 12},
    session.Login: {"username": "nobody", "password": "x"},
    alerts.StateChange: {"state": "open"},
    admin.TokenRequest: {"role": "viewer"},
    admin.UserRequest: {"username": "matrix-user", "password": "p" * 12, "role": "viewer"},
    sensors.EnrolRequest: {"token": "pge_aaaaaaaaaaaa_" + "A" * 43, "name": "n", "csr": "-"},
    sensors.RenewRequest: {"csr": "-"},
    changes.TicketIn: {"site": "A", "ticket": "CHG-RBAC", "plcs": ["10.0.0.1"], "stations": ["10.0.0.2"],
                       "start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"},
}
# What each route must need, written out here rather than read from the route, so that a route
# declaring the wrong permission fails the test instead of moving the expectation with it.
PERMISSION_OF = {
    ("POST", "/api/v1/logout"): "session:self", ("GET", "/api/v1/whoami"): "session:self",
    ("GET", "/api/v1/sites"): "sites:read", ("GET", "/api/v1/sensors"): "sensors:read",
    ("GET", "/api/v1/assets"): "assets:read", ("GET", "/api/v1/assets/{asset_id}"): "assets:read",
    ("GET", "/api/v1/assets/{asset_id}/history"): "assets:read", ("GET", "/api/v1/flows"): "flows:read",
    ("GET", "/api/v1/runs"): "runs:read", ("GET", "/api/v1/baselines"): "baselines:read",
    ("GET", "/api/v1/findings"): "findings:read", ("GET", "/api/v1/alerts"): "alerts:read",
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): "alerts:ack",
    ("POST", "/api/v1/alerts/{alert_id}/state"): "alerts:state",
    ("POST", "/api/v1/baselines/{baseline_id}/accept"): "baselines:accept",
    ("POST", "/api/v1/tokens"): "tokens:manage", ("GET", "/api/v1/tokens"): "tokens:manage",
    ("DELETE", "/api/v1/tokens/{token_id}"): "tokens:manage", ("POST", "/api/v1/users"): "users:manage",
    ("POST", "/api/v1/sensors/{sensor_id}/revoke"): "sensors:manage",
    ("GET", "/api/v1/audit"): "audit:read", ("GET", "/api/v1/audit/verify"): "audit:read",
    ("POST", "/api/v1/sensor/renew"): "sensor:renew", ("POST", "/api/v1/ingest"): "ingest:push",
    ("GET", "/api/v1/changes"): "changes:read", ("POST", "/api/v1/changes"): "changes:write",
}
# The console's pages (cookie sessions; their own journeys are in tests/test_console_browser.py).
PERMISSION_OF |= {
    ("GET", "/"): "sites:read", ("POST", "/logout"): "session:self", ("GET", "/assets"): "assets:read",
    ("GET", "/assets.csv"): "assets:read", ("GET", "/assets/{asset_id}"): "assets:read",
    ("GET", "/zones"): "flows:read", ("GET", "/roadmap"): "runs:read",
    ("GET", "/alerts"): "alerts:read", ("GET", "/alerts/{alert_id}"): "alerts:read",
    ("POST", "/alerts/{alert_id}/acknowledge"): "alerts:ack", ("POST", "/alerts/{alert_id}/state"): "alerts:state",
    ("GET", "/findings"): "findings:read", ("GET", "/sensors"): "sensors:read", ("GET", "/audit"): "audit:read",
    ("GET", "/changes"): "changes:read", ("POST", "/changes"): "changes:write",
}
# Allowed calls whose seeded data make a non-2xx answer the right one: none so far. (Each
# mutating route is called once per allowed role; all of them are idempotent or, for POST /users,
# only admin may call them.)
EXPECTED_OTHER: dict[tuple[str, str, str], int] = {}


def api_routes(app):
    """(method, path, route context) of every APIRoute, as the app serves them."""
    out = []
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute):
            out += [(m, ctx.path, ctx) for m in sorted(ctx.methods)]
    return out


def declared(dependant) -> list[str]:
    """The permissions named by Require dependencies anywhere in a route's dependency tree."""
    found = []
    for dep in dependant.dependencies:
        if isinstance(dep.call, Require):
            found.append(dep.call.permission)
        found += declared(dep)
    return found


@pytest.fixture(scope="module")
def app():
    return create_app(None)          # the route table needs no store


def test_every_route_declares_a_permission_or_is_public(app):
    open_routes, used = [], set()
    for method, path, ctx in api_routes(app):
        perms = declared(ctx.dependant)
        assert len(set(perms)) <= 1, f"{method} {path} declares several permissions: {perms}"
        if perms:
            used.add(perms[0])
            assert path not in roles.PUBLIC, f"{method} {path} is public and yet declares {perms[0]}"
        elif path not in roles.PUBLIC:
            open_routes.append(f"{method} {path}")
    assert not open_routes, f"routes with neither a permission nor a PUBLIC reason: {open_routes}"
    # Routes that are not APIRoutes (FastAPI's own) must be public too: only /openapi.json is.
    others = [ctx.path for ctx in iter_route_contexts(app.routes) if not isinstance(ctx.original_route, APIRoute)]
    assert others and set(others) <= set(roles.PUBLIC), others
    declared_table = {(m, p): declared(ctx.dependant)[0] for m, p, ctx in api_routes(app) if p not in roles.PUBLIC}
    assert declared_table == PERMISSION_OF
    unused = set(roles.PERMISSIONS) - used
    assert not unused, f"permissions no route uses: {sorted(unused)}"


def test_every_public_path_is_served(app):
    served = {path for _, path, _ in api_routes(app)} | {"/openapi.json"}
    assert set(roles.PUBLIC) <= served, set(roles.PUBLIC) - served


def _request(c, method: str, path: str, ctx, headers: dict):
    params = {p.name: c.ids[p.name] for p in ctx.dependant.path_params}
    url = path.format(**params)
    body_field = ctx.body_field
    if body_field is not None:
        model = body_field.field_info.annotation
        body = BODIES[model]
        model.model_validate(body)
        return c.client.request(method, url, json=body, headers=headers)
    if path == "/api/v1/ingest":
        from plantguard.central.envelope import CONTENT_TYPE, encode_batch
        return c.client.request(method, url, content=encode_batch([]), headers={**headers, "content-type": CONTENT_TYPE})
    return c.client.request(method, url, headers=headers)


def test_rbac_matrix(store_url):
    with central_app(store_url) as c:
        routes = [(m, p, ctx) for m, p, ctx in api_routes(c.client.app)
                  if p not in roles.PUBLIC and p.startswith("/api/")]
        for _, _, ctx in routes:
            assert {p.name for p in ctx.dependant.path_params} <= set(c.ids), ctx.path
        wrong, calls = [], 0
        credentials = [(None, {}), *((f"garbage:{k}", {"Authorization": f"Bearer {v}"}) for k, v in GARBAGE.items()),
                       *((role, c.headers(role)) for role in roles.ROLES)]
        for method, path, ctx in routes:
            perm = PERMISSION_OF[method, path]
            for who, headers in credentials:
                r = _request(c, method, path, ctx, headers)
                calls += 1
                if who is None or who.startswith("garbage") or roles.PERMISSIONS[perm].role == roles.SENSOR:
                    ok = r.status_code == 401
                elif not roles.allows(who, perm):
                    ok = r.status_code == 403
                elif (method, path, who) in EXPECTED_OTHER:
                    ok = r.status_code == EXPECTED_OTHER[method, path, who]
                else:
                    ok = 200 <= r.status_code < 300
                if not ok:
                    wrong.append(f"{who or 'none'} {method} {path} ({perm}): {r.status_code} {r.text[:120]}")
        assert not wrong, "\n".join(wrong)
        assert calls == len(routes) * 7
        # The public routes answer whoever asks; health says nothing but that it lives.
        for who, headers in credentials:
            assert c.client.get("/api/v1/health", headers=headers).status_code == 200
            assert c.client.get("/openapi.json", headers=headers).status_code == 200


def _audit_count(central, action: str) -> int:
    with central.sessions() as s:
        return s.scalar(select(func.count()).select_from(audit.AuditRow).where(audit.AuditRow.action == action))


def test_cookie_session_csrf_and_login_limit(store_url, tmp_path):
    state = tmp_path / "server-state"
    secret = run.init(store_url, state, ["127.0.0.1"])
    engine = open_engine(store_url)
    try:
        central = load_central(engine, state)
        with TestClient(create_app(central), base_url=BASE_URL) as client:
            boot = {"secret": secret, "username": "root", "password": "correct horse battery"}
            assert client.post("/api/v1/bootstrap", json=boot).status_code == 201
            assert client.post("/api/v1/bootstrap", json={**boot, "username": "root2"}).status_code == 401
            r = client.post("/api/v1/login", json={"username": "root", "password": boot["password"]})
            assert r.status_code == 200, r.text
            assert SESSION_COOKIE in r.cookies and "httponly" in r.headers["set-cookie"].lower()
            csrf = r.json()["csrf"]
            assert client.get("/api/v1/whoami").json()["name"] == "root"        # GET: no CSRF token needed
            body = {"role": "viewer", "name": "from the console"}
            r = client.post("/api/v1/tokens", json=body)
            assert r.status_code == 403 and "CSRF" in r.json()["detail"]
            assert client.post("/api/v1/tokens", json=body, headers={CSRF_HEADER: "wrong"}).status_code == 403
            r = client.post("/api/v1/tokens", json=body, headers={CSRF_HEADER: csrf})
            assert r.status_code == 201 and r.json()["created_by"] == "user:root"
            assert client.post("/api/v1/logout", headers={CSRF_HEADER: csrf}).status_code == 204
            client.cookies.clear()

            before = _audit_count(central, "login.failed")
            statuses = []
            for _ in range(6):
                r = client.post("/api/v1/login", json={"username": "root", "password": "wrong password"})
                statuses.append(r.status_code)
            assert statuses == [401] * 5 + [429]
            assert 0 < int(r.headers["retry-after"]) <= 300
            # the right password is refused too while the limit holds
            r = client.post("/api/v1/login", json={"username": "root", "password": boot["password"]})
            assert r.status_code == 429
            assert _audit_count(central, "login.failed") - before == 5
            with central.sessions() as s:
                assert audit.verify(s).ok
    finally:
        engine.dispose()


def test_security_headers_on_every_answer(tmp_path):
    with central_app(f"sqlite:///{tmp_path / 'central.db'}") as c:
        answers = {200: c.client.get("/api/v1/health"), 401: c.client.get("/api/v1/assets"),
                   404: c.client.get("/api/v1/assets/999999", headers=c.headers("viewer")),
                   405: c.client.delete("/api/v1/health")}
        for status, r in answers.items():
            assert r.status_code == status
            for name, value in SECURITY_HEADERS.items():
                assert r.headers.get(name) == value, (status, name)
        assert answers[200].headers["x-content-type-options"] == "nosniff"
        assert answers[200].headers["x-frame-options"] == "DENY"


def test_a_scoped_token_sees_only_its_sites(store_url):
    with central_app(store_url) as c:
        h = c.headers("scoped")
        for what in ("assets", "alerts", "findings", "flows", "runs", "baselines", "sensors"):
            r = c.client.get(f"/api/v1/{what}", headers=h)
            assert r.status_code == 200
            body = r.json()
            items = body if isinstance(body, list) else body["items"]
            assert items and {i["site"] for i in items} == {"A"}, what
            everything = c.client.get(f"/api/v1/{what}", headers=c.headers("viewer")).json()
            everything = everything if isinstance(everything, list) else everything["items"]
            assert {i["site"] for i in everything} == {"A", "B"}, what
            assert c.client.get(f"/api/v1/{what}?site=B", headers=h).status_code == 403
            assert c.client.get(f"/api/v1/{what}?site=A", headers=h).status_code == 200
        assert [s["name"] for s in c.client.get("/api/v1/sites", headers=h).json()] == ["A"]
        assert c.client.get(f"/api/v1/assets/{c.ids['asset_id']}", headers=h).status_code == 200
        assert c.client.get(f"/api/v1/assets/{c.site_b['asset_id']}", headers=h).status_code == 404
        assert c.client.get(f"/api/v1/assets/{c.site_b['asset_id']}/history", headers=h).status_code == 404
        # an analyst scoped to A cannot acknowledge B's alert either (and it stays open)
        with c.central.sessions() as s:
            text, _ = admin.create_token(s, "test", "analyst", ["A"], admin.parse_duration("1d"))
            s.commit()
        ha = {"Authorization": f"Bearer {text}"}
        assert c.client.post(f"/api/v1/alerts/{c.site_b['alert_id']}/acknowledge", headers=ha).status_code == 404
        assert c.client.post(f"/api/v1/alerts/{c.ids['alert_id']}/acknowledge", headers=ha).status_code == 200
        states = {a["site"]: a["state"] for a in c.client.get("/api/v1/alerts", headers=c.headers("viewer")).json()["items"]}
        assert states == {"A": "acknowledged", "B": "open"}
