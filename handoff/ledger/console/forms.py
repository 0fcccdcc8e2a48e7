"""What every page that takes a form needs: the logged-in account, the CSRF check, bounded fields."""

from __future__ import annotations

from typing import Final

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from handoff.ledger.console.logins import Login, same

MAX_FIELD: Final = 255


def current_login(request: Request) -> Login:
    login: Login = request.state.login
    return login


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value[:MAX_FIELD] if isinstance(value, str) else ""


async def checked_form(request: Request, expected: str | None) -> FormData:
    """The form of a POST, refused (403) unless it carries the CSRF token of this session
    (or, for the login form, of this browser's login cookie). No files: none of the console's
    forms has one, and the body limit keeps the rest small."""
    form = await request.form(max_files=0)
    if expected is None or not same(field(form, "csrf") or None, expected):
        raise HTTPException(403, "this form has expired or did not come from this console; reload the page")
    return form
