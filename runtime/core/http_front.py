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
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from runtime.core.http_connection import Connection
from runtime.core.http_tls import TlsGate
from runtime.core.wsgi_bridge import WsgiApp


class Held(Protocol):
    """What the front holds open: a connection, or a TLS connection still in its handshake."""

    @property
    def evictable(self) -> bool:
        """Whether closing it loses no request being answered."""

    @property
    def streaming(self) -> bool:
        """Whether a large body is arriving on it."""

    def abort(self) -> None:
        """Drop it at once."""


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
    # Set: every connection speaks TLS (see runtime.core.http_tls).
    tls: ssl.SSLContext | None = None
    connections: dict[Held, None] = field(default_factory=dict)
    in_app: int = 0
    closing: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Parked requests' waits (runtime.core.park): a close cuts them short.
    parked: set[asyncio.Future[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        """The worker pool (its threads start on first use)."""
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix=f"{self.name}-worker")

    @property
    def url_scheme(self) -> str:
        """`https` when the front speaks TLS, else `http`."""
        return "http" if self.tls is None else "https"

    def protocol(self) -> Connection | TlsGate:
        """The protocol factory for `loop.create_server`."""
        return Connection(self) if self.tls is None else TlsGate(self, self.tls)

    def admit(self, connection: Held) -> bool:
        """Make room for a new connection if at the limit; False: refused, and dropped."""
        full = len(self.connections) >= self.limits.max_connections
        if self.closing or (full and not self._evict_one()):
            connection.abort()
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
        for waiter in list(self.parked):
            waiter.cancel()  # each parked request is answered at once with what it has
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
        # An answer whose client left may still be running in a worker: let it end.
        left = max(0.0, deadline - loop.time())
        await asyncio.wait(self.tasks, timeout=left) if self.tasks else None
        for task in self.tasks:
            task.cancel()
        await asyncio.sleep(0.01)  # aborted transports close their sockets on the next turn
        self.pool.shutdown(wait=False, cancel_futures=True)
