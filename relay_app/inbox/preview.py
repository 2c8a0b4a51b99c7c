"""A message's one-line preview, as a mail client shows a subject and the first words."""

from __future__ import annotations

from typing import Any

# Fields an agent's report commonly names its gist by, most telling first.
HEADLINE_KEYS = ("title", "subject", "headline", "name")
BODY_KEYS = ("summary", "text", "message", "body", "description", "details", "content", "note")
MAX_CHARS = 600


def preview_text(content: Any) -> str:
    """The gist of the content: its title and summary/text fields, else its first text value."""
    if isinstance(content, str):
        return content[:MAX_CHARS]
    if isinstance(content, dict) and content.get("kind") == "execute":
        # Execute's follow-up quotes its report: say what it asks about, not "execute".
        return ("Follow-up task: " + preview_text(content.get("report")))[:MAX_CHARS]
    if isinstance(content, dict):
        head = _field(content, HEADLINE_KEYS)
        body = _field(content, BODY_KEYS)
        if head or body:
            return " — ".join(p for p in (head, body) if p)[:MAX_CHARS]
    first = _first_text(content)
    return (first or "(no text)")[:MAX_CHARS]


def _field(content: dict[str, Any], keys: tuple[str, ...]) -> str:
    lowered = {k.lower(): v for k, v in content.items() if isinstance(k, str)}
    for key in keys:
        value = lowered.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _first_text(content: Any) -> str:
    """The first non-empty string in document order (breadth-first, so top-level wins)."""
    queue = [content]
    seen = 0
    while queue and seen < 2000:  # bounded: a huge report costs no more than this
        value = queue.pop(0)
        seen += 1
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, dict):
            queue.extend(value.values())
        elif isinstance(value, list):
            queue.extend(value)
    return ""
