"""Inline SVG charts for the dashboard, drawn on the server: no script, no chart library, no CDN.

Pure functions from numbers to markup; labels are escaped, colours come from the stylesheet
(classes), so the charts follow the page's theme.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 28, label: str = "") -> Markup:
    """A line of daily values with its last point marked; flat at the bottom when all are zero."""
    if not values:
        return Markup("")
    top = max(values) or 1.0
    step = width / max(len(values) - 1, 1)
    points = [(i * step, height - 2 - (v / top) * (height - 4)) for i, v in enumerate(values)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    last_x, last_y = points[-1]
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img"'
        f' aria-label="{escape(label)}"><polyline points="{path}"/>'
        f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2"/></svg>'
    )


def bars(rows: Sequence[tuple[str, float, str]], *, width: int = 520, row_height: int = 26) -> Markup:
    """Horizontal bars: (label, value, value as text) per row, scaled to the largest value."""
    if not rows:
        return Markup("")
    top = max(value for _, value, _ in rows) or 1.0
    label_w, text_w = 150, 90
    bar_w = width - label_w - text_w
    height = row_height * len(rows)
    parts = [f'<svg class="bars" viewBox="0 0 {width} {height}" width="100%" role="img">']
    for i, (label, value, text) in enumerate(rows):
        y = i * row_height
        length = max(bar_w * value / top, 1.0)
        parts.append(
            f'<text class="label" x="0" y="{y + row_height * 0.65:.1f}">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 5}" width="{length:.1f}" height="{row_height - 10}" rx="3"/>'
            f'<text class="value" x="{label_w + length + 6:.1f}" y="{y + row_height * 0.65:.1f}">{escape(text)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def score_bar(value: float | None, low: float, high: float, *, width: int = 80, height: int = 10) -> Markup:
    """A small gauge for a rating between ``low`` and ``high`` (NPS -100..100, CSAT 0..1)."""
    if value is None:
        return Markup("")
    share = min(max((value - low) / (high - low), 0.0), 1.0)
    return Markup(
        f'<svg class="gauge" viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-hidden="true">'
        f'<rect class="track" width="{width}" height="{height}" rx="5"/>'
        f'<rect class="fill" width="{max(width * share, 2):.1f}" height="{height}" rx="5"/></svg>'
    )
