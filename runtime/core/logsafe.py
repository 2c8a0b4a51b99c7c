"""Text a client controls, made safe to put in a log line.

A log line is one record: a newline, a carriage return or a terminal escape inside a
value would let a client write a line that looks like the process's own, and a
megabyte id would write a megabyte of log. `quote` escapes like `repr` (so
`\\n`, `\\r`, `\\x1b` show as such) and cuts the value to a bounded length.
"""

from __future__ import annotations

from typing import Any

LIMIT = 200


def quote(value: Any, limit: int = LIMIT) -> str:
    """`value` as one escaped, quoted line of at most about `limit` characters of it."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text) - limit} more characters)"
