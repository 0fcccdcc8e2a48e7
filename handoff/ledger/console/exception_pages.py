"""The exceptions queue (`/exceptions`): grouped by kind, filtered, paged and acknowledged in
bulk with a note, all in SQL so that it stays quick with a hundred thousand rows.

Acknowledging says a person has seen an exception and taken it in hand; it does not close it
(the ledger closes an exception when its cause goes away), so an acknowledged one reads
"open, acknowledged" until then.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Select, func, select, update
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from handoff.ledger import queries
from handoff.ledger.accounts import audit
from handoff.ledger.console import exception_types
from handoff.ledger.console.forms import checked_form, current_login, field
from handoff.ledger.console.listing import PAGE_ROWS, Page, choice, view_url
from handoff.ledger.console.pages import MAX_ROW_ID, Site
from handoff.ledger.console.tables import csv_response
from handoff.ledger.registers import StaffMember, names_of
from handoff.ledger.responses import Outcome, of_exceptions
from handoff.ledger.schema import EXCEPTION_TEXT, exceptions
from handoff.timefmt import rfc3339

STATUSES: Final = ("open", "unacknowledged", "acknowledged", "closed")
MAX_BULK: Final = PAGE_ROWS
MAX_NOTE: Final = 255
MAX_QUERY: Final = 255


@dataclass(frozen=True)
class Group:
    kind: str
    open: int
    unacknowledged: int


@dataclass(frozen=True)
class View:
    kind: str
    status: str
    text: str

    @classmethod
    def of(cls, params: Any) -> View:
        return cls(
            (params.get("type") or "")[:32],
            choice(params.get("status"), STATUSES, "status"),
            (params.get("q") or "").replace("\n", " ").strip()[:MAX_QUERY],
        )

    @property
    def params(self) -> dict[str, str]:
        return {"type": self.kind, "status": self.status, "q": self.text}

    def query(self) -> Select[Any]:
        found = select(exceptions)
        if self.kind:
            found = found.where(exceptions.c.type == self.kind)
        if self.status in ("open", "unacknowledged", "acknowledged"):
            found = found.where(exceptions.c.closed.is_(None))
        if self.status == "unacknowledged":
            found = found.where(exceptions.c.acked_by.is_(None))
        if self.status == "acknowledged":
            found = found.where(exceptions.c.acked_by.is_not(None))
        if self.status == "closed":
            found = found.where(exceptions.c.closed.is_not(None))
        if self.text:
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", self.text) + "%"
            found = found.where(EXCEPTION_TEXT.ilike(pattern, escape="\\"))
        return found


def _queue(conn: Connection, query: Select[Any], offset: int | None) -> tuple[list[Any], int]:
    """The view's rows in the queue's order, open ones oldest first, then closed ones most
    recently closed first, from `offset` (a page of them; all with `offset` None); and how many
    rows the view has. Each part is read in the order of its own index (migration 0009), a
    page at a time: the database never sorts the hundred thousand rows to show two hundred.
    Both parts are counted in one statement (a text filter reads its index once, not twice)."""
    still_open = query.where(exceptions.c.closed.is_(None)).order_by(exceptions.c.opened, exceptions.c.id)
    closed = query.where(exceptions.c.closed.is_not(None)).order_by(exceptions.c.closed.desc(), exceptions.c.id.desc())
    if offset is None:
        rows = [*conn.execute(still_open).all(), *conn.execute(closed).all()]
        return rows, len(rows)
    counted = query.subquery()
    opened, total = conn.execute(
        select(func.count().filter(counted.c.closed.is_(None)), func.count()).select_from(counted)
    ).one()
    rows = [*conn.execute(still_open.offset(offset).limit(PAGE_ROWS)).all()] if offset < opened else []
    if len(rows) < PAGE_ROWS and offset + len(rows) < total:
        rows += conn.execute(closed.offset(max(0, offset - opened)).limit(PAGE_ROWS - len(rows))).all()
    return rows, total


def _groups(conn: Connection) -> list[Group]:
    rows = conn.execute(
        select(exceptions.c.type, func.count(), func.count(exceptions.c.acked_by))
        .where(exceptions.c.closed.is_(None))
        .group_by(exceptions.c.type)
        .order_by(exceptions.c.type)
    )
    return [Group(kind, int(total), int(total) - int(acked)) for kind, total, acked in rows]


def _page_number(asked: str | None) -> int:
    text = asked or "1"
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 1_000_000:
        raise HTTPException(404, f"no page {text[:20]!r}")
    return int(text)


def _row_id(text: str) -> int:
    """An exception's number from its address: 404 for anything no row can have."""
    if not text.isascii() or not text.isdigit() or int(text) > MAX_ROW_ID:
        raise HTTPException(404, f"no exception #{text[:20]}")
    return int(text)


