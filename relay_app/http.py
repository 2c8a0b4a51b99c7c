"""HTTP plumbing of the relay: bounded body reading, JSON in and out, JSON error pages.

The relay never touches Bottle's `request.body`, `.json`, `.forms` or `.files`: Bottle
spools any body larger than `MEMFILE_MAX` to an unbounded temporary file and its
multipart parser keeps parts in memory up to the same limit. Every handler reads
`wsgi.input` itself, through `read_body` (bounded by relay.max_body_bytes, before and
after decompression) or `relay_app.multipart` (bounded by relay.max_file_bytes).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from typing import Any

import bottle
import orjson

from relay_app.errors import BadRequest, PayloadTooLarge, RelayAppError, UnsupportedMedia
from runtime.core.logsafe import quote
from runtime.core.wsgi_bridge import read_at_most

logger = logging.getLogger(__name__)

JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


def json_response(payload: Any, status: int = 200) -> bottle.HTTPResponse:
    """A JSON response (orjson) with the given status."""
    return bottle.HTTPResponse(orjson.dumps(payload), status, headers=JSON_HEADERS)


def error_response(exc: RelayAppError) -> bottle.HTTPResponse:
    """The `{"error": ...}` response for a relay error."""
    response = json_response({"error": str(exc)}, exc.status)
    if exc.status == 401:
        response.set_header("WWW-Authenticate", 'Bearer realm="commander-relay"')
    return response


def content_length(environ: dict[str, Any]) -> int | None:
    """The declared body length, None when absent; 400 when not a non-negative integer."""
    raw = environ.get("CONTENT_LENGTH") or ""
    if not raw.strip():
        return None
    # isdigit() alone admits "²", which int() refuses: ASCII digits only.
    if not (raw.strip().isascii() and raw.strip().isdigit()):
        raise BadRequest(f"Content-Length is not a non-negative integer: {raw[:40]!r}")
    return int(raw)


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """Read the whole body (at most `limit` bytes, else 413) and undo Content-Encoding."""
    declared = content_length(environ)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body is {declared} bytes; the limit is {limit}")
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if declared is None and not chunked:
        return b""  # HTTP/1.1: no length and not chunked means no body
    # One byte past the limit of a chunked body is the sign it is too long.
    raw = read_at_most(ClientBody(environ), (limit if declared is None else declared) + 1)
    if declared is not None and len(raw) < declared:
        raise BadRequest(f"body ended after {len(raw)} of {declared} bytes")
    if len(raw) > limit:
        raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
    return _decode(raw, environ.get("HTTP_CONTENT_ENCODING", ""), limit)


class ClientBody:
    """`wsgi.input` whose breaking off (the client went away, or was too slow) is a 400.

    The server raises OSError then; left alone it would be answered and counted as a
    500 with a traceback in the log, for what is the client's doing.
    """

    def __init__(self, environ: dict[str, Any]) -> None:
        """Read the body of the request `environ` describes."""
        self._stream = environ["wsgi.input"]

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes of the body."""
        try:
            return bytes(self._stream.read(size))
        except OSError as exc:
            raise BadRequest(f"the body did not arrive whole: {exc}") from exc


def _decode(raw: bytes, encoding: str, limit: int) -> bytes:
    """Undo gzip, refusing to inflate past `limit` bytes (a gzip bomb stops there)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise UnsupportedMedia(f"Content-Encoding {encoding[:40]!r} is not supported; use gzip")
    inflater = zlib.decompressobj(wbits=31)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}") from exc
    if len(body) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body is over the limit of {limit} bytes")
    if not inflater.eof:
        raise BadRequest("gzip body is truncated")
    if inflater.unused_data:
        raise BadRequest("unexpected data after the end of the gzip body")
    return body


def parse_json(body: bytes) -> Any:
    """Parse a JSON body (UTF-8); 400 naming what is wrong."""
    if not body:
        raise BadRequest("body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc


def refuse_oversized(cap: int) -> Callable[[], None]:
    """A before_request hook: 413 at once for a declared body over `cap` bytes.

    It runs before authentication and routing; under `runtime.core.http_front` the front
    refuses such a body first, and this keeps the rule under any other WSGI server.
    """

    def hook() -> None:
        declared = bottle.request.environ.get("CONTENT_LENGTH") or "0"
        if declared.isascii() and declared.isdigit() and int(declared) > cap:
            raise error_response(
                PayloadTooLarge(f"body is {declared} bytes, over the relay's limit of {cap}")
            )

    return hook


def relay_errors(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Bottle plugin: a RelayAppError raised by a route becomes its JSON error response."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except RelayAppError as exc:
            return error_response(exc)

    return wrapper


def install_error_pages(app: bottle.Bottle) -> None:
    """Answer every HTTP error Bottle raises itself (404, 405, 500, ...) as JSON."""

    def page(err: bottle.HTTPError) -> bytes:
        status = err.status_code
        if status >= 500:
            # Only a bug gets here (client mistakes are RelayAppErrors): log it, say little.
            # The exception may quote what the client sent: escaped and cut, like every id.
            logger.error("unhandled error: %s", quote(repr(err.exception)), exc_info=err.exception)
            text = "internal error in the relay; see its log"
        else:
            text = str(err.body) if err.body else bottle.HTTP_CODES.get(status, "error")
        for name, value in JSON_HEADERS.items():
            bottle.response.set_header(name, value)
        return orjson.dumps({"error": text})

    for status in range(400, 600):
        app.error_handler[status] = page
