"""The console's enrolment page: the devices the ledger hears but does not believe, the
fingerprint each one's `status` presents, and the admin's act of enrolling one.

The admin compares that fingerprint with the one `handoff provision` printed on the cart
(docs/ledger.md); the form carries the fingerprint the page showed, so that a key swapped
between the page and the click is refused rather than enrolled.
"""

from __future__ import annotations

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from handoff.ledger.console.logins import Login, same
from handoff.ledger.console.pages import Site
from handoff.ledger.database import writing
from handoff.ledger.enrolment import PendingDevice, enrol, listing
from handoff.ledger.ingest import Recorder
from handoff.ledger.trust import raw_key


class EnrolmentPages:
    def __init__(self, site: Site, recorder: Recorder) -> None:
        self._site, self._recorder = site, recorder

    async def page(self, request: Request) -> Response:
        _admin(request, "sees enrolment")
        enrolled, pending = await run_in_threadpool(self._site.read, listing)
        return self._site.page(request, "enrolment.html", enrolled=enrolled, pending=pending)

    async def enrol(self, request: Request) -> Response:
        login = _admin(request, "enrols devices")
        form = await request.form()
        token, shown = form.get("csrf"), form.get("fingerprint")
        if not isinstance(token, str) or not same(token, login.csrf):
            raise HTTPException(403, "this form has expired or did not come from this console; reload the page")
        device_id: str = request.path_params["device_id"]
        site = self._site

        def act() -> int | None:
            with writing(site.engine) as conn:
                found = _pending(conn, device_id)
                if found is None or found.key is None or found.fingerprint != shown:
                    return None
                return enrol(
                    conn, self._recorder, device_id, raw_key(found.key), [], actor=login.user, now=site.clock()
                )

        if await run_in_threadpool(act) is None:
            raise HTTPException(409, f"{device_id} does not present that key now: reload the page and compare again")
        return RedirectResponse("/enrolment", status_code=303)


def _pending(conn: Connection, device_id: str) -> PendingDevice | None:
    return next((device for device in listing(conn)[1] if device.device_id == device_id), None)


def _admin(request: Request, does: str) -> Login:
    login: Login = request.state.login
    if not login.admin:
        raise HTTPException(403, f"only an admin {does}")
    return login
