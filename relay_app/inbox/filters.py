"""The inbox's view of the URL: filters, time range, search and paging cursor.

Everything a view depends on lives in the query string, so a view can be bookmarked,
shared and reached with the back button. Parsing never fails: a value that makes no
sense is dropped (and named in `problems`), the rest of the view still works.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from relay_app.store_inbox import INBOX_VIEWS, Cursor
from runtime.core.envelope import MAX_TEXT, PRIORITIES
from runtime.core.ids import is_id

# status= values: "inbox" is everything not archived, "all" everything.
VIEWS = INBOX_VIEWS
PRESETS: dict[str, float] = {
    "15m": 15 * 60,
    "1h": 3600,
    "6h": 6 * 3600,
    "24h": 24 * 3600,
    "7d": 7 * 86400,
    "30d": 30 * 86400,
}
PAGE_SIZE = 50
# Times a filter may name: dates of years 2 to 9998, so every one renders back as a date.
EARLIEST = -62_104_060_800.0
LATEST = 253_370_678_400.0


@dataclass(frozen=True, slots=True)
class InboxView:
    """One view of the inbox, as the URL states it."""

    status: str = "inbox"
    role: str | None = None
    agent: str | None = None
    node: str | None = None
    priority: str | None = None
    range: str | None = None  # a PRESETS key
    start: float | None = None  # absolute range, epoch seconds
    end: float | None = None
    q: str = ""
    before: Cursor | None = None
    after: Cursor | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)

    def since_until(self, now: float) -> tuple[float | None, float | None]:
        """The time range in epoch seconds; a preset counts back from `now`."""
        if self.range in PRESETS:
            return now - PRESETS[self.range], None
        return self.start, self.end

    def params(self, **changes: str | None) -> dict[str, str]:
        """The query parameters of this view (without defaults), with `changes` applied."""
        out: dict[str, str] = {}
        values = {
            "status": None if self.status == "inbox" else self.status,
            "role": self.role,
            "agent": self.agent,
            "node": self.node,
            "priority": self.priority,
            "range": self.range,
            "from": _iso(self.start),
            "to": _iso(self.end),
            "q": self.q or None,
            "before": self.before.encode() if self.before else None,
            "after": self.after.encode() if self.after else None,
        }
        values.update(changes)
        for key, value in values.items():
            if value:
                out[key] = value
        return out

    def url(self, path: str = "/messages", **changes: str | None) -> str:
        """This view's URL, with `changes` applied (None removes a parameter)."""
        query = urlencode(self.params(**changes))
        return f"{path}?{query}" if query else path

    def first_page(self) -> InboxView:
        """The same view without a paging cursor."""
        return replace(self, before=None, after=None)


def parse_view(query: Mapping[str, str]) -> InboxView:
    """Read a view from query parameters; drop what makes no sense and say so."""
    problems: list[str] = []

    def pick(name: str, ok: Callable[[str], bool]) -> str | None:
        value = (query.get(name) or "").strip()
        if not value:
            return None
        if not ok(value):
            problems.append(f"ignored {name}={value[:40]!r}")
            return None
        return value

    status = pick("status", lambda v: v in VIEWS) or "inbox"
    start = _time_param(pick("from", lambda v: _parse_time(v) is not None))
    end = _time_param(pick("to", lambda v: _parse_time(v) is not None))
    cursor_ok: Callable[[str], bool] = lambda v: Cursor.decode(v) is not None  # noqa: E731
    before, after = pick("before", cursor_ok), pick("after", cursor_ok)
    return InboxView(
        status=status,
        role=pick("role", _is_text),
        agent=pick("agent", _is_id),
        node=pick("node", _is_id),
        priority=pick("priority", lambda v: v in PRIORITIES),
        range=pick("range", lambda v: v in PRESETS),
        start=start,
        end=end,
        q=(query.get("q") or "").strip()[:500],
        before=Cursor.decode(before) if before else None,
        after=Cursor.decode(after) if after and not before else None,
        problems=tuple(problems),
    )


def _is_id(value: str) -> bool:
    return is_id(value)


def _is_text(value: str) -> bool:
    return len(value) <= MAX_TEXT and value.isprintable()


def _time_param(value: str | None) -> float | None:
    return None if value is None else _parse_time(value)


def _parse_time(value: str) -> float | None:
    """Epoch seconds, or ISO 8601 (UTC when it names no offset); None outside years 2-9998."""
    try:
        number: float | None = float(value)
    except ValueError:
        number = _iso_seconds(value)
    if number is None or not math.isfinite(number):
        return None
    # The view puts the time back in its URL as a date: keep it where dates exist.
    return number if EARLIEST <= number <= LATEST else None


def _iso_seconds(value: str) -> float | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError):
        return None


def _iso(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
