"""Answering one request: run the app on a worker, then frame and send what it returned."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import IO, TYPE_CHECKING, Any, Protocol

from runtime.http_incoming import Incoming
from runtime.http_wire import LAST_CHUNK, BadResponse, chunk, declared_length, response_head
from runtime.wsgi_bridge import (
    AppResult,
    BodyPipe,
    call_app,
    environ_for,
    error_result,
    internal_error,
    next_chunk,
)

if TYPE_CHECKING:
    from runtime.http_front import Front

logger = logging.getLogger(__name__)

NO_BODY_STATUSES = (204, 304)


class Wire(Protocol):
    """Where an answer goes: a connection that takes bytes and can be waited on."""

    def write(self, data: bytes) -> None:
        """Queue bytes for the client."""

    async def drain(self) -> None:
        """Wait until the client has taken enough of what was queued."""


async def run_app(front: Front, incoming: Incoming, peer: tuple[str, int]) -> AppResult:
    """Have a worker answer the request, unless too many already wait for one."""
    if front.busy():
        return error_result(503, "Service Unavailable", "server busy; retry shortly")
    assert incoming.head is not None
    body: IO[bytes] | BodyPipe = incoming.pipe or incoming.spool or _EMPTY
    environ = environ_for(incoming.head, body, incoming.length, server=front.server_addr, peer=peer)
    front.in_app += 1
    try:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(front.pool, call_app, front.app, environ)
    finally:
        front.in_app -= 1


async def send_answer(
    wire: Wire, pool: Executor, incoming: Incoming, result: AppResult, keep: bool
) -> bool:
    """Send the answer (head and collected body in one write, then any rest).

    Returns whether the connection may serve another request: not after a body whose
    end only the close can mark.
    """
    assert incoming.head is not None
    with_body = incoming.head.method != "HEAD" and result.status not in NO_BODY_STATUSES
    length = _length(result, with_body)
    chunked = with_body and length is None and incoming.head.version == "1.1"
    keep = keep and (length is not None or chunked or not with_body)
    try:
        head = _head(result, length, keep)
    except BadResponse:
        logger.exception("the app's answer to a %s cannot be sent", incoming.head.method)
        result, keep, with_body, chunked = internal_error(), False, True, False
        head = _head(result, len(result.chunks[0]), keep)
    try:
        body = result.chunks if with_body else []
        wire.write(head + b"".join(map(chunk, body) if chunked else body))
        if with_body:
            await _send_rest(wire, pool, result, chunked)
        wire.write(LAST_CHUNK if chunked else b"")
        await wire.drain()
    finally:
        if result.closer is not None:
            await asyncio.get_running_loop().run_in_executor(pool, result.closer)
    return keep


def _head(result: AppResult, length: int | None, keep: bool) -> bytes:
    bodyless = result.status in NO_BODY_STATUSES
    return response_head(result.status, result.reason, result.headers,
                         length=length, keep_alive=keep, bodyless=bodyless)  # fmt: skip


async def _send_rest(wire: Wire, pool: Executor, result: AppResult, chunked: bool) -> None:
    """Pull the rest of a long body on a worker and send it, waiting on a slow client."""
    if result.rest is None:
        return
    loop = asyncio.get_running_loop()
    while piece := await loop.run_in_executor(pool, next_chunk, result.rest):
        wire.write(chunk(piece) if chunked else piece)
        await wire.drain()


def _length(result: AppResult, with_body: bool) -> int | None:
    """The Content-Length to send; None for a body of unknown length."""
    declared = declared_length(result.headers)
    if result.rest is None and (with_body or declared is None):
        return sum(map(len, result.chunks))
    return declared


class _Empty:
    """The `wsgi.input` of a request without a body."""

    def read(self, size: int = -1) -> bytes:
        """Always the end."""
        del size
        return b""


_EMPTY: Any = _Empty()
