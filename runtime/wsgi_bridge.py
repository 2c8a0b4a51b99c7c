"""Between the HTTP front's event loop and a WSGI app running on a worker thread.

`environ_for` turns a parsed request head into a PEP 3333 environ; `call_app` runs the
app on a worker thread and hands back its status, headers and the first part of its
body (the rest, if any, stays an iterator the front pulls chunk by chunk);
`StreamedBody` is the `wsgi.input` of a body too large to buffer, read from the socket
on demand within a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import unquote_to_bytes

import h11
import orjson

logger = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# A response body up to this size is collected on the worker in one go (one hand-off
# back to the loop); a larger one (a file download) is pulled chunk by chunk.
COLLECT_BYTES = 256 * 1024


@dataclass
class AppResult:
    """What the app answered: status line, headers, collected chunks, and what remains."""

    status: int
    reason: bytes
    headers: list[tuple[str, str]]
    chunks: list[bytes] = field(default_factory=list)
    rest: Iterator[bytes] | None = None
    closer: Callable[[], None] | None = None


def environ_for(
    request: h11.Request,
    body: IO[bytes],
    length: int,
    *,
    server: tuple[str, int],
    peer: tuple[str, int],
) -> dict[str, Any]:
    """The WSGI environ of one request whose body is `length` bytes readable from `body`."""
    target = request.target.decode("latin-1")
    path, _, query = target.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method.decode("ascii"),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
        "REMOTE_ADDR": peer[0],
        "REMOTE_PORT": str(peer[1]),
        "CONTENT_LENGTH": str(length),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    _add_headers(environ, request.headers)
    return environ


def _add_headers(environ: dict[str, Any], headers: Iterable[tuple[bytes, bytes]]) -> None:
    """HTTP_* keys; framing headers are the front's business, not the app's."""
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
        environ[key] = f"{environ[key]},{value}" if key in environ else value


def call_app(app: WsgiApp, environ: dict[str, Any]) -> AppResult:
    """Run `app` (on a worker thread); a failure becomes a JSON 500, logged once."""
    started: list[AppResult] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info and started and started[0].chunks:
            raise exc_info[1].with_traceback(exc_info[2])
        code, _, reason = status.partition(" ")
        started[:] = [AppResult(int(code), reason.encode("latin-1"), list(headers))]
        return _no_write

    try:
        body = app(environ, start_response)
        return _collect(body, started)
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
        else:
            iterator = iter(())
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
    body = b'{"error":"internal error; the server logged it"}'
    return AppResult(500, b"Internal Server Error", _json_headers(len(body)), [body])


def error_result(status: int, reason: str, message: str) -> AppResult:
    """A JSON error answered by the front itself (413, 431, 503, ...)."""
    body = orjson.dumps({"error": message})
    return AppResult(status, reason.encode(), _json_headers(len(body)), [body])


def _json_headers(length: int) -> list[tuple[str, str]]:
    return [("Content-Type", "application/json"), ("Content-Length", str(length))]


def _no_write(_: bytes) -> None:
    raise NotImplementedError("the write() callable is not supported; return an iterable")


def _path(environ: dict[str, Any]) -> str:
    return repr(environ.get("PATH_INFO", "")[:200])


class StreamedBody:
    """`wsgi.input` for a body read from the socket as the app asks, within a deadline."""

    def __init__(
        self,
        pull: Callable[[int], Any],
        loop: asyncio.AbstractEventLoop,
        length: int,
        deadline: float,
    ) -> None:
        """`pull(n)` is a coroutine function giving up to n body bytes, b"" at the end."""
        self._pull = pull
        self._loop = loop
        self.unread = length
        self._deadline = deadline

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that remain when negative); b"" at the end."""
        want = self.unread if size is None or size < 0 else min(size, self.unread)
        parts: list[bytes] = []
        while want > 0:
            part = self._read_some(want)
            if not part:
                break
            parts.append(part)
            want -= len(part)
            self.unread -= len(part)
        return b"".join(parts)

    def close(self) -> None:
        """Nothing to release: the connection decides what happens to unread bytes."""

    def readline(self, size: int = -1) -> bytes:
        """Not needed by the apps served here; refuse rather than buffer a whole body."""
        del size
        raise OSError("readline() is not supported on a streamed request body")

    def _read_some(self, want: int) -> bytes:
        timeout = self._deadline - time.monotonic()
        if timeout <= 0:
            raise OSError("request body deadline passed")
        future = asyncio.run_coroutine_threadsafe(self._pull(want), self._loop)
        try:
            data: bytes = future.result(timeout)
        except TimeoutError as exc:
            future.cancel()
            raise OSError("request body deadline passed") from exc
        return data
