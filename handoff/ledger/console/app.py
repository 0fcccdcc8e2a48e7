"""The console's ASGI application: routes, the login gate, the security headers."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.resources import files
from urllib.parse import quote

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from handoff.ledger.config import LedgerConfig
from handoff.ledger.console.enrolment import EnrolmentPages
from handoff.ledger.console.headers import SecurityHeaders
from handoff.ledger.console.logins import Login, Sessions
from handoff.ledger.console.pages import Pages, Site, error_page
from handoff.ledger.enrolment import recorder_for

PUBLIC = ("/login", "/healthz", "/static/")
REFRESH_HEADER = "x-handoff-refresh"
"""Sent by the fleet page's own refresh, which is not the user's activity."""


class RequireLogin:
    """Every request but those to PUBLIC paths needs a live session: without one, pages send the
    browser to /login (and back afterwards); with one, the endpoint finds it in `request.state.login`."""

    def __init__(self, app: ASGIApp, *, site: Site, sessions: Sessions) -> None:
        self._app, self._site, self._sessions = app, site, sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(PUBLIC):
            await self._app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        token = connection.cookies.get(self._site.cookie)
        login = await run_in_threadpool(self._find, token, REFRESH_HEADER not in connection.headers) if token else None
        if login is None:
            wanted = scope["path"] + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
            response = RedirectResponse(f"/login?next={quote(wanted, safe='')}", status_code=303)
            if token:
                self._site.forget_cookie(response, self._site.cookie)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["login"] = login
        await self._app(scope, receive, send)

    def _find(self, token: str, touch: bool) -> Login | None:
        with self._site.engine.begin() as conn:
            return self._sessions.find(conn, token, touch=touch)


def create_app(config: LedgerConfig, engine: Engine, clock: Callable[[], float] = time.time) -> Starlette:
    site = Site(config, engine, clock)
    site.templates.env.globals["allow_untrusted"] = config.ledger.allow_untrusted
    pages = Pages(site)
    enrolment = EnrolmentPages(site, recorder_for(config))
    routes = [
        Route("/", pages.home),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/healthz", pages.healthz),
        Route("/fleet", pages.fleet),
        Route("/devices/{device_id}", pages.device),
        Route("/staff/{staff_id}", pages.staff),
        Route("/exceptions", pages.exceptions),
        Route("/exceptions/{flag_id:int}/acknowledge", pages.acknowledge, methods=["POST"]),
        Route("/who", pages.who),
        Route("/audit", pages.audit),
        Route("/enrolment", enrolment.page),
        Route("/enrolment/{device_id}", enrolment.enrol, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(files("handoff.ledger.console") / "static")), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders, hsts=site.secure),
        Middleware(RequireLogin, site=site, sessions=site.sessions),
    ]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: error_page})
    app.state.site = site
    return app
