"""The search box on every page (`/search?q=`) and the staff index (`/staff`)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from handoff.ledger.console import find
from handoff.ledger.console.pages import Site

MAX_QUERY = 255


class FindPages:
    def __init__(self, site: Site) -> None:
        self._site = site

    async def search(self, request: Request) -> Response:
        """An exact id or asset tag goes to its page; otherwise what contains the text."""
        text = (request.query_params.get("q") or "").strip()[:MAX_QUERY]
        if not text:
            return self._site.page(request, "search.html", q="", found=None)
        target = await run_in_threadpool(self._site.read, lambda conn: find.exact(conn, text))
        if target is not None:
            kind, key = target
            return RedirectResponse(f"/{kind}/{quote(key, safe='')}", status_code=303)
        found = await run_in_threadpool(self._site.read, lambda conn: find.containing(conn, text))
        status = 200 if found.devices or found.staff else 404
        return self._site.page(request, "search.html", status, q=text, found=found)

    async def staff_index(self, request: Request) -> Response:
        text = request.query_params.get("page") or "1"
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 1_000_000:
            raise HTTPException(404, f"no page {text[:20]!r} of the staff index")
        page = int(text)
        rows, total = await run_in_threadpool(self._site.read, lambda conn: find.staff_index(conn, page - 1))
        pages = max(1, -(-total // find.STAFF_PAGE))
        if page > pages:
            raise HTTPException(404, f"no page {page} of the staff index: it has {pages}")
        return self._site.page(
            request,
            "staff_index.html",
            rows=rows,
            total=total,
            page=page,
            pages=pages,
            first=(page - 1) * find.STAFF_PAGE + 1 if rows else 0,
            previous=f"/staff?{urlencode({'page': page - 1})}" if page > 1 else None,
            next=f"/staff?{urlencode({'page': page + 1})}" if page < pages else None,
        )
