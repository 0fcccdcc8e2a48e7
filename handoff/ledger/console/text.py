"""Values from messages and people, written into pages so they read as what they are.

A staff id or a device id comes from a badge directory, an appliance or a broker: it may hold a
right-to-left override that turns the rest of the line around (so "ana" next to it reads as
another name), or sixty thousand characters. Each is isolated in its own <bdi>, so its direction
stays inside it, and a long one is cut, the whole kept in the element's title.
"""

from __future__ import annotations

from typing import Final

from markupsafe import Markup

CUT: Final = 64


def shown(value: object) -> Markup:
    if value is None:
        return Markup("")
    text = str(value)
    if len(text) <= CUT:
        return Markup("<bdi>%s</bdi>") % text
    return Markup('<bdi title="%s">%s…</bdi>') % (text, text[:CUT])
