"""An HTTP/1.1 front for WSGI apps: one event loop owns every socket, workers see whole requests.

A thread per connection lets any client hold a worker: a slow sender (a header line
every few seconds), an idle socket, a body trickling in. Here the event loop reads each
request head (and any body up to `buffer_bytes`) within deadlines, and only a complete
request reaches a worker thread. What a client can hold is bounded:
- the head must arrive within `head_timeout` of its first byte, and an idle keep-alive
  connection is closed after `keep_alive_timeout`;
- the head is at most `header_bytes` (431 past it), the body at most `body_bytes` (413),
  declared by Content-Length; Content-Length with Transfer-Encoding is refused (400);
- a body arrives at `min_body_rate` bytes/s at least, after `body_timeout`;
- at most `max_connections` are open: at the limit, a new one pushes out the oldest
  connection that is not in the middle of a request being answered;
- at most `max_queued` complete requests wait for a worker; past that, 503 at once.
Parsing is h11's (sans-IO, strict about framing); bodies over `buffer_bytes` are read
from the socket as the app asks, so an app can refuse one (401, 413) before it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

import h11

from runtime.wsgi_bridge import (
    AppResult,
    StreamedBody,
    WsgiApp,
    call_app,
    environ_for,
    error_result,
    next_chunk,
)

logger = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
# A buffered body stays in memory up to this size, then spills to a temporary file.
SPOOL_BYTES = 64 * 1024
NO_BODY_STATUSES = (204, 304)
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024


class Closed(Exception):
    """The connection ended (peer gone, deadline passed, or answered with an error)."""


@dataclass(frozen=True)
class FrontLimits:
    """What one client may hold of the server; see the module docstring."""

    head_timeout: float = 10.0
    keep_alive_timeout: float = 30.0
    header_bytes: int = 64 * 1024
    body_bytes: int = 16 * 1024 * 1024
    buffer_bytes: int = 1024 * 1024
    body_timeout: float = 10.0
    min_body_rate: float = 64 * 1024
    write_timeout: float = 30.0
    max_connections: int = 1024
    max_queued: int = 64


class Front:
    """Accepts connections on `loop` and serves `app` on `threads` worker threads."""

    def __init__(self, app: WsgiApp, limits: FrontLimits, threads: int, name: str) -> None:
        """Nothing runs until `serve` is awaited on the loop."""
        self.app = app
        self.limits = limits
        self.threads = threads
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix=f"{name}-worker")
        self.connections: dict[Connection, asyncio.Task[None]] = {}
        self.in_app = 0
        self.closing = False
        self.server_addr: tuple[str, int] = ("", 0)

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A new connection: make room if at the limit, then serve it in its own task."""
        full = len(self.connections) >= self.limits.max_connections
        if self.closing or (full and not self._evict_one()):
            writer.transport.abort()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:  # answers go out whole and at once: no waiting on Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = Connection(self, reader, writer)
        task = asyncio.get_running_loop().create_task(connection.serve())
        self.connections[connection] = task
        task.add_done_callback(lambda _: self.connections.pop(connection, None))

    def _evict_one(self) -> bool:
        """Close the oldest connection not being answered; False if every one is."""
        for connection in self.connections:
            if connection.evictable:
                connection.abort()
                self.connections.pop(connection, None)
                return True
        return False

    def busy(self) -> bool:
        """Whether as many requests as workers plus the queue's bound are already in."""
        return self.in_app >= self.threads + self.limits.max_queued

    async def close(self, timeout: float) -> None:
        """Close idle connections, give requests in flight `timeout` to finish."""
        self.closing = True
        await asyncio.sleep(0.05)  # connections accepted just before the close get aborted
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            for connection in list(self.connections):
                if connection.evictable:
                    connection.abort()
            await asyncio.sleep(0.01)
        tasks = list(self.connections.values())
        for connection in list(self.connections):
            connection.abort()
        # Let every aborted transport run its connection_lost, which closes the socket.
        await asyncio.wait(tasks, timeout=1.0) if tasks else None
        await asyncio.sleep(0)
        self.pool.shutdown(wait=False, cancel_futures=True)


