"""Answering one request: run the app on a worker, then frame and send what it returned."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol

from runtime.core.http_incoming import Incoming
from runtime.core.http_wire import LAST_CHUNK, BadResponse, chunk, declared_length, response_head
from runtime.core.park import CAN_PARK_KEY, DEADLINE_KEY, Park
from runtime.core.peer_cred import PeerCred
from runtime.core.wsgi_bridge import (
    AppResult,
    BodyPipe,
    RequestHead,
    WsgiApp,
    call_app,
    environ_for,
    error_result,
    internal_error,
    next_chunk,
)

if TYPE_CHECKING:
    from runtime.core.http_front import Front

logger = logging.getLogger(__name__)

NO_BODY_STATUSES = (204, 304)


@dataclass(frozen=True)
class _Where:
    """The two ends of the connection a request came in on."""

    server: tuple[str, int]
    peer: tuple[str, int]
    cred: PeerCred | None


class Wire(Protocol):
    """Where an answer goes: a connection that takes bytes and can be waited on."""

    def write(self, data: bytes) -> None:
        """Queue bytes for the client."""

    async def drain(self) -> None:
        """Wait until the client has taken enough of what was queued."""


async def run_app(
    front: Front, incoming: Incoming, peer: tuple[str, int], cred: PeerCred | None = None
) -> AppResult:
    """Have a worker answer the request, unless too many already wait for one."""
    if front.busy():
        return error_result(503, "Service Unavailable", "server busy; retry shortly")
    assert incoming.head is not None
    body: IO[bytes] | BodyPipe = incoming.pipe or incoming.spool or _EMPTY
    where = _Where(front.server_addr, peer, cred)
    extra: dict[str, Any] = {CAN_PARK_KEY: True}
    while True:
        result = await _on_worker(front, incoming.head, body, incoming.length, where, extra)
        park = result.park
        if not isinstance(park, Park):
            return result
        if front.closing:  # parked after the close began: answer now
            extra = {CAN_PARK_KEY: True, DEADLINE_KEY: time.monotonic()}
            continue
        # Parked (runtime.core.park): wait on the loop, no worker held, then ask the app again.
        waiter = asyncio.ensure_future(park.bell.until_rung(park.seen, park.deadline))
        front.parked.add(waiter)
        try:
            await asyncio.wait({waiter})
        finally:
            front.parked.discard(waiter)
        # Cancelled by the front's close: the app answers now, with what it has.
        deadline = time.monotonic() if waiter.cancelled() else park.deadline
        extra = {CAN_PARK_KEY: True, DEADLINE_KEY: deadline}


async def _on_worker(
    front: Front,
    head: RequestHead,
    body: IO[bytes] | BodyPipe,
    length: int,
    where: _Where,
    extra: dict[str, Any],
) -> AppResult:
    """Run the app once on a worker; a parked request does not count as waiting for one."""
    front.in_app += 1
    try:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            front.pool, _call, front.app, head, body, length, where, front.url_scheme, extra
        )
    finally:
        front.in_app -= 1


def _call(
    app: WsgiApp,
    head: RequestHead,
    body: IO[bytes] | BodyPipe,
    length: int,
    where: _Where,
    scheme: str,
    extra: dict[str, Any],
) -> AppResult:
    """On a worker: build the environ (its cost is not the loop's) and run the app."""
    environ = environ_for(
        head, body, length, server=where.server, peer=where.peer, scheme=scheme, cred=where.cred
    )
    environ.update(extra)
    return call_app(app, environ)


async def send_answer(
    wire: Wire, pool: Executor, incoming: Incoming, result: AppResult, keep: bool
) -> bool:
    """Send the answer (head and collected body in one write, then any rest).

    Returns whether the connection may serve another request: not after a body whose
    end only the close can mark. An answer that breaks off raises BrokenAnswer.
    """
    closer = result.closer
    try:
        return await _send(wire, pool, incoming, result, keep)
    finally:
        if closer is not None:
            await asyncio.get_running_loop().run_in_executor(pool, _close, closer)


class BrokenAnswer(Exception):
    """The app's body ended before its Content-Length: only a close can say so."""


async def _send(
    wire: Wire, pool: Executor, incoming: Incoming, result: AppResult, keep: bool
) -> bool:
    assert incoming.head is not None
    with_body = incoming.head.method != "HEAD" and result.status not in NO_BODY_STATUSES
    length = _length(result, with_body)
    chunked = with_body and length is None and incoming.head.version == "1.1"
    keep = keep and (length is not None or chunked or not with_body)
    try:
        head = _head(result, length, keep)
    except BadResponse:
        logger.exception("the app's answer to a %s cannot be sent", incoming.head.method)
        result, keep, chunked = internal_error(), False, False
        length = len(result.chunks[0])
        head = _head(result, length, keep)
    if not with_body:
        wire.write(head)
        await wire.drain()
        return keep
    body, left = _fit(result.chunks, length)
    wire.write(head + b"".join(map(chunk, body) if chunked else body))
    if result.rest is not None:
        left = await _send_rest(wire, pool, result.rest, chunked, left)
    if left:
        raise BrokenAnswer(f"the answer ended {left} bytes short of its Content-Length")
    wire.write(LAST_CHUNK if chunked else b"")
    await wire.drain()
    return keep


def _head(result: AppResult, length: int | None, keep: bool) -> bytes:
    # A bodiless status has no framing; HEAD of a body of unknown length has none either.
    bodyless = result.status in NO_BODY_STATUSES or (length is None and not keep)
    return response_head(result.status, result.reason, result.headers,
                         length=length, keep_alive=keep, bodyless=bodyless)  # fmt: skip


def _fit(chunks: list[bytes], length: int | None) -> tuple[list[bytes], int | None]:
    """The chunks cut at `length` bytes, and how many bytes are still owed after them."""
    if length is None:
        return chunks, None
    fitted: list[bytes] = []
    left = length
    for piece in chunks:
        fitted.append(piece[:left])
        left -= len(fitted[-1])
    return fitted, left


async def _send_rest(
    wire: Wire, pool: Executor, rest: Iterator[bytes], chunked: bool, left: int | None
) -> int | None:
    """Pull the rest of a long body on a worker and send it, never past its length."""
    loop = asyncio.get_running_loop()
    while left is None or left > 0:
        piece = await loop.run_in_executor(pool, next_chunk, rest)
        if not piece:
            break
        if left is not None:
            piece = piece[:left]
            left -= len(piece)
        wire.write(chunk(piece) if chunked else piece)
        await wire.drain()
    return left


def _close(closer: Callable[[], None]) -> None:
    """The app's close(), on a worker: its failure is logged, never the connection's."""
    try:
        closer()
    except Exception:
        logger.exception("the app's response iterator failed to close")


def _length(result: AppResult, with_body: bool) -> int | None:
    """The Content-Length to send; None for a body of unknown length."""
    if result.rest is None and with_body:
        return sum(map(len, result.chunks))
    return declared_length(result.headers)


class _Empty:
    """The `wsgi.input` of a request without a body."""

    def read(self, size: int = -1) -> bytes:
        """Always the end."""
        del size
        return b""


_EMPTY: Any = _Empty()
