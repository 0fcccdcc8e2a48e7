"""What each console page answers. Reads go through `handoff.ledger.queries`, the same
questions the CLI asks; every page with a table also answers `?format=csv`."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from importlib.resources import files
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from handoff import __version__
from handoff.ledger import queries, second_factor
from handoff.ledger.accounts import audit
from handoff.ledger.config import LedgerConfig
from handoff.ledger.console import find
from handoff.ledger.console.device_custody import DeviceCustody, placed
from handoff.ledger.console.fleet import STATES, FleetView, Rules
from handoff.ledger.console.forms import checked_form, current_login, field
from handoff.ledger.console.histories import ENDINGS, HistoryView
from handoff.ledger.console.listing import Page, page_number, page_of, view_url
from handoff.ledger.console.logins import Accounts, Login, Sessions, Throttle, new_token
from handoff.ledger.console.tables import csv_response
from handoff.ledger.console.text import at, person, shown
from handoff.ledger.console.timeline import Picture, picture
from handoff.ledger.database import busy, write_first
from handoff.ledger.registers import Asset, StaffMember, assets_of, names_of
from handoff.ledger.schema import audit_log, devices
from handoff.timefmt import rfc3339

DEVICE_WINDOW_S: Final = 7 * 86400
STAFF_WINDOW_S: Final = 30 * 86400
T = TypeVar("T")
SignOut = Callable[[Request, str], Awaitable[Response]]
AUDIT_ROWS: Final = 500
WRITE_TRIES: Final = 5
MAX_QUERY: Final = 255
MAX_ROW_ID: Final = 2**63 - 1
log = logging.getLogger("handoff.ledger.console")


def when(epoch: float | None) -> str:
    """Times on pages: RFC 3339 UTC to the second (the CSV keeps the milliseconds)."""
    return "" if epoch is None else rfc3339(epoch)[:19] + "Z"


def csv_url(request: Request) -> str:
    """This page's address asking for its table as CSV."""
    return f"{request.url.path}?{urlencode({**request.query_params, 'format': 'csv'})}"


def zone(name: str | None) -> tzinfo:
    """The browser's time zone (an IANA name its script sends as `tz`), UTC without one."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HTTPException(400, f"tz: {name[:64]!r} is not a time zone") from None


def instant(text: str | None, field: str, local: tzinfo = UTC) -> float | None:
    """An RFC 3339 time, or what a browser's datetime-local field sends: a time without offset
    is read in the browser's zone `local` (UTC without its script)."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HTTPException(400, f"{field}: {text[:64]!r} is not a time; use e.g. 2027-01-15T08:00:00Z") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=local)).timestamp()


