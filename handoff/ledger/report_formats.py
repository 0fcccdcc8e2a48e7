"""The evidence report written out: printable HTML (one file, its charts inline SVG), CSV for a
spreadsheet (one figure a row), JSON for machines. The same templates serve the console's
/report page, so the page and the file never disagree."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from handoff import compact_json
from handoff.ledger import charts
from handoff.ledger.console.exception_types import title
from handoff.ledger.report import Report
from handoff.ledger.spreadsheet import cell
from handoff.timefmt import rfc3339

FORMATS: Final = ("html", "csv", "json")


def day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def shown_value(value: object) -> str:
    """A figure as a person reads it: fractions (shares, seconds) to three decimals."""
    if value is None:
        return "none in the window"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def environment() -> Environment:
    """The console's templates outside the console, for the report file."""
    env = Environment(
        loader=FileSystemLoader(str(files("handoff.ledger.console") / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    install(env)
    return env


def install(env: Environment) -> None:
    """What the report's templates use, in the file's environment or the console's."""
    env.filters["day"] = day
    env.filters["stamp"] = rfc3339
    env.filters["figure"] = shown_value
    env.globals["title"] = title


def chart_of(report: Report) -> dict[str, Markup]:
    """The report's charts, drawn once for whichever template shows them."""
    daily = [(day(at)[5:], count) for at, count in report.daily_checkouts]
    return {
        "daily": charts.bars("Checkouts per day (UTC)", daily, charts.label_step(len(daily))),
        "confirmation": charts.bars(
            "Seconds from forced logoff to the agent's confirmation", report.confirmation_times
        ),
    }


def html(report: Report) -> str:
    return environment().get_template("report_file.html").render(report=report, charts=chart_of(report))


def as_csv(report: Report) -> str:
    """section, name, value: one figure or setting a row, the open exceptions after."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "name", "value"])
    writer.writerow(["window", "from", rfc3339(report.start)])
    writer.writerow(["window", "until", rfc3339(report.end)])
    for control in report.controls:
        for setting in control.settings:
            writer.writerow([cell(control.name), cell(f"setting: {setting.name}"), cell(setting.value)])
        for figure in control.figures:
            writer.writerow([cell(control.name), cell(figure.name), cell(figure.value)])
    for counts in report.exceptions:
        for what in ("opened", "closed", "acknowledged", "still_open"):
            writer.writerow(["exceptions", f"{counts.kind} {what}", getattr(counts, what)])
    for at, count in report.daily_checkouts:
        writer.writerow(["checkouts per day", day(at), count])
    for flag in report.still_open:
        writer.writerow(
            ["open exception", cell(f"{flag.kind} {flag.device_id}"), cell(f"{rfc3339(flag.opened)} {flag.detail}")]
        )
    return out.getvalue()


def as_json(report: Report) -> str:
    body: dict[str, Any] = asdict(report)
    body["start"], body["end"], body["made"] = rfc3339(report.start), rfc3339(report.end), rfc3339(report.made)
    return compact_json.dumps(body)
