"""Between the HTTP front's event loop and a WSGI app running on a worker thread.

`environ_for` turns a parsed request head into a PEP 3333 environ; `call_app` runs the
app on a worker thread and hands back its status, headers and the first part of its
body (the rest, if any, stays an iterator the front pulls chunk by chunk); `BodyPipe`
is the `wsgi.input` of a body too large to buffer, fed by the loop as it arrives.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import unquote_to_bytes

import orjson

from runtime.core.park import PARK_KEY
from runtime.core.peer_cred import PeerCred

logger = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# A response body up to this size is collected on the worker in one go (one hand-off
# back to the loop); a larger one (a file download) is pulled chunk by chunk.
COLLECT_BYTES = 256 * 1024
# A streamed request body: the loop stops reading the socket past HIGH bytes waiting
# for the app, and reads again once the app has taken it below LOW.
PIPE_HIGH = 1024 * 1024
PIPE_LOW = 256 * 1024


@dataclass
class AppResult:
    """What the app answered: status line, headers, collected chunks, and what remains."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    chunks: list[bytes] = field(default_factory=list)
    rest: Iterator[bytes] | None = None
    closer: Callable[[], None] | None = None
    # Set when the app parked the request (runtime.core.park): the front asks again later.
    park: Any = None


@dataclass
class RequestHead:
    """A parsed request line and headers (names lower-cased)."""

    method: str
    target: bytes
    version: str
    headers: list[tuple[bytes, bytes]]


