"""HTTP over a Unix socket for `requests`: an adapter whose connections dial AF_UNIX.

Mounted on `http+unix://`, so no proxy setting and no other URL can send a request
(and an agent's token) anywhere but the socket. Only urllib3, which requests has.
"""

from __future__ import annotations

import socket
from typing import Any

import requests
import requests.adapters
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

BASE_URL = "http+unix://localhost"


class _UnixConnection(HTTPConnection):
    """An HTTP connection to `socket_path` instead of a host and port."""

    socket_path = ""

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        timeout = self.timeout if isinstance(self.timeout, int | float) else None
        sock.settimeout(timeout)
        try:
            sock.connect(self.socket_path)
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(self, f"{self.socket_path}: connect timed out") from exc
        except OSError as exc:
            sock.close()
            raise NewConnectionError(self, f"cannot connect to {self.socket_path}: {exc}") from exc
        return sock


class _UnixPool(HTTPConnectionPool):
    def __init__(self, socket_path: str, **kwargs: Any) -> None:
        super().__init__("localhost", **kwargs)
        self.ConnectionCls = type(
            "BoundUnixConnection", (_UnixConnection,), {"socket_path": socket_path}
        )


class UnixAdapter(requests.adapters.HTTPAdapter):
    """Sends every request of the session to one Unix socket."""

    def __init__(self, socket_path: str, pool_size: int = 4) -> None:
        """`socket_path` is the `.sock` file."""
        self._pool = _UnixPool(socket_path, maxsize=pool_size)
        super().__init__()

    def get_connection_with_tls_context(self, *_: Any, **__: Any) -> HTTPConnectionPool:
        """The one pool of this socket, whatever the URL says."""
        return self._pool

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.close()
        super().close()


def unix_session(socket_path: str) -> requests.Session:
    """A session that sends `http+unix://localhost/...` to `socket_path`, no proxies."""
    session = requests.Session()
    session.trust_env = False
    session.mount("http+unix://", UnixAdapter(socket_path))
    return session
