"""The admin's accounts page (`/users`): the same changes as `handoff ledger users`, and turning
off a person's second factor (a lost phone), audited under the admin's name. An admin cannot
disable or demote their own account, so the console is never left without one by a slip."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from handoff.errors import UsageError
from handoff.ledger import accounts, second_factor
from handoff.ledger.console.forms import checked_form, current_login, field
from handoff.ledger.console.pages import Site
from handoff.ledger.roles import ROLES


class AccountPages:
    def __init__(self, site: Site) -> None:
        self._site = site

    async def users(self, request: Request) -> Response:
        if not current_login(request).admin:
            raise HTTPException(403, "only an admin manages accounts")
        found = await run_in_threadpool(self._site.read, accounts.listed)
        done = request.query_params.get("done", "")
        return self._site.page(request, "users.html", accounts=found, roles=ROLES, done=done[:200])

    async def change(self, request: Request) -> Response:
        site, login = self._site, current_login(request)
        form = await checked_form(request, login.csrf)
        if not login.admin:
            raise HTTPException(403, "only an admin manages accounts")
        name, action = request.path_params["name"], field(form, "action")
        if name == login.user and action in ("disable", "role"):
            raise HTTPException(403, "another admin must disable or demote your own account")
        now = site.clock()
        if action == "reset":
            password = str(form.get("password") or "")
            problem = accounts.password_problem(password)
            if problem:
                raise HTTPException(400, problem)
            hashed = await run_in_threadpool(site.accounts.hash, password)
            change = lambda conn: accounts.reset(conn, now, login.user, name, hashed)  # noqa: E731
            said = f"{name} has a new password; their sessions are ended"
        elif action == "role":
            role = field(form, "role")
            change = lambda conn: accounts.set_role(conn, now, login.user, name, role)  # noqa: E731
            said = f"{name} is now {role}"
        elif action == "totp_reset":
            change = lambda conn: second_factor.remove(conn, now, login.user, name)  # noqa: E731
            said = f"{name}'s two-step login is off; their password alone logs in until they set it up again"
        elif action in ("disable", "enable"):
            disabled = action == "disable"
            change = lambda conn: accounts.set_disabled(conn, now, login.user, name, disabled)  # noqa: E731
            said = f"{name} is {action}d"
        else:
            raise HTTPException(400, f"action: {action[:20]!r} is not one of role, disable, enable, reset, totp_reset")
        try:
            await run_in_threadpool(site.write, change)
        except UsageError as exc:
            raise HTTPException(404 if str(exc).startswith("no user") else 400, str(exc)) from None
        return RedirectResponse(f"/users?{urlencode({'done': said})}", status_code=303)
