"""Serve a WSGI app (Bottle or any other) in a background thread, behind `runtime.core.http_front`.

One event loop thread owns every socket and reads whole requests within deadlines;
worker threads only ever see complete requests. The socket is bound before
`serve_in_thread` returns, so port 0 works and the bound port is known at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import ssl
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from runtime.core.http_front import Front, FrontLimits
from runtime.core.unix_socket import bind_unix
from runtime.core.wsgi_bridge import WsgiApp

__all__ = ["FrontLimits", "ServerHandle", "WsgiApp", "serve_in_thread", "serve_unix_in_thread"]

# Descriptors kept free for database files, logs and outgoing connections.
RESERVED_FDS = 128


@dataclass
class ServerHandle:
    """A running server: where it listens, and how to stop it."""

    host: str
    port: int
    _front: Front
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread
    _stopped: asyncio.Event

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:8001` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self._front.url_scheme}://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the serving thread is alive."""
        return self._thread.is_alive()

    @property
    def limits(self) -> FrontLimits:
        """The limits in force (after the descriptor limit was applied)."""
        return self._front.limits

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let the requests in flight finish, and join the thread."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)


def serve_in_thread(
    app: WsgiApp,
    host: str,
    port: int,
    *,
    threads: int = 16,
    name: str = "wsgi",
    limits: FrontLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> ServerHandle:
    """Bind `host:port` (0 picks a free port) and serve `app` until `stop()`.

    With `ssl_context`, every connection speaks TLS (runtime.core.http_tls): the handshake
    must end within the head timeout, TLS 1.2 at least, and plain HTTP gets a 400.
    """
    if ssl_context is not None:
        ssl_context.minimum_version = max(ssl_context.minimum_version, ssl.TLSVersion.TLSv1_2)
    # A connection in its TLS handshake briefly holds a second descriptor (its peek).
    per_connection = 1 if ssl_context is None else 2
    limits = _within_descriptor_limit(limits or FrontLimits(), per_connection)
    sock = socket.create_server((host, port), family=_family(host), backlog=1024)
    front = Front(app, limits, threads, name, tls=ssl_context)
    bound = sock.getsockname()
    front.server_addr = (str(bound[0]), int(bound[1]))
    return _start(front, sock, name)


def serve_unix_in_thread(
    app: WsgiApp,
    path: Path,
    *,
    mode: int = 0o600,
    threads: int = 16,
    name: str = "wsgi",
    limits: FrontLimits | None = None,
) -> ServerHandle:
    """Bind the Unix socket `path` with `mode` (a stale one replaced) and serve `app`.

    The handle's host is the path and its port 0; `stop()` leaves the file, see
    `runtime.core.unix_socket.unlink_socket`.
    """
    limits = _within_descriptor_limit(limits or FrontLimits())
    sock = bind_unix(path, mode)
    front = Front(app, limits, threads, name)
    front.server_addr = (str(path), 0)
    return _start(front, sock, name)


def _start(front: Front, sock: socket.socket, name: str) -> ServerHandle:
    """Serve the bound, listening `sock` on a new thread; return once it accepts."""
    loop = asyncio.new_event_loop()
    stopped = asyncio.Event()
    ready = threading.Event()
    thread = threading.Thread(
        target=_run, args=(loop, front, sock, stopped, ready), name=f"{name}-server", daemon=True
    )
    thread.start()
    ready.wait()
    return ServerHandle(front.server_addr[0], front.server_addr[1], front, loop, thread, stopped)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _run(
    loop: asyncio.AbstractEventLoop,
    front: Front,
    sock: socket.socket,
    stopped: asyncio.Event,
    ready: threading.Event,
) -> None:
    """The server thread: serve until `stopped` is set, then close in order."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(front, sock, stopped, ready))
    finally:
        ready.set()
        loop.close()


async def _serve(
    front: Front, sock: socket.socket, stopped: asyncio.Event, ready: threading.Event
) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(front.protocol, sock=sock)
    ready.set()
    try:
        await stopped.wait()
    finally:
        # Stop accepting but leave the server open until every connection is gone: on
        # Python 3.11 a connection accepted just as the server closes leaks its socket.
        loop.remove_reader(sock)
        await front.close(timeout=10.0)
        server.close()


def _within_descriptor_limit(limits: FrontLimits, per_connection: int = 1) -> FrontLimits:
    """Raise the soft descriptor limit toward the hard one; fit the connections under it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = limits.max_connections * per_connection + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitting = (soft - RESERVED_FDS) // per_connection
        return replace(limits, max_connections=max(16, fitting))
    return limits
