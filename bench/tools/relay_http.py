"""A relay process on an existing data directory, and a keep-alive client that times GETs.

Shared by the benchmarks that measure requests at the client (scaling, and query's
comparison with Datasette): the relay runs as its own process with one node token and an
operator password, so both the node API (/query/messages) and the inbox (/messages) work.
"""

from __future__ import annotations

import http.client
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import yaml

from relay_app.auth import token_sha256 as sha
from tests.support import TOKENS, Daemon

NODE = "node-a"
PASSWORD = "bench-operator-password"


def node_headers() -> dict[str, str]:
    """Headers that authenticate a request as NODE."""
    return {"X-Commander-Node": NODE, "Authorization": f"Bearer {TOKENS[NODE]}"}


def start_relay_on(data_dir: Path, work: Path, timeout: float = 180.0) -> Daemon:
    """Serve `data_dir` from a relay process on 127.0.0.1 (any free port)."""
    from relay_app.passwords import hash_password

    work.mkdir(parents=True, exist_ok=True)
    doc = {
        "nodes": [{"id": NODE, "host": "127.0.0.1", "port": 9, "token_sha256": sha(TOKENS[NODE])}],
        "relay": {"min_free_bytes": 0, "operator_password_hash": hash_password(PASSWORD)},
    }
    (work / "relay.yaml").write_text(yaml.safe_dump(doc))
    args = ["-m", "relay_app.cli", "serve", "--config", str(work / "relay.yaml")]
    args += ["--host", "127.0.0.1", "--port", "0", "--data-dir", str(data_dir.resolve())]
    # Opening a large database (migrations check, first reads) may take a while.
    return Daemon(args, work / "relay.log", timeout=timeout)


class Client:
    """One keep-alive HTTP/1.1 connection; http.client adds the least client overhead."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.headers = dict(headers or {})

    def request(
        self, method: str, path: str, body: bytes | None = None, extra: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """Send one request; return status, headers and body.

        A server closes a keep-alive connection left idle for a while (cheroot after 10 s);
        a GET then goes again once on a fresh connection. The timed loops warm up first, so
        such a reconnection is never timed.
        """
        try:
            return self._send(method, path, body, extra)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if method != "GET":
                raise
            self.conn.close()
            return self._send(method, path, body, extra)

    def _send(
        self, method: str, path: str, body: bytes | None, extra: dict[str, str] | None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        self.conn.request(method, path, body, {**self.headers, **(extra or {})})
        response = self.conn.getresponse()
        return response.status, response.headers, response.read()

    def get_ms(self, path: str) -> float:
        """Time one GET, which must answer 200, in milliseconds."""
        start = time.perf_counter()
        status, _, body = self.request("GET", path)
        elapsed = (time.perf_counter() - start) * 1000
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
        return elapsed

    def time_gets(self, paths: list[str], runs: int, warm: int = 3) -> list[float]:
        """Each path `warm` times untimed, then `runs` timed; all samples in ms."""
        samples: list[float] = []
        for path in paths:
            for _ in range(warm):
                self.get_ms(path)
            samples.extend(self.get_ms(path) for _ in range(runs))
        return samples

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def operator_client(base_url: str) -> Client:
    """A client logged in to the relay's inbox as the operator (session cookie set)."""
    client = Client(base_url)
    form = urlencode({"user": "operator", "password": PASSWORD, "next": "/messages"}).encode()
    origin = f"http://{client.host}:{client.port}"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": origin}
    status, answer, body = client.request("POST", "/messages/login", form, headers)
    cookie = answer.get("Set-Cookie")
    if status not in (302, 303) or not cookie:
        raise RuntimeError(f"inbox login answered {status}: {body[:200]!r}")
    client.headers["Cookie"] = cookie.split(";", 1)[0]
    return client