def environ_for(
    head: RequestHead,
    body: IO[bytes] | BodyPipe,
    length: int,
    *,
    server: tuple[str, int],
    peer: tuple[str, int],
    scheme: str = "http",
    cred: PeerCred | None = None,
) -> dict[str, Any]:
    """The WSGI environ of one request whose body is `length` bytes readable from `body`.

    On a Unix socket `cred` adds the peer's `commander.peer_uid` (and pid, gid): see
    runtime.core.peer_cred. Header keys all start with `HTTP_`, so no header can pose as it.
    """
    path, _, query = head.target.partition(b"?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": head.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": "HTTP/" + head.version,
        "REMOTE_ADDR": peer[0],
        "REMOTE_PORT": str(peer[1]),
        "CONTENT_LENGTH": str(length),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    _add_headers(environ, head.headers)
    if cred is not None:
        environ.update(cred.environ())
    return environ


def _add_headers(environ: dict[str, Any], headers: Iterable[tuple[bytes, bytes]]) -> None:
    """HTTP_* keys; framing headers are the front's business, not the app's."""
    repeated: dict[str, list[str]] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1")
        # `X_Forwarded_Proto` would land on the same key as `X-Forwarded-Proto`: a client
        # could smuggle a header past a proxy that only filters the dashed spelling.
        if "_" in name or name in ("transfer-encoding", "content-length"):
            continue
        value = raw_value.decode("latin-1")
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        key = "HTTP_" + key
        repeated.setdefault(key, []).append(value)
    for key, values in repeated.items():
        # Cookie fields are separated by "; " (RFC 6265 5.4), every other header by ",".
        environ[key] = ("; " if key == "HTTP_COOKIE" else ",").join(values)


def read_at_most(stream: Any, size: int, piece: int = 64 * 1024) -> bytes:
    """Read up to `size` bytes of a `wsgi.input`, a piece at a time (never one huge read)."""
    parts: list[bytes] = []
    left = size
    while left > 0:
        part = stream.read(min(left, piece))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def call_app(app: WsgiApp, environ: dict[str, Any]) -> AppResult:
    """Run `app` (on a worker thread); a failure becomes a JSON 500, logged once."""
    started: list[AppResult] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info and started and started[0].chunks:
            raise exc_info[1].with_traceback(exc_info[2])
        code, _, reason = status.partition(" ")
        started[:] = [AppResult(int(code), reason, list(headers))]
        return _no_write

    try:
        body = app(environ, start_response)
        result = _collect(body, started)
        result.park = environ.get(PARK_KEY)
        return result
    except Exception:
        logger.exception("unhandled error in %s %s", environ["REQUEST_METHOD"], _path(environ))
        return internal_error()


def _collect(body: Iterable[bytes], started: list[AppResult]) -> AppResult:
    """Pull the body until it ends or passes COLLECT_BYTES; the rest stays an iterator."""
    iterator = iter(body)
    closer = getattr(body, "close", None)
    collected: list[bytes] = []
    size = 0
    try:
        for chunk in iterator:
            if chunk:
                collected.append(chunk)
                size += len(chunk)
            if size > COLLECT_BYTES:
                break
    except BaseException:
        if closer is not None:
            closer()
        raise
    result = started[0]
    result.chunks = collected
    if size > COLLECT_BYTES:
        result.rest, result.closer = iterator, closer
    elif closer is not None:
        closer()
    return result


def next_chunk(rest: Iterator[bytes]) -> bytes:
    """The next non-empty chunk of a streamed response (on a worker), b"" at its end."""
    for chunk in rest:
        if chunk:
            return chunk
    return b""


def internal_error() -> AppResult:
    """The answer to a request the app failed on."""
    return error_result(500, "Internal Server Error", "internal error; the server logged it")


def error_result(status: int, reason: str, message: str) -> AppResult:
    """A JSON error answered by the front itself (413, 431, 503, ...)."""
    body = orjson.dumps({"error": message})
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    return AppResult(status, reason, headers, [body])


def _no_write(_: bytes) -> None:
    raise NotImplementedError("the write() callable is not supported; return an iterable")


def _path(environ: dict[str, Any]) -> str:
    return repr(environ.get("PATH_INFO", "")[:200])


class BodyPipe:
    """`wsgi.input` of a large body: the loop feeds it as it arrives, the app reads it."""

    def __init__(
        self,
        length: int,
        deadline: float,
        resume: Callable[[], None],
        first_read: Callable[[], None] | None = None,
    ) -> None:
        """`resume()` (thread-safe) asks the loop to read the socket again; `first_read()`
        is called once, when the app first reads (to send `100 Continue`)."""
        self.unread = length
        self._first_read = first_read
        self._deadline = deadline
        self._resume = resume
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._ended = False
        self._failure: str | None = None
        self.paused = False
        self._ready = threading.Condition()

    def feed(self, data: bytes) -> bool:
        """Add bytes (on the loop); True when the loop should stop reading for now."""
        with self._ready:
            self._chunks.append(data)
            self._buffered += len(data)
            self._ready.notify()
            self.paused = self._buffered > PIPE_HIGH
            return self.paused

    def end(self, failure: str | None = None) -> None:
        """No more bytes will come (on the loop): the end, or why the body stopped."""
        with self._ready:
            self._ended, self._failure = True, failure
            self._ready.notify()

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that remain when negative); b"" at the end."""
        want = self.unread if size is None or size < 0 else min(size, self.unread)
        call = self._first_read
        if call is not None and want > 0:
            self._first_read = None
            call()
        parts: list[bytes] = []
        while want > 0 and (part := self._take(want)):
            parts.append(part)
            want -= len(part)
            self.unread -= len(part)
        return b"".join(parts)

    def _take(self, want: int) -> bytes:
        with self._ready:
            while not self._chunks:
                if self._failure is not None:
                    raise OSError(f"request body: {self._failure}")
                if self._ended:
                    return b""
                if not self._ready.wait(self._deadline - time.monotonic()):
                    raise OSError("request body: deadline passed")
            chunk = self._chunks.popleft()
            if len(chunk) > want:
                chunk, rest = chunk[:want], chunk[want:]
                self._chunks.appendleft(rest)
            self._buffered -= len(chunk)
            wake = self.paused and self._buffered < PIPE_LOW
            self.paused = self.paused and not wake
        if wake:
            self._resume()
        return chunk

    def readline(self, size: int = -1) -> bytes:
        """Not needed by the apps served here; refuse rather than buffer a whole body."""
        del size
        raise OSError("readline() is not supported on a streamed request body")

    def close(self) -> None:
        """Nothing to release: the connection decides what happens to unread bytes."""
