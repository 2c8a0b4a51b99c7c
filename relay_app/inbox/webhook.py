"""POST one JSON document to the operator's webhook, with a deadline, never raising."""

from __future__ import annotations

import http.client
import ssl
from urllib.parse import urlsplit


def post_json(url: str, body: bytes, timeout: float) -> int | Exception:
    """The HTTP status the webhook answered, or the error that kept it from answering."""
    conn: http.client.HTTPConnection
    try:
        parts = urlsplit(url)
        if parts.scheme == "https":
            context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        try:
            conn.request("POST", target, body, {"Content-Type": "application/json"})
            return conn.getresponse().status
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return exc
