"""Tiny inline SVG charts (no script, no style attribute: the CSP stays strict)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime

from relay_app.inbox.activity import Series


def sparkline(
    values: Sequence[float], label: str, unit: str = "", width: int = 120, height: int = 24
) -> str:
    """An SVG polyline of `values` (oldest first) scaled to its own maximum, then that
    maximum in words (each line has its own scale: the number says how tall it is)."""
    if len(values) < 2:
        return f'<span class="spark-empty muted" title="{html.escape(label)}">no history yet</span>'
    top = max(values) or 1.0
    step = width / (len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(values)
    )
    title = html.escape(f"{label}: latest {values[-1]:g}, max {top:g}")
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-label="{title}"><title>{title}</title>'
        f'<polyline points="{points}" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>'
        f'<small class="spark-max">max {top:g}{html.escape(unit)}</small>'
    )


def bars(series: Series, width: int = 720, height: int = 36) -> str:
    """An SVG bar per bucket, each with a hover title ("14:00 UTC: 12 messages")."""
    top = max(series.counts) or 1
    slot = width / len(series.counts)
    parts = []
    for i, n in enumerate(series.counts):
        at = datetime.fromtimestamp(series.start + i * series.bucket_s, UTC)
        tall = 0 if n == 0 else max(2.0, n / top * (height - 2))
        title = html.escape(f"{at:%H:%M} UTC: {n} message{'s' if n != 1 else ''}")
        # A full-height slot behind each bar, so an empty hour has a hover title too.
        parts.append(
            f'<g><title>{title}</title><rect class="slot" x="{i * slot:.1f}" y="0"'
            f' width="{slot:.1f}" height="{height}"/><rect x="{i * slot + 1:.1f}"'
            f' y="{height - tall:.1f}" width="{slot - 2:.1f}" height="{tall:.1f}"'
            f' data-count="{n}"/></g>'
        )
    return (
        f'<svg class="volume" viewBox="0 0 {width} {height}" preserveAspectRatio="none"'
        f' role="img" aria-label="Messages per hour, last 24 hours">{"".join(parts)}</svg>'
    )
