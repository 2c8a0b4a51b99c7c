"""A new connection to a TLS port, from accept until its handshake is done.

`loop.create_server(ssl=...)` would hide a connection from the front until its
handshake completes: sockets stalled in the handshake would count against no limit
and could not be evicted. Here each accepted socket is admitted at once (it is
evictable, like an idle connection), must send its first byte and finish the
handshake within `head_timeout`, and is then handed to a `Connection` over TLS.
A first byte that is not a TLS handshake record is plain HTTP sent to the TLS port:
it gets a short 400 in clear saying so, instead of a reset and a line in the log.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from asyncio import sslproto
from typing import TYPE_CHECKING

from runtime.core.http_connection import LINGER_BYTES, LINGER_SECONDS, Connection

if TYPE_CHECKING:
    from runtime.core.http_front import Front

logger = logging.getLogger(__name__)

# asyncio gives each TLS connection a receive buffer of SSLProtocol.max_size (256 KiB),
# allocated and zeroed up front: idle TLS connections alone would take much of the
# 512 MB the relay's unit allows (docs/benchmarks.md). A TLS record is at most 16 KiB;
# 32 KiB takes two per read.
# Only the relay's and the node's fronts use asyncio's TLS in these processes.
RECEIVE_BUFFER = 32 * 1024
sslproto.SSLProtocol.max_size = min(sslproto.SSLProtocol.max_size, RECEIVE_BUFFER)

# The first byte of every TLS record carrying a handshake message (a ClientHello).
TLS_HANDSHAKE = 0x16
# After the close, how long the TLS layer waits for the client's close_notify.
SHUTDOWN_TIMEOUT = 5.0
_PLAIN_TEXT = b"This port speaks HTTPS: use an https:// URL instead.\n"
PLAIN_REFUSAL = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_PLAIN_TEXT), _PLAIN_TEXT)
)


class TlsGate(asyncio.Protocol):
    """Counts, times and sniffs one connection until its TLS handshake is done."""

    streaming = False

    def __init__(self, front: Front, context: ssl.SSLContext) -> None:
        """Nothing happens until the loop calls `connection_made`."""
        self.front = front
        self.context = context
        self.transport: asyncio.Transport | None = None
        self.peek: socket.socket | None = None
        self.early: list[bytes] = []
        self.plain_left: int | None = None
        self._loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None

    @property
    def evictable(self) -> bool:
        """No request of it is being answered: closing it loses nothing."""
        return True

    def abort(self) -> None:
        """Drop the connection at once."""
        self._stop_peeking()
        if self.transport is not None:
            self.transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit it, then wait (without reading) for its first byte."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.front.admit(self):  # refused: dropped already
            return
        self.timer = self._loop.call_later(self.front.limits.head_timeout, self.abort)
        # Not paused here: on Python 3.11.2 (Debian 12's) the transport starts reading
        # right after this call whatever was asked in it, and swallowed the ClientHello.
        self._loop.call_soon(self._start_peeking)

    def _start_peeking(self) -> None:
        """Stop the transport reading; watch a second descriptor for the first byte."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.pause_reading()
        try:
            # A second descriptor of the same socket: its readiness can be watched, and
            # the first bytes peeked at, while the transport's own reader is paused.
            self.peek = transport.get_extra_info("socket").dup()
            self._loop.add_reader(self.peek.fileno(), self._peeked)
        except (OSError, AttributeError) as exc:  # out of descriptors: shed this one
            logger.debug("TLS connection dropped before its handshake: %s", exc)
            self.abort()

    def _peeked(self) -> None:
        """The first byte is in: a TLS handshake starts, anything else is refused."""
        assert self.peek is not None
        try:
            first = self.peek.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return
        except OSError:
            first = b""
        self._stop_peeking()
        if not first:
            self.abort()
        elif first[0] != TLS_HANDSHAKE:
            self._refuse_plain()
        else:
            task = self._loop.create_task(self._handshake())
            self.front.tasks.add(task)
            task.add_done_callback(self.front.tasks.discard)

    def _stop_peeking(self) -> None:
        if self.peek is not None:
            if not self._loop.is_closed():
                self._loop.remove_reader(self.peek.fileno())
            self.peek.close()
            self.peek = None

    def _refuse_plain(self) -> None:
        """Say in clear that this port speaks TLS; drop what the client sends, then close."""
        assert self.transport is not None
        self.plain_left = LINGER_BYTES
        self.transport.write(PLAIN_REFUSAL)
        self.transport.write_eof()
        self.transport.resume_reading()
        self._rearm(LINGER_SECONDS)

    async def _handshake(self) -> None:
        assert self.transport is not None
        assert self.timer is not None
        left = max(0.1, self.timer.when() - self._loop.time())
        try:
            tls = await self._loop.start_tls(
                self.transport,
                self,
                self.context,
                server_side=True,
                ssl_handshake_timeout=left,
                ssl_shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
        except OSError as exc:  # ssl.SSLError and the handshake timeout included
            # Every scanner and plain-HTTP client lands here: worth no more than a debug line.
            logger.debug("TLS handshake failed: %s", exc)
            self.abort()
            self.front.connections.pop(self, None)
            return
        self._hand_over(tls)

    def _hand_over(self, tls: asyncio.Transport | None) -> None:
        """The handshake is done: a `Connection` serves HTTP over it from now on."""
        self._disarm()
        self.front.connections.pop(self, None)
        if tls is None or tls.is_closing():  # evicted or gone during the handshake
            return
        connection = Connection(self.front)
        tls.set_protocol(connection)
        connection.connection_made(tls)
        if self.early and not tls.is_closing():
            connection.data_received(b"".join(self.early))

    def data_received(self, data: bytes) -> None:
        """Plain bytes being dropped, or request bytes decrypted before the hand-over."""
        if self.plain_left is None:
            self.early.append(data)
            return
        self.plain_left -= len(data)
        if self.plain_left <= 0:
            self.abort()

    def eof_received(self) -> bool:
        """The client is done: close."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget it."""
        del exc
        self._disarm()
        self._stop_peeking()
        self.front.connections.pop(self, None)

    def _rearm(self, delay: float) -> None:
        self._disarm()
        self.timer = self._loop.call_later(delay, self.abort)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
