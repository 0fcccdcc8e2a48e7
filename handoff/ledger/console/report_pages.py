"""The evidence report in the console (`/report`): the same figures and templates as
`handoff ledger report`, over a window the reviewer chooses (by default the last 90 days), and
the printable file, CSV and JSON to take away."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from handoff.ledger import report, report_formats
from handoff.ledger.console.pages import Site, instant
from handoff.timefmt import rfc3339

DEFAULT_WINDOW_S: Final = 90 * 86400.0


class ReportPages:
    def __init__(self, site: Site) -> None:
        self._site = site
        report_formats.install(site.templates.env)

    async def page(self, request: Request) -> Response:
        site, params = self._site, request.query_params
        now = site.clock()
        end = instant(params.get("until"), "until") or now
        start = instant(params.get("from"), "from") or end - DEFAULT_WINDOW_S
        if end <= start:
            raise HTTPException(400, "until: the end of the window must come after its start")
        form = params.get("format") or "page"
        if form not in (*report_formats.FORMATS, "page"):
            raise HTTPException(400, f"format: {form[:20]!r} is not one of html, csv, json")
        made = await run_in_threadpool(site.read, lambda conn: report.build(conn, site.settings, start, end, now))
        name = f"evidence-{report_formats.day(start)}-{report_formats.day(end)}"
        if form == "html":
            return _download(report_formats.html(made), "text/html; charset=utf-8", f"{name}.html")
        if form == "csv":
            return _download(report_formats.as_csv(made), "text/csv; charset=utf-8", f"{name}.csv")
        if form == "json":
            return _download(report_formats.as_json(made), "application/json", f"{name}.json")
        window = {"from": rfc3339(start), "until": rfc3339(end)}
        return site.page(
            request,
            "report.html",
            report=made,
            charts=report_formats.chart_of(made),
            asked_from=window["from"],
            asked_until=window["until"],
            download=lambda kind: f"/report?{urlencode({**window, 'format': kind})}",
        )


def _download(body: str, media_type: str, filename: str) -> Response:
    return Response(body, media_type=media_type, headers={"content-disposition": f'attachment; filename="{filename}"'})