class Connection:
    """One client connection: read a request, have it answered, repeat while kept alive."""

    def __init__(
        self, front: Front, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Wrap the streams; the h11 state machine bounds the head at `header_bytes`."""
        self.front = front
        self.limits = front.limits
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.header_bytes)
        self.evictable = True
        self.leftover = b""
        peer = writer.get_extra_info("peername") or ("", 0)
        self.peer = (str(peer[0]), int(peer[1]))

    def abort(self) -> None:
        """Drop the connection at once (no response)."""
        self.writer.transport.abort()

    async def serve(self) -> None:
        """Answer requests until the client or a deadline ends the connection."""
        try:
            while await self._one_request():
                self.h11.start_next_cycle()
        except _Refusal as refusal:
            await self._send_refusal(refusal)
        except (Closed, ConnectionError, h11.ProtocolError, TimeoutError):
            pass
        except Exception:
            logger.exception("HTTP connection from %s failed", self.peer[0])
        finally:
            self.writer.close()

    async def _send_refusal(self, refusal: _Refusal) -> None:
        """Write the error answer, unless a response had already begun; then close."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        result = error_result(refusal.status, refusal.reason, refusal.message)
        head = f"HTTP/1.1 {result.status} {refusal.reason}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in result.headers)
        head += "Connection: close\r\n\r\n"
        self.writer.write(head.encode("latin-1") + b"".join(result.chunks))
        with contextlib.suppress(ConnectionError, TimeoutError, OSError):
            async with asyncio.timeout(self.limits.write_timeout):
                await self.writer.drain()
            await self._linger()

    async def _linger(self) -> None:
        """Half-close and discard what the client still sends, briefly: closing a socket
        with unread input resets it, and the reset can destroy the answer in flight."""
        self.writer.write_eof()
        left = LINGER_BYTES
        async with asyncio.timeout(LINGER_SECONDS):
            while left > 0 and (data := await self.reader.read(READ_CHUNK)):
                left -= len(data)

    async def _one_request(self) -> bool:
        """Read, answer and finish one request; whether the connection may serve another."""
        request = await self._read_head()
        if request is None:
            return False
        body, length, streamed = await self._read_body(request)
        self.evictable = False
        try:
            result = await self._run(request, body, length, streamed)
            await self._respond(request, result)
        finally:
            self.evictable = True
            body.close()
        if streamed is not None:
            if streamed.unread:
                return False  # the app left part of a large body unread: do not drain it
            await self._body_end()
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    async def _read_head(self) -> h11.Request | None:
        """The next request's head, within the idle and head deadlines; None at a clean end."""
        deadline = time.monotonic() + self.limits.keep_alive_timeout
        started = False
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                reason = "Request Header Fields Too Large" if status == 431 else "Bad Request"
                raise _Refusal(status, reason, f"malformed request: {exc}") from None
            if isinstance(event, h11.Request):
                return event
            if event is not h11.NEED_DATA:
                return None  # ConnectionClosed, or PAUSED after the client closed its side
            if not started and self.h11.trailing_data[0]:
                started, deadline = True, time.monotonic() + self.limits.head_timeout
            data = await self._recv(deadline, timed_out=408 if started else None)
            if data and not started:
                started, deadline = True, time.monotonic() + self.limits.head_timeout
            self.h11.receive_data(data)

    async def _recv(self, deadline: float, timed_out: int | None) -> bytes:
        """Some bytes from the socket before `deadline` (b"" at EOF)."""
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                return await self.reader.read(READ_CHUNK)
        except TimeoutError:
            if timed_out is not None:
                message = "request not received in time"
                raise _Refusal(timed_out, "Request Timeout", message) from None
            raise Closed from None

    async def _read_body(self, request: h11.Request) -> tuple[IO[bytes], int, StreamedBody | None]:
        """Check the framing; buffer a small body, or set up streaming for a large one."""
        declared = self._declared_length(request)
        limit = self.limits.body_bytes
        if declared is not None and declared > limit:
            raise _Refusal(413, "Content Too Large", f"body is {declared} bytes; limit {limit}")
        if self.h11.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        if declared is not None and declared > self.limits.buffer_bytes:
            deadline = self._body_deadline(declared)
            loop = asyncio.get_running_loop()
            streamed = StreamedBody(self._pull, loop, declared, deadline)
            return streamed, declared, streamed  # type: ignore[return-value]
        return await self._buffer_body(declared)

    def _declared_length(self, request: h11.Request) -> int | None:
        """Content-Length, or None for chunked; both at once is ambiguous framing."""
        names = {name for name, _ in request.headers}
        if b"transfer-encoding" in names and b"content-length" in names:
            message = "Content-Length and Transfer-Encoding together are ambiguous; send one"
            raise _Refusal(400, "Bad Request", message)
        for name, value in request.headers:
            if name == b"content-length":
                return int(value)
        return None if b"transfer-encoding" in names else 0

    def _body_deadline(self, length: int) -> float:
        return time.monotonic() + self.limits.body_timeout + length / self.limits.min_body_rate

    async def _buffer_body(self, declared: int | None) -> tuple[IO[bytes], int, None]:
        """Read the whole body (chunked ones up to `buffer_bytes`) into a spooled file."""
        cap = self.limits.buffer_bytes if declared is None else declared
        deadline = self._body_deadline(cap)
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        size = 0
        try:
            while (data := await self._body_bytes(deadline)) is not None:
                size += len(data)
                if size > cap:
                    message = f"chunked body over {cap} bytes; send Content-Length"
                    raise _Refusal(413, "Content Too Large", message)
                spool.write(data)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool, size, None

    async def _body_bytes(self, deadline: float) -> bytes | None:
        """The next piece of the body, None at its end."""
        while True:
            event = self.h11.next_event()
            if isinstance(event, h11.Data):
                return bytes(event.data)
            if isinstance(event, h11.EndOfMessage):
                return None
            if event is not h11.NEED_DATA:
                raise Closed
            data = await self._recv(deadline, timed_out=408)
            self.h11.receive_data(data)

    async def _body_end(self) -> None:
        """Take the end of a streamed body the app read to its last byte."""
        deadline = time.monotonic() + self.limits.body_timeout
        if await self._body_bytes(deadline) is not None:
            raise Closed  # more bytes than Content-Length said: h11 refuses this first

    async def _pull(self, want: int) -> bytes:
        """Up to `want` bytes of a streamed body (for `StreamedBody`, on the loop)."""
        if not self.leftover:
            data = await self._body_bytes(time.monotonic() + self.limits.body_timeout)
            self.leftover = data or b""
        piece, self.leftover = self.leftover[:want], self.leftover[want:]
        return piece

    async def _run(
        self, request: h11.Request, body: IO[bytes], length: int, streamed: StreamedBody | None
    ) -> AppResult:
        """Have a worker answer the request, unless too many already wait for one."""
        front = self.front
        if front.busy():
            return error_result(503, "Service Unavailable", "server busy; retry shortly")
        environ = environ_for(request, body, length, server=front.server_addr, peer=self.peer)
        if streamed is not None:
            environ["wsgi.input"] = streamed
        front.in_app += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(front.pool, call_app, front.app, environ)
        finally:
            front.in_app -= 1

    async def _respond(self, request: h11.Request, result: AppResult) -> None:
        """Send the app's answer: head and collected body in one write, then any rest."""
        headers = result.headers
        if result.rest is None and not any(k.lower() == "content-length" for k, _ in headers):
            headers = [*headers, ("Content-Length", str(sum(map(len, result.chunks))))]
        response = h11.Response(status_code=result.status, headers=headers, reason=result.reason)
        with_body = request.method != b"HEAD" and result.status not in NO_BODY_STATUSES
        try:
            out = [self.h11.send(response) or b""]
            if with_body:
                out += [self.h11.send(h11.Data(data=chunk)) or b"" for chunk in result.chunks]
            if with_body and result.rest is not None:
                await self._write(b"".join(out))
                out = await self._send_rest(result.rest)
            out.append(self.h11.send(h11.EndOfMessage()) or b"")
            await self._write(b"".join(out))
        finally:
            if result.closer is not None:
                await asyncio.get_running_loop().run_in_executor(self.front.pool, result.closer)

    async def _send_rest(self, rest: Iterator[bytes]) -> list[bytes]:
        """Pull the rest of a long body on a worker and send it; [] when done."""
        loop = asyncio.get_running_loop()
        while chunk := await loop.run_in_executor(self.front.pool, next_chunk, rest):
            await self._write(self.h11.send(h11.Data(data=chunk)) or b"")
        return []

    async def _send(self, event: Any) -> None:
        await self._write(self.h11.send(event) or b"")

    async def _write(self, data: bytes) -> None:
        """Write and wait until the client has taken enough, within the write deadline."""
        if data:
            self.writer.write(data)
            async with asyncio.timeout(self.limits.write_timeout):
                await self.writer.drain()


class _Refusal(Exception):
    """An error answer the front owes the client before closing."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
