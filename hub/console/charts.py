"""Charts drawn on the server as SVG: no script, no chart library to vendor, printable.

A chart is a picture for the sighted and a table for everyone: the SVG has a title and a
description (`role="img"`), and each page shows the figures it draws in a table beside it. Colours
have 3:1 contrast against white; the legend's swatches are classes of the stylesheet (the
Content-Security-Policy allows no inline style).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from markupsafe import Markup

#: one colour per outcome, each with at least 3:1 contrast against white (WCAG 1.4.11)
COLOURS = {"received": "#0b4f8a", "delivered": "#1d6b2f", "rejected": "#a0001c", "duplicate": "#7a4a00", "dead": "#4a4a4a"}
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 180, 44, 28, 8


def stacked_bars(title: str, description: str, points: Sequence[tuple[str, Mapping[str, int]]], series: Sequence[str],
                 labels: Mapping[str, str]) -> Markup:
    """One bar per point (an hour, a day), stacked by `series`; every `step`-th point is labelled."""
    top = max((sum(p.get(s, 0) for s in series) for _, p in points), default=0) or 1
    inner_w, inner_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    slot = inner_w / max(len(points), 1)
    step = max(1, len(points) // 12)
    parts = [f'<svg class="chart" role="img" aria-labelledby="c-t c-d" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="c-t">{escape(title)}</title><desc id="c-d">{escape(description)}</desc>',
             f'<line x1="{LEFT}" y1="{TOP + inner_h}" x2="{WIDTH - 4}" y2="{TOP + inner_h}" stroke="#4a4a4a"/>',
             f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{top}</text>',
             f'<text x="{LEFT - 4}" y="{TOP + inner_h}" text-anchor="end">0</text>']
    for i, (label, counts) in enumerate(points):
        y = TOP + inner_h
        for name in series:
            n = counts.get(name, 0)
            if not n:
                continue
            h = inner_h * n / top
            y -= h
            parts.append(f'<rect x="{LEFT + i * slot + 1:.1f}" y="{y:.1f}" width="{max(slot - 2, 1):.1f}" height="{h:.1f}" fill="{COLOURS.get(name, "#333")}">'
                         f'<title>{escape(label)}: {escape(labels.get(name, name))} {n}</title></rect>')
        if i % step == 0:
            parts.append(f'<text x="{LEFT + i * slot + slot / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    legend = "".join(f'<li><span class="swatch swatch-{escape(s)}"></span>{escape(labels.get(s, s))}</li>' for s in series)
    return Markup("".join(parts) + f'<ul class="legend">{legend}</ul>')
