"""Log-in and log-out forms, the stylesheet, and how the console answers errors: a page, not JSON
(a missing session sends the browser to the log-in form and back)."""
from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from plantguard.server import auth
from plantguard.server.api.common import SESSION_COOKIE, Principal, central, client_label
from plantguard.server.console.base import LoginNeeded, page_requires, render
from plantguard.store.db import begin_write

router = APIRouter(include_in_schema=False)


def _safe_next(url: str) -> str:
    """Only a path on this server: never an open redirect."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


@router.get("/static/console.css")
def stylesheet():
    css = files("plantguard.server.console").joinpath("static/console.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/login")
def login_form(request: Request, next: str = "/"):
    return render(request, None, "login.html.j2", title="Log in", next=_safe_next(next), error=None)


@router.post("/login")
def login(request: Request, username: str = Form(..., max_length=120), password: str = Form(..., max_length=1000),
          next: str = Form("/")):
    from plantguard.server.api.session import LoginRefused, set_session_cookie, sign_in
    c = central(request)
    with c.sessions() as s:
        begin_write(s)
        try:
            cookie, _, _ = sign_in(s, c.logins, client_label(request), username, password)
        except LoginRefused as exc:
            error = (f"Too many failed log-ins: try again in {exc.wait} s." if exc.status == 429
                     else "Wrong user name or password.")
            return render(request, None, "login.html.j2", status=exc.status, title="Log in", next=_safe_next(next),
                          error=error)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(response, cookie)
    return response


@router.post("/logout")
def logout(request: Request, who: Principal = Depends(page_requires("session:self"))):
    with central(request).sessions() as s:
        row = auth.find_session(s, request.cookies.get(SESSION_COOKIE, ""))
        if row is not None:
            s.delete(row)
            s.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def install(app) -> None:
    """The console's error pages: log-in redirect, 403/404 as pages for non-API paths."""
    @app.exception_handler(LoginNeeded)
    async def _login(request: Request, exc: LoginNeeded):
        from urllib.parse import quote
        return RedirectResponse(f"/login?next={quote(exc.next_url, safe='/')}", status_code=303)

    api_handler = app.exception_handlers.get(StarletteHTTPException)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
            from fastapi.exception_handlers import http_exception_handler
            return await (api_handler or http_exception_handler)(request, exc)
        titles = {403: "Not allowed", 404: "Not found"}
        return render(request, None, "error.html.j2", status=exc.status_code,
                      title=titles.get(exc.status_code, "Error"), message=str(exc.detail))
