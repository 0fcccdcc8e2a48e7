"""The signed-in person's own account page (`/account`): a local account turns on a TOTP second
factor here. The secret is shown as text and as a QR code drawn on the server as SVG (segno; no
script, nothing fetched from elsewhere), is pending until a code from it is confirmed, and the
recovery codes are shown once, on the page that confirms it. Starting it asks for the password
again: a session left open on a ward PC must not let a passer-by tie the account to their phone."""

from __future__ import annotations

import segno
from markupsafe import Markup
from sqlalchemy import Connection, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from handoff.errors import UsageError
from handoff.ledger import accounts, second_factor
from handoff.ledger.console.forms import checked_form, current_login, field
from handoff.ledger.console.pages import Site
from handoff.ledger.schema import users


def qr_code(uri: str) -> Markup:
    """The otpauth:// address as an inline SVG QR code, dark on light whatever the page's colours."""
    svg = segno.make(uri, error="m").svg_inline(scale=4, border=4, dark="#000", light="#fff", title="QR code to scan")
    return Markup(svg)  # noqa: S704 (segno's own SVG of a URI it encoded, no user text)


class OwnAccountPages:
    def __init__(self, site: Site) -> None:
        self._site = site

    async def page(self, request: Request, problem: str = "", status: int = 200) -> Response:
        login = current_login(request)

        def read(conn: Connection) -> tuple[str, bool]:
            row = conn.execute(select(users.c.source, users.c.totp_secret).where(users.c.name == login.user)).one()
            return str(row.source), row.totp_secret is not None

        source, enrolled = await run_in_threadpool(self._site.read, read)
        return self._site.page(
            request, "account.html", status, source=source, enrolled=enrolled, local=accounts.LOCAL, problem=problem
        )

    async def start(self, request: Request) -> Response:
        """A new pending secret, shown with the form that confirms it, once the password is given again."""
        login, site = current_login(request), self._site
        form = await checked_form(request, login.csrf)
        stored = await run_in_threadpool(site.read, lambda conn: site.accounts.stored(conn, login.user))
        verdict = await run_in_threadpool(site.accounts.verify, stored, field(form, "password"))
        if verdict.role is None:
            return await self.page(request, "That password is not right: two-step login was not changed.", 403)
        try:
            secret = await run_in_threadpool(self._site.write, lambda conn: second_factor.propose(conn, login.user))
        except UsageError as exc:
            raise HTTPException(403, str(exc)) from None
        return self._enrolment(request, secret, "")

    async def confirm(self, request: Request) -> Response:
        login, site = current_login(request), self._site
        form = await checked_form(request, login.csrf)
        now = site.clock()

        def confirmed(conn: Connection) -> tuple[list[str] | None, str | None]:
            """The recovery codes if the code matched, else the secret still pending (to show again)."""
            codes = second_factor.confirm(conn, now, login.user, field(form, "code"))
            return codes, second_factor.pending(conn, login.user)

        codes, secret = await run_in_threadpool(site.write, confirmed)
        if codes is not None:
            return site.page(request, "recovery_codes.html", codes=codes)
        if secret is None:
            raise HTTPException(400, "no second factor is being set up for your account; start again")
        return self._enrolment(request, secret, "That code does not match. Type the code the app shows now.", 400)

    def _enrolment(self, request: Request, secret: str, problem: str, status: int = 200) -> Response:
        uri = second_factor.uri(current_login(request).user, secret)
        grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
        return self._site.page(request, "totp_enrol.html", status, secret=grouped, qr=qr_code(uri), problem=problem)
