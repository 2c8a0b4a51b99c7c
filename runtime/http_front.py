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
- at most `max_queued` complete requests wait for a worker; past that, 503 at once;
- at most half the workers wait on large bodies still arriving; past that, 503 at once
  (a body trickling in holds its worker until its deadline, which grows with its size).
Parsing is llhttp's (through httptools: C, strict about framing); a body over
`buffer_bytes` is handed to the app as it arrives, so the app can refuse it (401, 413)
before it is sent, and a body left unread ends the connection rather than being read.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httptools

from runtime.http_answer import run_app, send_answer
from runtime.http_incoming import Incoming, Refusal, framing
from runtime.http_wire import response_head, wants_close
from runtime.wsgi_bridge import AppResult, BodyPipe, WsgiApp, error_result

logger = logging.getLogger(__name__)

# After an error answer: what the client still sends is read and dropped for a moment,
# since closing a socket with unread input resets it and can destroy the answer.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024
# Requests one connection may have queued behind the one being answered: one read of
# tiny pipelined GETs would otherwise queue thousands of them.
MAX_PIPELINED = 32


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


@dataclass
class Front:
    """Accepts connections and serves `app` on `threads` worker threads."""

    app: WsgiApp
    limits: FrontLimits
    threads: int
    name: str
    server_addr: tuple[str, int] = ("", 0)
    connections: dict[Connection, None] = field(default_factory=dict)
    in_app: int = 0
    closing: bool = False

    def __post_init__(self) -> None:
        """The worker pool (its threads start on first use)."""
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix=f"{self.name}-worker")

    def protocol(self) -> Connection:
        """The protocol factory for `loop.create_server`."""
        return Connection(self)

    def admit(self, connection: Connection) -> bool:
        """Make room for a new connection if at the limit; False to refuse it."""
        full = len(self.connections) >= self.limits.max_connections
        if self.closing or (full and not self._evict_one()):
            return False
        self.connections[connection] = None
        return True

    def _evict_one(self) -> bool:
        """Close the oldest connection not being answered; False if every one is."""
        for connection in self.connections:
            if connection.evictable:
                connection.abort()
                self.connections.pop(connection, None)
                return True
        return False

    def streams_full(self) -> bool:
        """Whether half the workers already wait on large bodies still arriving."""
        arriving = sum(1 for connection in self.connections if connection.streaming)
        return arriving >= max(1, self.threads // 2)

    def busy(self) -> bool:
        """Whether as many requests as workers plus the queue's bound are already in."""
        return self.in_app >= self.threads + self.limits.max_queued

    async def close(self, timeout: float) -> None:
        """Close idle connections, give requests in flight `timeout` to finish."""
        self.closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await asyncio.sleep(0.05)  # connections accepted just before the close get refused
        while self.connections and loop.time() < deadline:
            for connection in list(self.connections):
                if connection.evictable:
                    connection.abort()
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.abort()
        await asyncio.sleep(0.01)  # aborted transports close their sockets on the next turn
        self.pool.shutdown(wait=False, cancel_futures=True)


class Connection(asyncio.Protocol):
    """One client connection: parse requests, have each answered in turn, keep it alive."""

    def __init__(self, front: Front) -> None:
        """Nothing happens until the loop calls `connection_made`."""
        self.front = front
        self.limits = front.limits
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = ("", 0)
        self.current: Incoming | None = None
        self.waiting: deque[Incoming] = deque()
        self.answering = False
        self.head_bytes = 0
        self.refusal: Refusal | None = None
        self.lingering: int | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.writable: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        # No request is read after those queued (a pipelining flood, an upgrade offer).
        self.final = False
        self._loop = asyncio.get_running_loop()

    @property
    def evictable(self) -> bool:
        """Whether closing it loses no request being answered."""
        return not self.answering

    @property
    def streaming(self) -> bool:
        """Whether a large body is arriving on it (the app reads it as it comes)."""
        return self.current is not None and self.current.pipe is not None

    def abort(self) -> None:
        """Drop the connection at once (no response)."""
        if self.transport is not None:
            self.transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the connection (or drop it), then wait for its first request."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.front.admit(self):
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:  # answers go out whole and at once: no waiting on Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (str(peer[0]), int(peer[1]))
        self._arm(self.limits.keep_alive_timeout, None)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection; a body still streaming to the app ends in an error."""
        del exc
        self.front.connections.pop(self, None)
        self._disarm()
        if self.current is not None and self.current.pipe is not None:
            self.current.pipe.end("the connection closed")
        for incoming in (self.current, *self.waiting):
            if incoming is not None and not self.answering:
                incoming.discard()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def eof_received(self) -> bool:
        """A client that half-closes after its request still gets the answer."""
        return self.answering or bool(self.waiting)

    def pause_writing(self) -> None:
        """The client is slow to read: the next write waits."""
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        """The client caught up."""
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    def data_received(self, data: bytes) -> None:
        """Feed the parser; what breaks the rules is answered once and the connection ends."""
        if self.lingering is not None:
            self._discard(len(data))
            return
        if self.current is None or self.current.head is None:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self.answering or self.waiting:
                # The request is whole: answer it over HTTP/1.1, ignoring the offer (RFC
                # 9110 7.8; curl --http2 offers h2c), and read nothing after it.
                self.final = True
                self._last_orders()
            else:
                self._refuse(Refusal(501, "Not Implemented", "protocol upgrades are not supported"))
        except httptools.HttpParserCallbackError:
            if self.final:
                self._last_orders()
            else:
                self._refuse(self.refusal or Refusal(400, "Bad Request", "malformed request"))
        except httptools.HttpParserError as exc:
            self._refuse(Refusal(400, "Bad Request", f"malformed request: {exc}"))
        else:
            incomplete = self.current is not None and self.current.head is None
            if incomplete and self.head_bytes > self.limits.header_bytes:
                message = f"request head over {self.limits.header_bytes} bytes"
                self._refuse(Refusal(431, "Request Header Fields Too Large", message))

    # httptools callbacks

    def on_message_begin(self) -> None:
        """A request starts: its head has `head_timeout` to arrive."""
        if len(self.waiting) >= MAX_PIPELINED:
            self.final = True
            raise _Flood
        self.current = Incoming()
        self._arm(self.limits.head_timeout, 408)

    def on_url(self, url: bytes) -> None:
        """A piece of the request target."""
        assert self.current is not None
        self.current.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header (names compared lower-cased)."""
        assert self.current is not None
        self.current.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        """Check the framing; buffer a small body, hand a large one to the app as it comes."""
        incoming = self.current
        assert incoming is not None
        method = self.parser.get_method().decode("ascii")
        incoming.set_head(method, self.parser.get_http_version(), self.parser.should_keep_alive())
        self.head_bytes = 0
        try:
            declared = framing(incoming.headers, self.limits.body_bytes)
            self._check_stream_room(declared)
        except Refusal as refusal:
            self.refusal = refusal
            raise
        if incoming.expects_continue and declared != 0:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._start_body(incoming, declared)

    def on_body(self, body: bytes) -> None:
        """A piece of the body: into the app's pipe, or into the buffer."""
        incoming = self.current
        assert incoming is not None
        if incoming.pipe is not None:
            if incoming.pipe.feed(bytes(body)) and self.transport is not None:
                self.transport.pause_reading()
            return
        if not incoming.buffer(body, self.limits.buffer_bytes):
            message = f"chunked body over {self.limits.buffer_bytes} bytes; send Content-Length"
            self.refusal = Refusal(413, "Content Too Large", message)
            raise self.refusal

    def on_message_complete(self) -> None:
        """The request is whole: queue it, read no further until it is answered."""
        incoming, self.current = self.current, None
        assert incoming is not None
        self._disarm()
        if incoming.pipe is not None:
            incoming.pipe.end()
        else:
            incoming.rewind()
            self.waiting.append(incoming)
        if self.transport is not None:
            self.transport.pause_reading()
        self._next()

    # answering

    def _start_body(self, incoming: Incoming, declared: int | None) -> None:
        """Arm the body's deadline; a large declared body goes to the app as it arrives."""
        expected = self.limits.buffer_bytes if declared is None else declared
        if not expected:
            return
        allowed = self.limits.body_timeout + expected / self.limits.min_body_rate
        self._arm(allowed, 408)
        if declared is not None and declared > self.limits.buffer_bytes:
            loop = asyncio.get_running_loop()
            incoming.pipe = BodyPipe(
                declared,
                loop.time() + allowed,
                resume=self._resume_body_soon,
            )
            incoming.length = declared
            self.waiting.append(incoming)
            self._next()

    def _check_stream_room(self, declared: int | None) -> None:
        """Refuse a body that would stream to a worker when too many already do."""
        if (
            declared is not None
            and declared > self.limits.buffer_bytes
            and self.front.streams_full()
        ):
            message = "too many large bodies arriving at once; retry shortly"
            raise Refusal(503, "Service Unavailable", message)

    def _resume_body_soon(self) -> None:
        """From a worker: have the loop read the socket again."""
        self._loop.call_soon_threadsafe(self._resume_body)

    def _resume_body(self) -> None:
        """The app took enough of a streamed body: read the socket again."""
        receiving = self.current is not None and self.current.pipe is not None
        if receiving and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _next(self) -> None:
        if self.answering or not self.waiting or self.transport is None:
            return
        self.answering = True
        self.task = asyncio.get_running_loop().create_task(self._answer(self.waiting.popleft()))

    async def _answer(self, incoming: Incoming) -> None:
        keep = False
        try:
            result = await run_app(self.front, incoming, self.peer)
            keep = self._keeps_alive(incoming, result)
            keep = await send_answer(self, self.front.pool, incoming, result, keep)
        except ConnectionError:
            keep = False
        except TimeoutError:
            # The client stopped reading: a graceful close would keep the connection and
            # the answer queued for it until the client reads, which may be never.
            self.abort()
            keep = False
        finally:
            self.answering = False
            incoming.discard()
        self._after(incoming, keep)

    def _keeps_alive(self, incoming: Incoming, result: AppResult) -> bool:
        if not incoming.keep_alive or self.front.closing or wants_close(result.headers):
            return False
        pipe = incoming.pipe
        return pipe is None or (pipe.unread == 0 and self.current is None)

    def _last_orders(self) -> None:
        """Answer what is queued, read nothing more, then close."""
        self.current = None
        if self.transport is not None:
            self.transport.pause_reading()
        if not self.answering and not self.waiting:
            self._linger()

    def _after(self, incoming: Incoming, keep: bool) -> None:
        """After an answer: close, answer the next queued request, or wait for one."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.final and not self.waiting:
            self._linger()
            return
        if not keep:
            unread = incoming.pipe is not None and incoming.pipe.unread > 0
            self._linger() if unread else self.transport.close()
            return
        if self.waiting:
            self._next()
            return
        if self.current is None:
            self._arm(self.limits.keep_alive_timeout, None)
        self.transport.resume_reading()

    # writing, refusing, timers

    def write(self, data: bytes) -> None:
        """Queue bytes for the client (dropped once the connection is closing)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait, within the write deadline, until the client has taken enough."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the client went away")
        if self.writable is not None:
            await asyncio.wait_for(asyncio.shield(self.writable), self.limits.write_timeout)

    def _refuse(self, refusal: Refusal) -> None:
        """Answer an error the front found itself, then end the connection."""
        if self.answering:  # a streamed body broke off under the app: nothing more to say
            if self.current is not None and self.current.pipe is not None:
                self.current.pipe.end(refusal.message)
            self.abort()
            return
        result = error_result(refusal.status, refusal.reason, refusal.message)
        length = len(result.chunks[0])
        head = response_head(result.status, result.reason, result.headers,
                             length=length, keep_alive=False)  # fmt: skip
        self.write(head + result.chunks[0])
        self._linger()

    def _linger(self) -> None:
        """Half-close and drop what the client still sends, briefly, then close."""
        assert self.transport is not None
        self.lingering = LINGER_BYTES
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.resume_reading()
        self._arm(LINGER_SECONDS, "abort")

    def _discard(self, size: int) -> None:
        assert self.lingering is not None
        self.lingering -= size
        if self.lingering <= 0:
            self.abort()

    def _arm(self, delay: float, then: int | str | None) -> None:
        """(Re)start the connection's one deadline."""
        self._disarm()
        self.timer = asyncio.get_running_loop().call_later(delay, self._expired, then)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self, then: int | str | None) -> None:
        """A deadline passed: idle (close), lingering (abort), or a request too slow (408)."""
        self.timer = None
        if then is None and self.transport is not None:
            self.transport.close()
        elif then == "abort":
            self.abort()
        else:
            self._refuse(Refusal(408, "Request Timeout", "request not received in time"))


class _Flood(Exception):
    """More pipelined requests than a connection may queue."""