class Site:
    """What every page shares: the database, the settings, the clock, logins, the templates."""

    def __init__(self, config: LedgerConfig, engine: Engine, clock: Callable[[], float]) -> None:
        self.engine, self.clock = engine, clock
        self.settings = config.ledger
        self.secure = not config.console.allow_insecure
        prefix = "__Host-" if self.secure else ""
        self.cookie = f"{prefix}handoff-session"
        self.login_cookie = f"{prefix}handoff-login"
        self.sessions = Sessions(clock)
        self.accounts = Accounts()
        self.throttle = Throttle(clock)
        self.templates = Jinja2Templates(directory=str(files("handoff.ledger.console") / "templates"))
        self.templates.env.filters["when"] = when
        self.templates.env.filters["shown"] = shown
        self.templates.env.filters["at"] = at
        self.templates.env.globals["person"] = person
        self.templates.env.globals["version"] = __version__
        self.templates.env.globals["csv_url"] = csv_url

    def read(self, question: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            return question(conn)

    def write(self, change: Callable[[Connection], T]) -> T:
        """`change` in a transaction that holds the write lock from its start (see
        `write_first`), tried again, a little later each time, while SQLite stays busy."""
        tries = 0
        while True:
            try:
                with write_first(self.engine) as conn:
                    return change(conn)
            except OperationalError as exc:
                tries += 1
                if not busy(exc) or tries == WRITE_TRIES:
                    raise
                time.sleep(0.05 * 2**tries)

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        login: Login | None = getattr(request.state, "login", None)
        return self.templates.TemplateResponse(request, name, {"login": login, **context}, status_code=status_code)

    def set_cookie(self, response: Response, name: str, value: str) -> None:
        """A browser-session cookie: gone when the browser closes, and void on the server anyway
        once the session it names ends."""
        response.set_cookie(name, value, path="/", secure=self.secure, httponly=True, samesite="strict")

    def forget_cookie(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="strict")


def _csv(request: Request) -> bool:
    return request.query_params.get("format") == "csv"


def local_target(target: str | None) -> str:
    """Where to go after login: a path on this console only, never another site."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/fleet"


class Pages:
    def __init__(self, site: Site, sign_out: SignOut | None = None) -> None:
        """`sign_out`: where a login made through the OpenID provider is sent on logout, to
        end its session there too (oidc.py)."""
        self._site, self._sign_out = site, sign_out

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/fleet", status_code=303)

    async def healthz(self, request: Request) -> Response:
        try:
            await run_in_threadpool(self._site.read, lambda conn: conn.execute(text("SELECT 1")))
        except SQLAlchemyError:
            return PlainTextResponse("database unreachable\n", status_code=503)
        return PlainTextResponse("ok\n")

    async def login_form(self, request: Request, problem: str = "", status_code: int = 200) -> Response:
        """The form, with the token its POST must return. A browser that already has one keeps
        it: several tabs, or a stray request that lands here, must not void each other's forms."""
        given = request.cookies.get(self._site.login_cookie, "")
        token = given if len(given) == len(new_token()) else new_token()
        response = self._site.page(
            request,
            "login.html",
            status_code,
            csrf=token,
            next=local_target(request.query_params.get("next")),
            problem=problem,
        )
        self._site.set_cookie(response, self._site.login_cookie, token)
        return response

    async def login(self, request: Request) -> Response:
        site = self._site
        form = await checked_form(request, request.cookies.get(site.login_cookie))
        name, password = field(form, "name"), str(form.get("password") or "")
        address = request.client.host if request.client else "unknown"
        now = site.clock()
        wait = site.throttle.wait_s(name, address)
        if wait > 0:
            await run_in_threadpool(site.write, lambda conn: audit(conn, now, name, "login_throttled", address))
            minutes = max(1, round(wait / 60))
            response = await self.login_form(request, f"Too many failed logins. Try again in {minutes} minute(s).", 429)
            response.headers["retry-after"] = str(int(wait) + 1)
            return response

        stored = await run_in_threadpool(site.read, lambda conn: site.accounts.stored(conn, name))
        verdict = await run_in_threadpool(site.accounts.verify, stored, password)

        def record(conn: Connection) -> tuple[str, str] | None:
            if verdict.role is None:
                audit(conn, now, name, "login_failed", address)
                return None
            if not second_factor.passes(conn, now, name, field(form, "code")):
                audit(conn, now, name, "login_failed", f"{address} (one-time code)")
                return None
            if verdict.rehashed:
                site.accounts.rehash(conn, name, verdict.rehashed)
            audit(conn, now, name, "login", address)
            return site.sessions.begin(conn, name, request.cookies.get(site.cookie))

        begun = await run_in_threadpool(site.write, record)
        if begun is None:
            site.throttle.failed(name, address)
            return await self.login_form(request, "Wrong name, password or one-time code.", 401)
        site.throttle.succeeded(name)
        token, _ = begun
        response = RedirectResponse(local_target(field(form, "next")), status_code=303)
        site.set_cookie(response, site.cookie, token)
        site.forget_cookie(response, site.login_cookie)
        return response

    async def logout(self, request: Request) -> Response:
        site, login = self._site, current_login(request)
        await checked_form(request, login.csrf)
        token = request.cookies.get(site.cookie, "")

        def end(conn: Connection) -> str | None:
            id_token = site.sessions.end(conn, token)
            audit(conn, site.clock(), login.user, "logout", "")
            return id_token

        id_token = await run_in_threadpool(site.write, end)
        if id_token and self._sign_out is not None:
            response = await self._sign_out(request, id_token)
        else:
            response = RedirectResponse("/login", status_code=303)
        site.forget_cookie(response, site.cookie)
        return response

    async def fleet(self, request: Request) -> Response:
        """Every device, filtered (site, state, overdue/offline, text), sorted and paged in SQL
        (fleet.py). The counts are of the site and text chosen, before the state: they add up
        to the devices there, each a link to its rows."""
        site, settings, params = self._site, self._site.settings, request.query_params
        view = FleetView.of(params)
        rules = Rules(site.clock(), settings.overdue_after_s, settings.offline_after_s)
        if _csv(request):
            everything = await run_in_threadpool(site.read, lambda conn: view.rows(conn, rules, None))
            return csv_response(
                "fleet",
                ["device_id", "site", "state", "staff_id", "since", "appliance", "last_heard", "overdue"],
                (
                    [
                        r.device_id,
                        r.site,
                        r.state,
                        r.staff_id,
                        rfc3339(r.since) if r.since is not None else None,
                        "online" if r.online else "offline",
                        rfc3339(r.last_heard),
                        "yes" if r.overdue else "no",
                    ]
                    for r in everything
                ),
            )

        def read(conn: Connection) -> tuple[Page[queries.DeviceNow], dict[str, int], list[str], Registers]:
            number, pages = page_number(params.get("page"), total := view.total(conn, rules))
            rows = view.rows(conn, rules, number)
            return (
                Page(rows, number, pages, total),
                view.counts(conn, rules),
                queries.sites(conn),
                Registers.of(conn, rows),
            )

        paged, counts, sites, registers = await run_in_threadpool(site.read, read)
        return site.page(
            request,
            "fleet.html",
            rows=paged.rows,
            paged=paged,
            counts=counts,
            sites=sites,
            states=STATES,
            view=view.params,
            url=lambda **changes: view_url("/fleet", view.params, **changes),
            order=view.order,
            descending=view.descending,
            now=rules.now,
            names=registers.names,
            assets=registers.assets,
        )

    async def device(self, request: Request) -> Response:
        """The device now, its timeline over a window, and its custody intervals in that window
        filtered, sorted and paged in SQL, from the intervals kept at ingest (device_custody.py)."""
        site, settings, params = self._site, self._site.settings, request.query_params
        device_id = request.path_params["device_id"]
        now = site.clock()
        since, until, view = _window(params, now, DEVICE_WINDOW_S)
        if _csv(request):
            every = await run_in_threadpool(
                site.read,
                lambda conn: (
                    DeviceCustody.of(conn, device_id, since, until, view).rows(conn, None)
                    if find.device_known(conn, device_id)
                    else None
                ),
            )
            if every is None:
                raise _no_device(device_id)
            return csv_response(
                f"{device_id}-custody",
                ["device_id", "staff_id", "from", "to", "ended_by", "sessions", "logoffs"],
                (_interval_row(held) for held in every),
            )

        def read(conn: Connection) -> DevicePage | None:
            if not find.device_known(conn, device_id):
                return None
            found = queries.device(conn, device_id, now, settings.overdue_after_s, settings.offline_after_s)
            kept = DeviceCustody.of(conn, device_id, since, until, view)
            total = kept.total(conn)
            number, pages = page_number(params.get("page"), total)
            paged = Page(kept.rows(conn, number), number, pages, total)
            drawn = since if "since" in params else _zoomed(kept.first_start(conn), since, until)
            custody, sessions = placed(conn, kept, drawn)
            holders = {held.staff_id for held in paged.rows}
            if found is not None and found.staff_id:
                holders.add(found.staff_id)
            return DevicePage(
                found,
                paged,
                drawn,
                picture(device_id, drawn, until, custody, sessions),
                queries.flags(conn, device_id=device_id),
                names_of(conn, holders),
                assets_of(conn, {device_id}).get(device_id),
            )

        answer = await run_in_threadpool(site.read, read)
        if answer is None:
            raise _no_device(device_id)
        path = f"/devices/{quote(device_id, safe='')}"
        return site.page(
            request,
            "device.html",
            device_id=device_id,
            device=answer.found,
            picture=answer.picture,
            paged=answer.paged,
            view=view,
            url=lambda **changes: view_url(path, view.params, **changes),
            endings=ENDINGS,
            flags=answer.flags,
            since=when(answer.drawn),
            until=when(until),
            names=answer.names,
            asset=answer.asset,
        )

    async def staff(self, request: Request) -> Response:
        """Who the staff member is, what they hold now, and the devices they held in a window,
        filtered, sorted and paged (histories.py)."""
        site, params = self._site, request.query_params
        staff_id = request.path_params["staff_id"]
        since, until, view = _window(params, site.clock(), STAFF_WINDOW_S)

        def read(
            conn: Connection,
        ) -> tuple[list[str], list[queries.Interval], StaffMember | None, dict[str, Asset]] | None:
            if not find.staff_known(conn, staff_id):
                return None
            held = queries.holding(conn, staff_id)
            member = names_of(conn, {staff_id}).get(staff_id)
            intervals = queries.history(conn, staff_id=staff_id, since=since, until=until)
            return held, intervals, member, assets_of(conn, {held.device_id for held in intervals})

        answer = await run_in_threadpool(site.read, read)
        if answer is None:
            raise HTTPException(404, f"no such staff member: {staff_id[:64]!r} is not in the ledger nor the directory")
        held, intervals, member, assets = answer

        def words(interval: queries.Interval) -> str:
            asset = assets.get(interval.device_id)
            return f"{interval.device_id} {asset.asset_tag if asset else ''}".lower()

        chosen = view.chosen(intervals, words)
        if _csv(request):
            return csv_response(
                f"{staff_id}-history",
                ["device_id", "staff_id", "from", "to", "ended_by", "sessions", "logoffs"],
                (_interval_row(interval) for interval in chosen),
            )
        path = f"/staff/{quote(staff_id, safe='')}"
        return site.page(
            request,
            "staff.html",
            staff_id=staff_id,
            member=member,
            held=held,
            paged=page_of(chosen, params.get("page")),
            view=view,
            url=lambda **changes: view_url(path, view.params, **changes),
            endings=ENDINGS,
            assets=assets,
            since=when(since),
            until=when(until),
        )

    async def audit(self, request: Request) -> Response:
        """The console's own trail, for the security officer: admins only."""
        if not current_login(request).admin:
            raise HTTPException(403, "only an admin reads the console's audit trail")
        query = select(audit_log).order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(AUDIT_ROWS)
        entries = await run_in_threadpool(self._site.read, lambda conn: conn.execute(query).all())
        if _csv(request):
            return csv_response(
                "console-audit",
                ["at", "actor", "action", "detail"],
                ([rfc3339(e.at), e.actor, e.action, e.detail] for e in entries),
            )
        return self._site.page(request, "audit.html", entries=entries, limit=AUDIT_ROWS)

    async def who(self, request: Request) -> Response:
        site = self._site
        device_id = (request.query_params.get("device") or "").strip()
        at = instant(request.query_params.get("at"), "at", zone(request.query_params.get("tz")))

        def read(conn: Connection) -> tuple[list[str], queries.Holder | None, bool]:
            known = list(conn.execute(select(devices.c.device_id).order_by(devices.c.device_id)).scalars())
            exists = not device_id or find.device_known(conn, device_id)
            return known, queries.who(conn, device_id, at) if exists and device_id and at is not None else None, exists

        known, holder, exists = await run_in_threadpool(site.read, read)
        if not exists:
            raise HTTPException(404, f"no such device: {device_id[:64]!r} is not in the ledger")
        if _csv(request) and holder is not None:
            return csv_response(
                f"{device_id}-who",
                ["device_id", "at", "staff_id", "since", "logged_in", "session_id"],
                [
                    [
                        holder.device_id,
                        rfc3339(holder.at),
                        holder.staff_id,
                        rfc3339(holder.since) if holder.since is not None else None,
                        "true" if holder.logged_in else "false",
                        holder.session_id,
                    ]
                ],
            )
        return site.page(request, "who.html", known=known, device_id=device_id, at_utc=when(at), holder=holder)


@dataclass(frozen=True)
class DevicePage:
    """What a device page shows."""

    found: queries.DeviceNow | None
    paged: Page[queries.Interval]
    drawn: float
    """Where the timeline starts: the window's start, or where something first happened in a
    default window."""
    picture: Picture
    flags: list[queries.Flag]
    names: dict[str, StaffMember]
    asset: Asset | None


@dataclass(frozen=True)
class Registers:
    """The directory's names and the asset register's records of the devices a page shows."""

    names: dict[str, StaffMember]
    assets: dict[str, Asset]

    @classmethod
    def of(cls, conn: Connection, rows: Sequence[queries.DeviceNow]) -> Registers:
        staff_ids = {row.staff_id for row in rows if row.staff_id}
        return cls(names_of(conn, staff_ids), assets_of(conn, {row.device_id for row in rows}))


def _window(params: Mapping[str, str], now: float, default_s: float) -> tuple[float, float, HistoryView]:
    """A history's window from its URL (typed in the browser's zone, or UTC from a link), and
    the view that keeps it in UTC: a window left open stays open in the view's links."""
    local = zone(params.get("tz"))
    asked_until = instant(params.get("until"), "until", local)
    asked_since = instant(params.get("since"), "since", local)
    until = asked_until or now
    since = asked_since or until - default_s
    if since >= until:
        raise HTTPException(400, "since: must be before until")
    view = HistoryView.of(params, when(asked_since), when(asked_until))
    return since, until, view


def _no_device(device_id: str) -> HTTPException:
    return HTTPException(404, f"no such device: {device_id[:64]!r} is not in the ledger nor the asset register")


def _zoomed(first: float | None, since: float, until: float) -> float:
    """The default window's drawn start, narrowed to where something happened: a cart first
    used an hour ago is not a sliver at the right end of a week."""
    if first is None or first <= since:
        return since
    return max(since, first - max(1.0, (until - first) * 0.05))


def _interval_row(held: queries.Interval) -> list[Any]:
    return [
        held.device_id,
        held.staff_id,
        rfc3339(held.start),
        rfc3339(held.end) if held.end is not None else None,
        held.ended_by,
        held.sessions,
        held.logoffs,
    ]


async def error_page(request: Request, exc: Exception) -> Response:
    """HTTP errors as a page a person can read (and act on), not a bare status line."""
    assert isinstance(exc, HTTPException)
    site: Site = request.app.state.site
    return site.page(request, "error.html", exc.status_code, status=exc.status_code, detail=exc.detail)


async def unavailable_page(request: Request, exc: Exception) -> Response:
    """The database refused or did not answer (stopped, or SQLite busy past every retry): the
    user may try again; the log says why in one line."""
    log.warning("%s %s: database unavailable: %s", request.method, request.url.path, getattr(exc, "orig", exc))
    site: Site = request.app.state.site
    detail = "The ledger's database did not answer. Try again in a moment."
    response = site.page(request, "error.html", 503, status=503, detail=detail)
    response.headers["retry-after"] = "5"
    return response


async def failure_page(request: Request, exc: Exception) -> Response:
    """Anything else that went wrong: a page without the details (the server's log has them)."""
    site: Site = request.app.state.site
    detail = "Something went wrong in the console; its log has the details."
    return site.page(request, "error.html", 500, status=500, detail=detail)
