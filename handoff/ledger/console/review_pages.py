"""The review of one break-glass use (`/exceptions/{id}/review`): what was overridden, by whom,
where and when, the person's uses over 30 days against the limit, and everything that happened
on the device in that emergency session. Only an admin's review, with a note, closes it."""

from __future__ import annotations

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from handoff.errors import UsageError
from handoff.ledger import break_glass
from handoff.ledger.console.forms import checked_form, current_login, field
from handoff.ledger.console.pages import MAX_ROW_ID, Site
from handoff.ledger.registers import StaffMember, names_of


def _flag_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > MAX_ROW_ID:
        raise HTTPException(404, f"no exception #{text[:20]}")
    return int(text)


class ReviewPages:
    def __init__(self, site: Site) -> None:
        self._site = site

    async def page(self, request: Request) -> Response:
        flag_id = _flag_id(request.path_params["flag_id"])
        limit = self._site.settings.break_glass_per_30d

        def read(conn: Connection) -> tuple[break_glass.Review | None, dict[str, StaffMember]]:
            found = break_glass.review_of(conn, flag_id, limit)
            people = {step.staff_id for step in found.story if step.staff_id} if found else set()
            if found is not None and found.use is not None and found.use.staff_id:
                people.add(found.use.staff_id)
            return found, names_of(conn, people)

        found, names = await run_in_threadpool(self._site.read, read)
        if found is None:
            raise HTTPException(404, f"no break-glass review #{flag_id}")
        return self._site.page(request, "review.html", review=found, names=names, problem="")

    async def close(self, request: Request) -> Response:
        flag_id = _flag_id(request.path_params["flag_id"])
        login = current_login(request)
        form = await checked_form(request, login.csrf)
        if not login.admin:
            raise HTTPException(403, "only an admin reviews a break-glass use")
        note, now = field(form, "note"), self._site.clock()
        try:
            await run_in_threadpool(
                self._site.write, lambda conn: break_glass.close_with_review(conn, flag_id, login.user, note, now)
            )
        except UsageError as exc:
            raise HTTPException(400, str(exc)) from None
        return RedirectResponse(f"/exceptions/{flag_id}/review", status_code=303)
