"""Bar charts drawn on the server as inline SVG: the report is one printable file with no
script and no external asset, and a chart reads at a glance where a column of numbers does not.

Every label is escaped; colours are presentation attributes, not styles, so the console's
content security policy (no inline styles) lets the same markup through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from markupsafe import Markup

WIDTH: Final = 640
HEIGHT: Final = 220
MARGIN: Final = 40
BAR: Final = "#1f5f8b"
INK: Final = "#1a1a1a"


def bars(title: str, values: Sequence[tuple[str, int]], every_nth_label: int = 1) -> Markup:
    """A labelled bar chart of (label, count); `every_nth_label` thins the axis labels when
    bars are many (a quarter's days). The title is the chart's accessible name."""
    top = max((count for _, count in values), default=0)
    inner_w, inner_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    step = inner_w / max(len(values), 1)
    parts = [
        Markup('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="%s">')
        % (WIDTH, HEIGHT, title),
        Markup("<title>%s</title>") % title,
        Markup('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>')
        % (MARGIN, HEIGHT - MARGIN, WIDTH - MARGIN, HEIGHT - MARGIN, INK),
        Markup('<text x="%d" y="%d" font-size="11" fill="%s">%d</text>') % (4, MARGIN, INK, top),
    ]
    for index, (label, count) in enumerate(values):
        height = inner_h * count / top if top else 0.0
        x = MARGIN + index * step
        parts.append(
            Markup('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d</title></rect>')
            % (x + step * 0.1, HEIGHT - MARGIN - height, step * 0.8, height, BAR, label, count)
        )
        if index % every_nth_label == 0:
            parts.append(
                Markup('<text x="%.1f" y="%d" font-size="10" fill="%s" text-anchor="middle">%s</text>')
                % (x + step / 2, HEIGHT - MARGIN + 14, INK, label)
            )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def label_step(count: int, most: int = 12) -> int:
    """Show at most `most` axis labels."""
    return max(1, -(-count // most))
