"""A deadline for a whole HTTP request: past it, the request's socket is shut down.

requests' timeout bounds each socket operation, so a peer that sends a byte now and
then holds the caller for ever. A `DeadlineSession` arms one shared watchdog thread
per request; when the deadline passes, the sockets of that session are shut down,
the blocked read returns at once, and requests raises ConnectionError, which the
relay client already treats as "the relay is away, retry later". The answer's body is
read within `max_answer_bytes` as well: a peer answering a gigabyte would otherwise
have all of it held in memory, by each actor that asked, before any check could look.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

logger = logging.getLogger(__name__)

# How late past its deadline a request may be cut: the watchdog looks this often while armed.
RESOLUTION = 0.1
# The relay's largest answer is one stored message, within its 16 MiB body limit.
MAX_ANSWER_BYTES = 16 * 1024 * 1024


class _Watchdog:
    """One thread for the whole process; it sleeps while nothing is armed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, Callable[[], None]]] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, on_expiry: Callable[[], None]) -> int:
        """Call `on_expiry` in `seconds` unless disarmed first; return the token."""
        with self._cond:
            token = next(self._tokens)
            self._armed[token] = (time.monotonic() + seconds, on_expiry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()
        return token

    def disarm(self, token: int) -> None:
        """Forget a deadline that was met."""
        with self._cond:
            self._armed.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._armed:
                    self._cond.wait()
                now = time.monotonic()
                due = [token for token, (at, _) in self._armed.items() if at <= now]
                expired = [self._armed.pop(token)[1] for token in due]
            for on_expiry in expired:
                try:
                    on_expiry()
                except Exception:  # the watchdog must outlive any one callback
                    logger.exception("HTTP deadline callback failed")
            time.sleep(RESOLUTION)


_WATCHDOG = _Watchdog()


class DeadlineSession(requests.Session):
    """A requests.Session in which every request ends within `deadline` seconds."""

    def __init__(self, deadline: float, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        super().__init__()
        self.deadline = deadline
        self.max_answer_bytes = max_answer_bytes
        self._connections: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()
        adapter = HTTPAdapter()
        adapter.poolmanager.pool_classes_by_scheme = _tracking_pools(self._connections)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        """Send a request; raise requests.Timeout if the whole of it takes past the deadline.

        An answer over `max_answer_bytes` raises requests.ConnectionError.
        """
        expired = threading.Event()

        def cut() -> None:
            expired.set()
            self._shut_down()

        token = _WATCHDOG.arm(self.deadline, cut)
        try:
            response = super().request(*args, **{**kwargs, "stream": True})
            _read_within(response, self.max_answer_bytes)
            return response
        except requests.ConnectionError as exc:
            if expired.is_set():
                raise requests.Timeout(f"no full answer within {self.deadline:g}s") from exc
            raise
        finally:
            _WATCHDOG.disarm(token)

    def _shut_down(self) -> None:
        for conn in list(self._connections):
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _read_within(response: requests.Response, limit: int) -> None:
    """Read the (decoded) body into `response`, as requests does unless streaming."""
    parts: list[bytes] = []
    size = 0
    for part in response.iter_content(64 * 1024):
        size += len(part)
        if size > limit:
            response.close()  # the connection goes, with the rest of the answer unread
            # The exception's traceback keeps this frame alive: let go of what was read.
            parts.clear()
            raise requests.ConnectionError(f"answer over {limit} bytes", response=response)
        parts.append(part)
    # What `response.content` returns from now on: requests keeps the body there.
    response._content = b"".join(parts)


def _tracking_pools(
    connections: weakref.WeakSet[HTTPConnection],
) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes whose connections register in `connections` when they connect."""

    class Plain(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            connections.add(self)

    class Tls(HTTPSConnection):
        def connect(self) -> None:
            # Before the handshake: a relay that stalls it is cut at the deadline too
            # (meanwhile `sock` is the plain socket, which shuts down just as well).
            connections.add(self)
            super().connect()

    class PlainPool(HTTPConnectionPool):
        ConnectionCls = Plain

    class TlsPool(HTTPSConnectionPool):
        ConnectionCls = Tls

    return {"http": PlainPool, "https": TlsPool}
