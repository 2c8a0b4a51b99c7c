"""A request's query string decoded as UTF-8, for every WSGI app of both daemons.

Bottle's `request.query.decode()` raises UnicodeDecodeError on a percent-escape that is
not UTF-8 (`?agent=%ff`): a 500. Here such bytes become U+FFFD, which the checks after
it refuse (400 naming the parameter), ignore, or let match nothing, as any other value.
"""

from __future__ import annotations

from typing import Any

import bottle


def decoded_query(request: Any) -> bottle.FormsDict:
    """`request.query` with names and values decoded as UTF-8, never raising."""
    decoded = bottle.FormsDict()
    for name, value in request.query.allitems():
        decoded.append(_utf8(name), _utf8(value))
    return decoded


def _utf8(text: str) -> str:
    # WSGI hands the bytes over as latin-1 text; bottle unquotes them the same way.
    return text.encode("latin-1").decode("utf-8", "replace")
