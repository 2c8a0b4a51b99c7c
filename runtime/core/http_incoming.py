"""A request as the HTTP front receives it, and the framing rules its head must meet."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import IO

from runtime.core.wsgi_bridge import BodyPipe, RequestHead


class Refusal(Exception):
    """An error answer the front owes the client before it closes the connection."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        """`reason` is the status line's phrase; `message` goes into the JSON body."""
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def framing(headers: list[tuple[bytes, bytes]], body_limit: int) -> int | None:
    """The declared body length (None for chunked), or a Refusal.

    llhttp has already refused Content-Length with Transfer-Encoding, duplicate or
    malformed lengths; what is left is the codings we do not take and the size cap.
    """
    codings = [value for name, value in headers if name == b"transfer-encoding"]
    if codings and [c.strip().lower() for c in codings] != [b"chunked"]:
        raise Refusal(501, "Not Implemented", "Transfer-Encoding other than chunked")
    if codings:
        return None
    lengths = [value for name, value in headers if name == b"content-length"]
    declared = int(lengths[0]) if lengths else 0
    if declared > body_limit:
        message = f"body is {declared} bytes; the limit is {body_limit}"
        raise Refusal(413, "Content Too Large", message)
    return declared


@dataclass
class Incoming:
    """One request being received: its head, then its body (buffered or piped)."""

    target: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    head: RequestHead | None = None
    keep_alive: bool = True
    length: int = 0
    spool: IO[bytes] | None = None
    pipe: BodyPipe | None = None
    # The body's clock (loop time), its expected size and what has arrived of it.
    started: float = 0.0
    expected: int = 0
    received: int = 0

    def set_head(self, method: str, version: str, keep_alive: bool) -> None:
        """The head is complete."""
        self.head = RequestHead(method, self.target, version, self.headers)
        self.keep_alive = keep_alive

    @property
    def expects_continue(self) -> bool:
        """Whether the client waits for `100 Continue` before sending its body."""
        return any(n == b"expect" and v.lower() == b"100-continue" for n, v in self.headers)

    def buffer(self, data: bytes, limit: int) -> bool:
        """Append to the buffered body; False once it would pass `limit` bytes."""
        self.length += len(data)
        if self.length > limit:
            return False
        if self.spool is None:
            self.spool = tempfile.SpooledTemporaryFile(max_size=64 * 1024)  # noqa: SIM115
        self.spool.write(data)
        return True

    def rewind(self) -> None:
        """The body is whole: the app reads it from the start."""
        if self.spool is not None:
            self.spool.seek(0)

    def discard(self) -> None:
        """Release the buffered body."""
        if self.spool is not None:
            self.spool.close()
            self.spool = None