class ExceptionPages:
    def __init__(self, site: Site) -> None:
        self._site = site

    async def listing(self, request: Request) -> Response:
        site, view = self._site, View.of(request.query_params)
        number = _page_number(request.query_params.get("page"))
        wants_csv = request.query_params.get("format") == "csv"

        def read(conn: Connection) -> tuple[list[Any], int, list[Group], dict[int, list[Outcome]]]:
            rows, total = _queue(conn, view.query(), None if wants_csv else (number - 1) * PAGE_ROWS)
            answered = {} if wants_csv else of_exceptions(conn, [row.id for row in rows])
            return rows, total, [] if wants_csv else _groups(conn), answered

        rows, total, groups, answered = await run_in_threadpool(site.read, read)
        if wants_csv:
            return csv_response(
                "exceptions",
                ["id", "type", "device_id", "source", "opened", "closed", "detail", "acked_by", "acked_at", "note"],
                (
                    [
                        f.id,
                        f.type,
                        f.device_id,
                        f.source,
                        rfc3339(f.opened),
                        rfc3339(f.closed) if f.closed is not None else None,
                        f.detail,
                        f.acked_by,
                        rfc3339(f.acked_at) if f.acked_at is not None else None,
                        f.ack_note,
                    ]
                    for f in rows
                ),
            )
        pages = max(1, -(-total // PAGE_ROWS))
        if number > pages:
            raise HTTPException(404, f"no page {number}: this view has {pages}")
        here = view_url("/exceptions", view.params, page="" if number == 1 else str(number))
        return site.page(
            request,
            "exceptions.html",
            flags=rows,
            responses=answered,
            paged=Page(rows, number, pages, total),
            groups=groups,
            view=view,
            here=here,
            url=lambda **changes: view_url("/exceptions", view.params, **changes),
            title=exception_types.title,
            meaning=exception_types.meaning,
            kinds=sorted({group.kind for group in groups} | set(exception_types.KINDS)),
            statuses=STATUSES,
        )

    async def details(self, request: Request) -> Response:
        """One exception as stored, beside how things stand now, read at this request: the
        device's state and appliance, or for `holds_many` the devices the person holds now."""
        site, settings = self._site, self._site.settings
        flag_id = _row_id(request.path_params["flag_id"])
        now = site.clock()

        def read(conn: Connection) -> tuple[Any, queries.DeviceNow | None, list[str], dict[str, StaffMember]] | None:
            flag = conn.execute(select(exceptions).where(exceptions.c.id == flag_id)).first()
            if flag is None:
                return None
            device = (
                queries.device(conn, flag.device_id, now, settings.overdue_after_s, settings.offline_after_s)
                if flag.device_id
                else None
            )
            held = queries.holding(conn, flag.key) if flag.type == "holds_many" else []
            people = {flag.key} if flag.type == "holds_many" else set()
            if device is not None and device.staff_id:
                people.add(device.staff_id)
            return flag, device, held, names_of(conn, people)

        found = await run_in_threadpool(site.read, read)
        if found is None:
            raise HTTPException(404, f"no exception #{flag_id}")
        flag, device, held, names = found
        return site.page(
            request,
            "exception.html",
            flag=flag,
            device=device,
            held=held,
            names=names,
            now=now,
            title=exception_types.title,
            meaning=exception_types.meaning,
        )

    async def acknowledge_one(self, request: Request) -> Response:
        flag_id = _row_id(request.path_params["flag_id"])
        form, login = await self._admin_form(request)
        done = await self._acknowledge(login.user, [flag_id], form)
        if not done:
            raise HTTPException(404, f"no exception #{flag_id} waiting for acknowledgement")
        return self._back(form)

    async def acknowledge_many(self, request: Request) -> Response:
        form, login = await self._admin_form(request)
        chosen = form.getlist("id")
        if not chosen:
            raise HTTPException(400, "choose at least one exception to acknowledge")
        if len(chosen) > MAX_BULK:
            raise HTTPException(400, f"at most {MAX_BULK} exceptions at once")
        ids = []
        for value in chosen:
            if not isinstance(value, str) or not value.isascii() or not value.isdigit() or int(value) > MAX_ROW_ID:
                raise HTTPException(400, f"id: {str(value)[:20]!r} is not an exception's number")
            ids.append(int(value))
        await self._acknowledge(login.user, ids, form)
        return self._back(form)

    async def _admin_form(self, request: Request) -> tuple[FormData, Any]:
        login = current_login(request)
        form = await checked_form(request, login.csrf)
        if not login.admin:
            raise HTTPException(403, "only an admin acknowledges exceptions")
        return form, login

    async def _acknowledge(self, user: str, ids: Sequence[int], form: FormData) -> int:
        note = field(form, "note").strip()[:MAX_NOTE] or None
        now = self._site.clock()

        def ack(conn: Connection) -> int:
            waiting = list(
                conn.execute(
                    select(exceptions.c.id, exceptions.c.type, exceptions.c.key)
                    .where(exceptions.c.id.in_(ids), exceptions.c.acked_by.is_(None))
                    .order_by(exceptions.c.id)
                )
            )
            if not waiting:
                return 0
            conn.execute(
                update(exceptions)
                .where(exceptions.c.id.in_([row.id for row in waiting]))
                .values(acked_by=user, acked_at=now, ack_note=note)
            )
            for row in waiting:
                detail = f"#{row.id} {row.type} {row.key}" + (f"; note: {note}" if note else "")
                audit(conn, now, user, "exception_acknowledged", detail)
            return len(waiting)

        return await run_in_threadpool(self._site.write, ack)

    @staticmethod
    def _back(form: FormData) -> Response:
        """Back to the view the form was sent from (a path on this console only), at the row
        after the one just acknowledged: the keyboard carries on from there, not from the top."""
        back = field(form, "back")
        if not back.startswith("/exceptions") or back.startswith("//") or "#" in back:
            back = "/exceptions"
        focus = field(form, "focus")
        if re.fullmatch(r"flag-[0-9]{1,19}", focus):
            back += f"#{focus}"
        return RedirectResponse(back, status_code=303)
