"""Tiny inline SVG charts (no script, no style attribute: the CSP stays strict)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime

from relay_app.inbox.activity import Series


def sparkline(values: Sequence[float], label: str, width: int = 120, height: int = 24) -> str:
    """An SVG polyline of `values` (oldest first) scaled to its own maximum."""
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
        parts.append(
            f'<rect x="{i * slot + 1:.1f}" y="{height - tall:.1f}" width="{slot - 2:.1f}"'
            f' height="{tall:.1f}" data-count="{n}"><title>{title}</title></rect>'
        )
    return (
        f'<svg class="volume" viewBox="0 0 {width} {height}" preserveAspectRatio="none"'
        f' role="img" aria-label="Messages per hour, last 24 hours">{"".join(parts)}</svg>'
    )
