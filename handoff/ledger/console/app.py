"""The console's ASGI application: routes, the login gate, the security headers."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from importlib.resources import files
from typing import Any, Final
from urllib.parse import quote

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from handoff.ledger.config import LedgerConfig
from handoff.ledger.console.admin import AccountPages
from handoff.ledger.console.enrolment import EnrolmentPages
from handoff.ledger.console.exception_pages import ExceptionPages
from handoff.ledger.console.find_pages import FindPages
from handoff.ledger.console.headers import SecurityHeaders
from handoff.ledger.console.logins import Login, Sessions
from handoff.ledger.console.oidc import OidcSignIn
from handoff.ledger.console.own_account import OwnAccountPages
from handoff.ledger.console.pages import Pages, Site, error_page, failure_page, unavailable_page
from handoff.ledger.console.report_pages import ReportPages
from handoff.ledger.console.review_pages import ReviewPages
from handoff.ledger.enrolment import recorder_for
from handoff.ledger.keys import audit_keys

PUBLIC = ("/login", "/healthz", "/static/")
MAX_BODY: Final = 16 * 1024
"""Every form the console has fits in a few KB: a larger body is refused (413) before it is
read, so nothing is buffered or spooled to disk for a request that will be refused anyway."""
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
        return self._site.write(lambda conn: self._sessions.find(conn, token, touch=touch))


class Console(Starlette):
    """Starlette with the security headers outermost: its own server-error and body-limit
    middleware answer outside the user middleware, and their pages need the headers too."""

    def __init__(self, *, hsts: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._hsts = hsts

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack(), hsts=self._hsts)


def settle_for_serving() -> None:
    """Called once before the console serves: what exists by then (modules, tables, the
    application) lives as long as the process, so it leaves the cyclic garbage collector's
    generations (`gc.freeze`). A page that builds thousands of short-lived objects, such as a
    busy device's week, then no longer pays for the collector walking all of those again; it
    showed as a third of that page's CPU time (bench/console_pages.py)."""
    gc.collect()
    gc.freeze()


def create_app(config: LedgerConfig, engine: Engine, clock: Callable[[], float] = time.time) -> Console:
    site = Site(config, engine, clock)
    site.templates.env.globals["allow_untrusted"] = config.ledger.allow_untrusted
    site.templates.env.globals["sign_in_with"] = config.oidc.name if config.oidc else None
    oidc = OidcSignIn(site, config.oidc) if config.oidc else None
    sign_in = oidc.routes() if oidc else []
    pages = Pages(site, oidc.sign_out if oidc else None)
    account_pages = AccountPages(site)
    own_account = OwnAccountPages(site)
    find_pages = FindPages(site)
    exception_pages = ExceptionPages(site)
    review_pages = ReviewPages(site)
    report_pages = ReportPages(site)
    enrolment = EnrolmentPages(site, recorder_for(config, audit_keys(config)))
    routes = [
        Route("/", pages.home),
        Route("/login", pages.login_form, methods=["GET"], name="login"),
        Route("/login", pages.login, methods=["POST"]),
        *sign_in,
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/healthz", pages.healthz),
        Route("/fleet", pages.fleet),
        Route("/devices/{device_id}", pages.device),
        Route("/staff", find_pages.staff_index),
        Route("/staff/{staff_id}", pages.staff),
        Route("/search", find_pages.search),
        Route("/exceptions", exception_pages.listing),
        Route("/exceptions/acknowledge", exception_pages.acknowledge_many, methods=["POST"]),
        Route("/exceptions/{flag_id}/acknowledge", exception_pages.acknowledge_one, methods=["POST"]),
        Route("/exceptions/{flag_id}/review", review_pages.page, methods=["GET"]),
        Route("/exceptions/{flag_id}/review", review_pages.close, methods=["POST"]),
        Route("/report", report_pages.page),
        Route("/exceptions/{flag_id}", exception_pages.details),
        Route("/who", pages.who),
        Route("/audit", pages.audit),
        Route("/users", account_pages.users),
        Route("/users/{name}", account_pages.change, methods=["POST"]),
        Route("/account", own_account.page),
        Route("/account/totp", own_account.start, methods=["POST"]),
        Route("/account/totp/confirm", own_account.confirm, methods=["POST"]),
        Route("/enrolment", enrolment.page),
        Route("/enrolment/{device_id}", enrolment.enrol, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(files("handoff.ledger.console") / "static")), name="static"),
    ]
    middleware = [Middleware(RequireLogin, site=site, sessions=site.sessions)]
    if config.console.trusted_proxies:
        middleware.insert(0, Middleware(ProxyHeadersMiddleware, trusted_hosts=config.console.trusted_proxies))
    app = Console(
        hsts=site.secure,
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: error_page, SQLAlchemyError: unavailable_page, Exception: failure_page},
        max_body_size=MAX_BODY,
    )
    app.state.site = site
    return app
