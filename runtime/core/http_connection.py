"""One client connection of the HTTP front: parse requests, have each answered in turn.

Every state has a deadline armed, so no client holds a connection or a worker for
ever: idle (keep-alive), head arriving, body arriving (a rate, for a body streamed to
the app), answer going out (the write deadline), closing. While a request is being
answered the socket is not read; a request pipelined behind it waits, and its own
deadline starts only once it is its turn.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from typing import TYPE_CHECKING

import httptools

from runtime.core.http_answer import run_app, send_answer
from runtime.core.http_incoming import Incoming, Refusal, framing
from runtime.core.http_wire import response_head, wants_close
from runtime.core.peer_cred import PeerCred, peer_cred
from runtime.core.wsgi_bridge import AppResult, BodyPipe, error_result

if TYPE_CHECKING:
    from runtime.core.http_front import Front

logger = logging.getLogger(__name__)

# After an error answer: what the client still sends is read and dropped for a moment,
# since closing a socket with unread input resets it and can destroy the answer.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024
# Requests one connection may have queued behind the one being answered: one read of
# tiny pipelined GETs would otherwise queue thousands of them.
MAX_PIPELINED = 32
# Header (and trailer) fields of one request: each costs a parser callback on the loop,
# and 12,500 tiny ones within the size cap slowed every other client (Apache: 100).
MAX_HEADER_FIELDS = 128
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Connection(asyncio.Protocol):
    """One client connection: parse requests, have each answered in turn, keep it alive."""

    def __init__(self, front: Front) -> None:
        """Nothing happens until the loop calls `connection_made`."""
        self.front = front
        self.limits = front.limits
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = ("", 0)
        # Unix sockets only: read once, since the kernel keeps those of connect(2) anyway.
        self.cred: PeerCred | None = None
        self.current: Incoming | None = None
        self.waiting: deque[Incoming] = deque()
        self.answering = False
        self.head_bytes = 0
        self.since_field = 0
        self.fields = 0
        self.refusal: Refusal | None = None
        # An error found in what was pipelined behind the answer in progress: sent after it.
        self.owed: Refusal | None = None
        self.lingering: int | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.writable: asyncio.Future[None] | None = None
        # No request is read after those queued (a pipelining flood, an upgrade offer).
        self.final = False
        self._loop = asyncio.get_running_loop()

    @property
    def evictable(self) -> bool:
        """Whether closing it loses no request being answered."""
        return not self.answering

    @property
    def streaming(self) -> bool:
        """Whether a large body is arriving on it (the app reads it as it comes).

        Not once its answer is out and the rest is only drained before the close: a
        client refused at once (no token) would otherwise hold an upload slot for free.
        """
        return self._pipe() is not None and self.lingering is None

    def _pipe(self) -> BodyPipe | None:
        """The pipe of the large body arriving, if one is."""
        return None if self.current is None else self.current.pipe

    def abort(self) -> None:
        """Drop the connection at once (no response)."""
        if self.transport is not None:
            self.transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the connection (or drop it), then wait for its first request."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.front.admit(self):  # refused: dropped already
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:  # no Nagle: answers go out whole
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cred = peer_cred(sock)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (str(peer[0]), int(peer[1]))
        self._arm(self.limits.keep_alive_timeout, None)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection, end a body streaming to the app, release buffered ones."""
        del exc
        self.front.connections.pop(self, None)
        self._disarm()
        if self.current is not None:
            if self.current.pipe is not None:
                self.current.pipe.end("the connection closed")
            else:
                self.current.discard()
        for incoming in self.waiting:
            incoming.discard()
        self.waiting.clear()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def eof_received(self) -> bool:
        """A client that half-closes after its request still gets the answer."""
        pipe = self._pipe()
        if pipe is not None:
            pipe.end("the client closed before the body ended")
            return False
        if self.transport is not None and self.transport.get_extra_info("ssl_object"):
            # A TLS close_notify ends the session both ways: asyncio closes anyway, and
            # logs a warning for every True returned here.
            return False
        return self.answering or bool(self.waiting)

    def pause_writing(self) -> None:
        """The client is slow to read: the next write waits."""
        self.writable = self._loop.create_future()

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
            self.since_field += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self.answering or self.waiting:
                # The request is whole: answer it over HTTP/1.1, ignoring the offer (RFC
                # 9110 7.8; curl --http2 offers h2c), and read nothing after it.
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
            # Fields are counted as they complete; a field still arriving, by its bytes.
            if incomplete and self.head_bytes + self.since_field > self.limits.header_bytes:
                self._refuse(_head_too_large(self.limits.header_bytes))

    # httptools callbacks

    def on_message_begin(self) -> None:
        """A request starts: its head has `head_timeout` to arrive (once it is its turn)."""
        if len(self.waiting) >= MAX_PIPELINED:
            self.final = True
            raise _Flood
        self.current = Incoming()
        self.head_bytes = self.since_field = self.fields = 0
        if not self.answering:
            self._arm(self.limits.head_timeout, 408)

    def on_url(self, url: bytes) -> None:
        """A piece of the request target."""
        assert self.current is not None
        self._count_head(len(url))
        self.current.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header (names compared lower-cased); trailers are counted and dropped."""
        assert self.current is not None
        self._count_head(len(name) + len(value) + 3)  # ":" and CRLF at the least
        self.fields += 1
        if self.fields > MAX_HEADER_FIELDS:
            self.refusal = Refusal(431, "Request Header Fields Too Large", "too many header fields")
            raise self.refusal
        # Chunked trailers must not pass for head fields: a proxy filters only the head.
        if self.current.head is None:
            self.current.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        """Check the framing; buffer a small body, hand a large one to the app as it comes."""
        incoming = self.current
        assert incoming is not None
        method = self.parser.get_method().decode("ascii")
        incoming.set_head(method, self.parser.get_http_version(), self.parser.should_keep_alive())
        try:
            declared = framing(incoming.headers, self.limits.body_bytes)
            self._check_stream_room(declared)
        except Refusal as refusal:
            self.refusal = refusal
            raise
        self._start_body(incoming, declared)

    def on_body(self, body: bytes) -> None:
        """A piece of the body: into the app's pipe, or into the buffer."""
        incoming = self.current
        assert incoming is not None
        incoming.received += len(body)
        if incoming.pipe is not None:
            if incoming.pipe.feed(bytes(body)) and self.transport is not None:
                self.transport.pause_reading()
                self._disarm()  # the app is slow, not the client: its clock stops
            else:
                self._arm_body(incoming)
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
        self.head_bytes = 0
        if incoming.pipe is not None:
            incoming.pipe.end()
        else:
            incoming.rewind()
            self.waiting.append(incoming)
        if self.transport is not None:
            self.transport.pause_reading()
        self._next()

    # bodies

    def _start_body(self, incoming: Incoming, declared: int | None) -> None:
        """Arm the body's deadline; a large declared body goes to the app as it arrives."""
        assert incoming.head is not None
        incoming.started = self._loop.time()
        incoming.expected = self.limits.buffer_bytes if declared is None else declared
        turn = not self.answering and not self.waiting
        owed = incoming.expects_continue and incoming.head.version == "1.1"
        if declared is not None and declared > self.limits.buffer_bytes:
            incoming.length = declared
            incoming.pipe = BodyPipe(
                declared,
                incoming.started + self._allowance(declared),
                resume=self._resume_body_soon,
                # Asked for only when the app reads: a body it refuses is never sent.
                first_read=self._continue_soon if owed else None,
            )
            self.waiting.append(incoming)
            self._next()
            if turn:
                self._arm_body(incoming)
        elif declared != 0 and turn:
            self.write(CONTINUE) if owed else None
            self._arm_body(incoming)

    def _allowance(self, size: int) -> float:
        return self.limits.body_timeout + size / self.limits.min_body_rate

    def _arm_body(self, incoming: Incoming) -> None:
        """A buffered body has one deadline; a streamed one must keep up a rate."""
        size = incoming.expected if incoming.pipe is None else incoming.received
        due = incoming.started + self._allowance(size)
        self._arm(max(0.0, due - self._loop.time()), 408)

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
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._resume_body)

    def _continue_soon(self) -> None:
        """From a worker, on the app's first read: the client may send its body now."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.write, CONTINUE)

    def _resume_body(self) -> None:
        """The app took enough of a streamed body: read the socket again, clock running."""
        current = self.current
        if current is None or current.pipe is None or current.pipe.paused:
            return
        if self.transport is None or self.transport.is_closing():
            return
        # The pause was the app's, not the client's: its allowance starts again from here.
        current.started = self._loop.time() - current.received / self.limits.min_body_rate
        self._arm_body(current)
        self.transport.resume_reading()

    # answering

    def _next(self) -> None:
        if self.answering or not self.waiting or self.transport is None:
            return
        self.answering = True
        task = self._loop.create_task(self._answer(self.waiting.popleft()))
        self.front.tasks.add(task)
        task.add_done_callback(self.front.tasks.discard)

    async def _answer(self, incoming: Incoming) -> None:
        keep = False
        try:
            result = await run_app(self.front, incoming, self.peer, self.cred)
            keep = self._keeps_alive(incoming, result)
            keep = await send_answer(self, self.front.pool, incoming, result, keep)
        except ConnectionError:
            keep = False
        except Exception:
            # A timeout means the client stopped reading; anything else, that the answer
            # broke off after its head went out: only ending the connection says so.
            logger.debug("answer to %s broke off", self.peer[0], exc_info=True)
            self.abort()
            keep = False
        finally:
            self.answering = False
            incoming.discard()
        self._after(incoming, keep)

    def _keeps_alive(self, incoming: Incoming, result: AppResult) -> bool:
        if not incoming.keep_alive or self.front.closing or wants_close(result.headers):
            return False
        return incoming.pipe is None or incoming.pipe.unread == 0

    def _last_orders(self) -> None:
        """Answer what is queued, read nothing more, then close."""
        self.final = True
        self.current = None
        if self.transport is not None:
            self.transport.pause_reading()
        if not self.answering and not self.waiting:
            self._linger()

    def _after(self, incoming: Incoming, keep: bool) -> None:
        """After an answer: close, answer the next queued request, or read the next one."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.waiting:
            self._next() if keep else self._close()
            if keep and self.streaming:
                self._resume_body()
            return
        if self.owed is not None:
            self._send_refusal(self.owed)
        elif self.final:
            self._linger()
        elif not keep:
            unread = incoming.pipe is not None and incoming.pipe.unread > 0
            self._linger() if unread else self._close()
        else:
            self._read_on()

    def _read_on(self) -> None:
        """Read again, with the deadline of whatever has already arrived of the next request."""
        assert self.transport is not None
        current = self.current
        if current is None:
            self._arm(self.limits.keep_alive_timeout, None)
        elif current.head is None:
            self._arm(self.limits.head_timeout, 408)
        else:
            assert current.head is not None
            if current.received == 0 and current.expects_continue and current.head.version == "1.1":
                self.write(CONTINUE)
            current.started = self._loop.time()
            self._arm_body(current)
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

    def _count_head(self, size: int) -> None:
        """Count a head (or trailer) field; past the cap the request is refused."""
        self.head_bytes += size
        self.since_field = 0
        if self.head_bytes > self.limits.header_bytes:
            self.refusal = _head_too_large(self.limits.header_bytes)
            raise self.refusal

    def _refuse(self, refusal: Refusal) -> None:
        """Answer an error the front found itself, then end the connection."""
        if self.answering:
            pipe = self._pipe()
            if pipe is not None:  # the body under the app broke off: nothing more to say
                pipe.end(refusal.message)
                self.abort()
                return
            # Found in what was pipelined behind the answer: it goes out after that answer.
            self.owed, self.current = refusal, None
            self.final = True
            if self.transport is not None:
                self.transport.pause_reading()
            return
        self._send_refusal(refusal)

    def _send_refusal(self, refusal: Refusal) -> None:
        result = error_result(refusal.status, refusal.reason, refusal.message)
        length = len(result.chunks[0])
        head = response_head(result.status, result.reason, result.headers,
                             length=length, keep_alive=False)  # fmt: skip
        self.write(head + result.chunks[0])
        self._linger()

    def _close(self) -> None:
        """Close after what is queued has gone out, within the write deadline."""
        assert self.transport is not None
        self._arm(self.limits.write_timeout, "abort")
        self.transport.close()

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
        self.timer = self._loop.call_later(delay, self._expired, then)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self, then: int | str | None) -> None:
        """A deadline passed: idle (close), closing (abort), or a request too slow (408)."""
        self.timer = None
        if then is None and self.transport is not None:
            self._close()
        elif then == "abort":
            self.abort()
        else:
            self._refuse(Refusal(408, "Request Timeout", "request not received in time"))


class _Flood(Exception):
    """More pipelined requests than a connection may queue."""


def _head_too_large(cap: int) -> Refusal:
    return Refusal(431, "Request Header Fields Too Large", f"request head over {cap} bytes")
