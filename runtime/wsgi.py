"""Serve a WSGI app (Bottle or any other) on cheroot in a background thread.

cheroot is multi-threaded and keeps idle keep-alive connections in a selector rather
than in a worker thread, unlike wsgiref, which serves one connection at a time and
stalls behind a browser's parallel connections. The socket is bound before
`serve_in_thread` returns, so port 0 works and the bound port is known at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cheroot import wsgi

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Idle keep-alive connections kept open. cheroot's default, 10, is below one connection
# per uploader of a modest cluster: past it every response says `Connection: close` and
# each message pays a new TCP connection. Each idle one costs a descriptor and a few KB.
KEEP_ALIVE_LIMIT = 256


@dataclass
class ServerHandle:
    """A running server: where it listens, and how to stop it."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:8001` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the serving thread is alive."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let the requests in flight finish, and join the thread."""
        self._server.stop()
        self._thread.join(timeout)


def serve_in_thread(
    app: WsgiApp,
    host: str,
    port: int,
    *,
    threads: int = 16,
    name: str = "wsgi",
    max_request_body_size: int = 0,
    timeout: float = 10.0,
    poll_interval: float = 0.05,
    keep_alive_limit: int = KEEP_ALIVE_LIMIT,
) -> ServerHandle:
    """Bind `host:port` (0 picks a free port) and serve `app` until `stop()`.

    `max_request_body_size` (0 = unlimited) makes cheroot itself answer 413 to a
    larger declared body, so a handler that answers early never drains it.
    `timeout` bounds each socket read and write, so a stalled client frees its thread.
    `poll_interval` is how long `stop()` may wait for cheroot's selector loop to notice
    (its default, 0.5 s, made every stop take that long); 20 idle wake-ups a second cost
    nothing measurable. `keep_alive_limit` bounds the idle connections kept open.
    """
    server = wsgi.Server(
        (host, port), app, numthreads=threads, server_name=name, timeout=int(timeout)
    )
    server.max_request_body_size = max_request_body_size
    server.keep_alive_conn_limit = keep_alive_limit
    server.expiration_interval = poll_interval
    # Bind in the caller's thread: an address in use fails here, not in the background.
    server.prepare()
    bound_host, bound_port = server.bind_addr[:2]
    thread = threading.Thread(target=server.serve, name=f"{name}-server", daemon=True)
    thread.start()
    return ServerHandle(str(bound_host), int(bound_port), server, thread)
