"""What every console page shares: the signed-in user (the same cookie session and roles as the
API; a form post also carries the session's CSRF token), the templates, the layout's navigation,
paging and the site filter.

`ConsoleRequire` is a `Require`: a page declares its permission exactly as an API route does, and
the route-table test sees it. Without a session a page redirects to the log-in form; a role
without the permission gets a 403 page (and the page's actions are hidden from it: `can()`)."""
from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote, urlencode

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from plantguard import __version__
from plantguard.server import auth, roles
from plantguard.server import tables as t
from plantguard.server.api.common import SAFE_METHODS, SESSION_COOKIE, Principal, Require, central

PAGE_SIZE = 100
NAV = (("/", "Overview", "sites:read"), ("/assets", "Assets", "assets:read"), ("/zones", "Zones", "flows:read"),
       ("/alerts", "Alerts", "alerts:read"), ("/findings", "Findings", "findings:read"),
       ("/changes", "PLC changes", "changes:read"), ("/roadmap", "Roadmap", "runs:read"),
       ("/sensors", "Sensors", "sensors:read"), ("/audit", "Audit", "audit:read"))


class LoginNeeded(Exception):
    def __init__(self, next_url: str):
        self.next_url = next_url


class ConsoleRequire(Require):
    async def __call__(self, request: Request) -> Principal:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise LoginNeeded(_here(request))
        with central(request).sessions() as s:
            ws = auth.find_session(s, cookie)
            user = s.get(auth.User, ws.user_id) if ws is not None else None
            if user is None or user.disabled:
                raise LoginNeeded(_here(request))
            csrf = ws.csrf
            who = Principal("user", str(user.id), user.role, tuple(user.sites or ()), user.username)
        if request.method not in SAFE_METHODS:
            form = await request.form()
            if not auth.check_csrf(ws, form.get("csrf")):
                raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        if not roles.allows(who.role, self.permission):
            raise HTTPException(403, f"your role ({who.role}) may not {roles.PERMISSIONS[self.permission].description}")
        request.state.csrf = csrf
        return who


def page_requires(permission: str) -> ConsoleRequire:
    return ConsoleRequire(permission)


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


@lru_cache(maxsize=1)
def templates():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
    from plantguard.util.sanitize import jinja_finalize
    # device-supplied text is hostile: control characters made visible (finalize), then HTML-escaped
    env = Environment(loader=PackageLoader("plantguard.server.console", "templates"),
                      autoescape=select_autoescape(default=True), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, finalize=jinja_finalize)
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M") if d else "—"
    return env


def render(request: Request, who: Principal | None, template: str, status: int = 200, **ctx) -> HTMLResponse:
    nav = [(href, label) for href, label, perm in NAV if who is not None and roles.allows(who.role, perm)]
    html = templates().get_template(template).render(
        who=who, nav=nav, path=request.url.path, csrf=getattr(request.state, "csrf", ""), version=__version__,
        can=lambda perm: who is not None and roles.allows(who.role, perm), **ctx)
    return HTMLResponse(html, status_code=status)


def sites_for(session, who: Principal) -> list[t.Site]:
    q = select(t.Site).order_by(t.Site.name)
    if who.sites:
        q = q.where(t.Site.name.in_(who.sites))
    return list(session.scalars(q))


def link(path: str, params: dict, **change) -> str:
    """`path` with the current filters, some changed (None drops one)."""
    merged = {**params, **change}
    kept = {k: v for k, v in merged.items() if v not in (None, "")}
    return path + ("?" + urlencode(kept) if kept else "")


def page_window(offset: int, total: int, size: int = PAGE_SIZE) -> dict:
    return {"offset": offset, "size": size, "total": total, "first": offset + 1 if total else 0,
            "last": min(offset + size, total), "prev": max(0, offset - size) if offset > 0 else None,
            "next": offset + size if offset + size < total else None}
