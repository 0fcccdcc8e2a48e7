"""A page's table as CSV: every table the console shows can be taken into a spreadsheet."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.responses import Response

from handoff.ledger.spreadsheet import cell


def csv_response(name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows([cell(value) for value in row] for row in rows)
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )
