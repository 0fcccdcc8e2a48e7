"""Values from messages and people, written into pages so they read as what they are.

A staff id or a device id comes from a badge directory, an appliance or a broker: it may hold a
right-to-left override that turns the rest of the line around (so "ana" next to it reads as
another name), or sixty thousand characters. Each is isolated in its own <bdi>, so its direction
stays inside it, and a long one is cut, the whole kept in the element's title.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote

from markupsafe import Markup

from handoff.ledger.registers import StaffMember

CUT: Final = 64


def shown(value: object) -> Markup:
    if value is None:
        return Markup("")
    text = str(value)
    if len(text) <= CUT:
        return Markup("<bdi>%s</bdi>") % text
    return Markup('<bdi title="%s">%s…</bdi>') % (text, text[:CUT])


def person(staff_id: str | None, names: Mapping[str, StaffMember]) -> Markup:
    """A staff member as a link to their page: their name from the directory where it has
    them, with the id beside it (the id is what a badge and the CSV carry)."""
    if not staff_id:
        return Markup("—")
    link = Markup('<a href="/staff/%s">') % quote(staff_id, safe="")
    member = names.get(staff_id)
    if member is None:
        return link + shown(staff_id) + Markup("</a>")
    return link + shown(member.name) + Markup('</a> <span class="id">') + shown(staff_id) + Markup("</span>")


def at(epoch: float | None) -> Markup:
    """A time as the page shows it: UTC with its offset, in a <time> element that the browser's
    script (static/localtime.js) rewrites into the browser's own zone."""
    if epoch is None:
        return Markup("")
    moment = datetime.fromtimestamp(epoch, UTC)
    return Markup('<time datetime="%s">%s</time>') % (
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        moment.strftime("%Y-%m-%d %H:%M:%S +00:00"),
    )
