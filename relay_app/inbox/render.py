"""HTML for the inbox: templates (auto-escaping), security headers, safe JSON in HTML."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bottle
import orjson

from relay_app.inbox import nodes as node_format
from relay_app.inbox.preview import preview_text
from relay_app.inbox.search import highlight, snippet
from relay_app.store_search import content_text

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# No inline script or style anywhere: every script and stylesheet is a file served here.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
JSON_HEADERS = {
    "Content-Type": "application/json",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_JSON_IN_HTML = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_JSON_IN_HTML_RE = re.compile("[<>&\u2028\u2029]")
_templates: dict[str, Any] = {}
_templates_lock = threading.Lock()


def json_for_html(value: Any) -> str:
    """JSON that is safe inside an HTML element (no `</script>`, no `<!--`, no U+2028)."""
    text = orjson.dumps(value).decode()
    return _JSON_IN_HTML_RE.sub(lambda m: _JSON_IN_HTML[m.group(0)], text)


def iso(ts: float | None) -> str:
    """ISO 8601 UTC, for `<time datetime>` (the script shows it in local time); "" if none."""
    moment = _moment(ts)
    if moment is None:
        return ""
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def when(ts: float | None) -> str:
    """A readable UTC time for browsers without the script; a placeholder when not a date."""
    if ts is None:
        return "never"
    moment = _moment(ts)
    if moment is None:
        return f"invalid time ({str(ts)[:24]})"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _moment(ts: Any) -> datetime | None:
    """The UTC datetime of epoch seconds, None when a stored value is not a usable date.

    Rows written before the timestamp window existed (or by a bug) may hold 9.9e15,
    infinity or text; a page shows them as invalid instead of failing.
    """
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return None
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def preview(content: Any, pattern: re.Pattern[str] | None) -> str:
    """HTML: the content's gist (title, summary, text), search terms marked.

    When a search matched somewhere the gist does not show, the window around the match
    is shown instead, so a row always says why it matched.
    """
    gist = preview_text(content)
    if pattern is not None and not pattern.search(gist):
        return snippet(content_text(content, 4096), pattern)
    return snippet(gist, pattern)


def pretty_json(content: Any, pattern: re.Pattern[str] | None) -> str:
    """HTML: the content as indented JSON, escaped, search terms marked."""
    try:
        text = orjson.dumps(content, option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONEncodeError:
        # Deeper than orjson encodes (a row stored before the depth rule): the stdlib
        # encoder goes further; past Python's recursion limit, say so instead.
        try:
            text = json.dumps(content, indent=2, ensure_ascii=False)
        except (RecursionError, ValueError, TypeError):
            text = "(content nests too deeply to show)"
    return highlight(text, pattern)


HELPERS: dict[str, Any] = {
    "quote": lambda text: quote(text, safe=""),
    "view_labels": {
        "inbox": "Inbox (not archived)",
        "unread": "Unread",
        "acknowledged": "Acknowledged",
        "archived": "Archived",
        "all": "All statuses",
    },
    "iso": iso,
    "when": when,
    "preview": preview,
    "duration": node_format.duration,
    "size": node_format.size,
}


def render(name: str, **values: Any) -> str:
    """Render `templates/<name>` ({{x}} escapes; {{!x}} only for HTML built here)."""
    with _templates_lock:
        template = _templates.get(name)
        if template is None:
            template = bottle.SimpleTemplate(name=name, lookup=[str(TEMPLATES)])
            _templates[name] = template
    return str(template.render(**HELPERS, **values))


def page(
    body: str, status: int = 200, headers: Mapping[str, str] | None = None
) -> bottle.HTTPResponse:
    """An HTML response with the inbox's security headers."""
    return bottle.HTTPResponse(body, status, headers={**PAGE_HEADERS, **(headers or {})})


def json_body(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> bottle.HTTPResponse:
    """A JSON response (never cached, never sniffed)."""
    merged = {**JSON_HEADERS, **(headers or {})}
    return bottle.HTTPResponse(orjson.dumps(payload), status, headers=merged)


def redirect(location: str, headers: Mapping[str, str] | None = None) -> bottle.HTTPResponse:
    """303 See Other (after a POST, so reloading does not repeat it)."""
    return bottle.HTTPResponse("", 303, headers={"Location": location, **(headers or {})})
