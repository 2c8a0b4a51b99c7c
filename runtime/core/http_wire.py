"""HTTP/1.1 response framing: the bytes of a status line and headers, and chunked pieces."""

from __future__ import annotations

import re

# A header the app sets must not end the head early or start a second response.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*\Z")
_FRAMING = ("content-length", "transfer-encoding", "connection")


class BadResponse(ValueError):
    """The app produced a status or header that cannot be sent as is."""


def response_head(
    status: int,
    reason: str,
    headers: list[tuple[str, str]],
    *,
    length: int | None,
    keep_alive: bool,
    bodyless: bool = False,
) -> bytes:
    """Status line and headers; `length` None: chunked (or, closing, until the close).

    A `bodyless` status (204, 304) carries no framing header at all.
    """
    if not 100 <= status <= 999 or not _VALUE.match(reason) or "\t" in reason:
        raise BadResponse(f"status {status} {reason!r}")
    lines = [f"HTTP/1.1 {status} {reason}"]
    for name, value in headers:
        if not _TOKEN.match(name) or not _VALUE.match(value):
            raise BadResponse(f"header {name[:40]!r}")
        if name.lower() not in _FRAMING:
            lines.append(f"{name}: {value}")
    if bodyless:
        pass
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    elif keep_alive:
        lines.append("Transfer-Encoding: chunked")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def declared_length(headers: list[tuple[str, str]]) -> int | None:
    """The Content-Length the app set, None if it set none (or not a number)."""
    for name, value in headers:
        if name.lower() == "content-length" and value.strip().isdigit():
            return int(value)
    return None


def wants_close(headers: list[tuple[str, str]]) -> bool:
    """Whether the app asked for the connection to close after this response."""
    return any(n.lower() == "connection" and "close" in v.lower() for n, v in headers)


def chunk(data: bytes) -> bytes:
    """One piece of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
