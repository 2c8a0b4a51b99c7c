"""A scripted relay: a real HTTP server on 127.0.0.1 in front of a real relay.

For each path it answers the scripted answers in order (a status code, "hang" or
"lost_ack"), then forwards the request to the real relay and passes its answer back.
A refused msg_id makes every request carrying it get one status, as a relay refusing
one bad message would. Every request it sees is logged with the batch_id and msg_ids
it carried, so a test can tell what was answered what and what was ever sent again.
"""

from __future__ import annotations

import gzip
import http.client
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import orjson

# "hang": read the request, never answer (the client's deadline passes); "lost_ack": forward
# it, so the relay commits, then never answer (the acknowledgement is lost on the way back).
Answer = int | str
HANG_SECONDS = 10.0
FORWARDED = ("Authorization", "X-Commander-Node", "Content-Type", "Content-Encoding")


@dataclass(frozen=True)
class Seen:
    """One request: its path, the batch_id and msg_ids in its body, what it was answered."""

    path: str
    batch_id: str | None
    msg_ids: frozenset[str]
    answer: Answer


class ScriptedRelay:
    """Answers scripted statuses per path, then forwards to `upstream`."""

    def __init__(self, upstream: str, port: int = 0) -> None:
        self.upstream = urlsplit(upstream).netloc
        self.port = port
        self.seen: list[Seen] = []
        self._scripts: dict[str, deque[Answer]] = {}
        self._always: dict[str, Answer] = {}
        self._refused: dict[str, int] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address nodes are given."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScriptedRelay:
        """Listen (on the same port after a stop) and serve in a thread."""
        self._release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; hanging requests are let go."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def script(self, path: str, *answers: Answer) -> None:
        """Answer the next requests to `path` with `answers`, in order."""
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(answers)

    def always(self, path: str, answer: Answer | None) -> None:
        """Answer every request to `path` with `answer` (None: forward again)."""
        with self._lock:
            if answer is None:
                self._always.pop(path, None)
            else:
                self._always[path] = answer

    def refuse(self, msg_id: str, status: int | None) -> None:
        """Answer `status` to every request carrying `msg_id` (None: stop refusing it)."""
        with self._lock:
            if status is None:
                self._refused.pop(msg_id, None)
            else:
                self._refused[msg_id] = status

    def carrying(self, msg_id: str) -> list[Seen]:
        """Every request that carried `msg_id`."""
        with self._lock:
            return [s for s in self.seen if msg_id in s.msg_ids]

    def answered(self, path: str, answer: Answer) -> list[Seen]:
        """The requests to `path` that got `answer`."""
        with self._lock:
            return [s for s in self.seen if s.path == path and s.answer == answer]

    def batches(self, batch_id: str) -> list[Seen]:
        """Every request that carried `batch_id`."""
        with self._lock:
            return [s for s in self.seen if s.batch_id == batch_id]

    def _next(self, path: str, batch_id: str | None, msg_ids: frozenset[str]) -> Answer:
        with self._lock:
            queued = self._scripts.get(path)
            refused = [self._refused[m] for m in msg_ids if m in self._refused]
            if refused:
                answer: Answer = refused[0]
            elif queued:
                answer = queued.popleft()
            else:
                answer = self._always.get(path, 200)
            self.seen.append(Seen(path, batch_id, msg_ids, answer))
        return answer

    def forward(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, bytes]:
        """Send the request on to the real relay; return its status and body."""
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            sent = {k: headers[k] for k in FORWARDED if headers.get(k) is not None}
            conn.request(method, path, body=body or None, headers=sent)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._serve(self.rfile.read(length))

            def _serve(self, body: bytes) -> None:
                path = self.path.split("?", 1)[0]
                batch_id, msg_ids = carried(body, self.headers)
                answer = relay._next(path, batch_id, msg_ids)
                if answer in ("hang", "lost_ack"):
                    if answer == "lost_ack":
                        relay.forward(self.command, self.path, self.headers, body)
                    relay._release.wait(HANG_SECONDS)
                    self.close_connection = True
                    return
                if answer == 200:
                    status, payload = relay.forward(self.command, self.path, self.headers, body)
                else:
                    status, payload = int(answer), orjson.dumps({"error": f"scripted {answer}"})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the log of requests is `relay.seen`."""

        return Handler


def carried(body: bytes, headers: Any) -> tuple[str | None, frozenset[str]]:
    """The batch_id and msg_ids of a /sync/message(s) body, gzip or plain."""
    try:
        raw = gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body
        data = orjson.loads(raw) if raw else None
    except (OSError, EOFError, orjson.JSONDecodeError):
        return None, frozenset()
    if not isinstance(data, dict):
        return None, frozenset()
    messages = data.get("messages", [data])
    if not isinstance(messages, list):
        messages = []
    ids = frozenset(m["msg_id"] for m in messages if isinstance(m, dict) and "msg_id" in m)
    batch_id = data.get("batch_id")
    return (batch_id if isinstance(batch_id, str) else None), ids
