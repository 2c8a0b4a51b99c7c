"""A running node while its relay misbehaves at the HTTP level: local answers and memory hold."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from runtime.node.unix_http import BASE_URL, unix_session
from tests.support import (
    TOKENS,
    Daemon,
    cluster,
    free_port,
    start_node,
    start_relay,
    write_config_dir,
)

pytestmark = pytest.mark.slow

# The node unit's MemoryMax is 512 MiB; a node holds far less than half of it.
NODE_MEMORY_BYTES = 256 * 1024 * 1024
ATTACK_SECONDS = 12.0


Answer = Callable[[socket.socket, threading.Event], None]


class FakeRelay(threading.Thread):
    """Something at the relay's address that answers every connection its own way."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.stopped = threading.Event()
        self.answer = answer

    def run(self) -> None:
        while not self.stopped.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = self.server.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        self.server.close()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(5)
            self.answer(conn, self.stopped)

    def __enter__(self) -> FakeRelay:
        """Start serving."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop serving."""
        self.stopped.set()
        self.join(5)


def one_gigabyte(conn: socket.socket, stopped: threading.Event) -> None:
    """Answer the first request with 500 and a 1 GB body, sent as fast as it is taken."""
    conn.recv(1024 * 1024)  # the request (or its start): it is answered either way
    conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000000\r\n\r\n")
    piece = b"x" * (1024 * 1024)
    for _ in range(1000):
        if stopped.is_set():
            return
        conn.sendall(piece)


def captive_portal(conn: socket.socket, stopped: threading.Event) -> None:
    """Answer every request 200 with a page of its own, as a proxy or a portal might."""
    page = b"<html><body>Welcome! Log in to use this network.</body></html>"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
    while not stopped.is_set() and read_request(conn):
        conn.sendall(head % len(page) + page)


def read_request(conn: socket.socket) -> bool:
    """Read one request with its Content-Length body; False when the peer closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        if not (piece := conn.recv(65536)):
            return False
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    missing = (int(length.group(1)) if length else 0) - len(body)
    while missing > 0 and (piece := conn.recv(min(missing, 65536))):
        missing -= len(piece)
    return True


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_relay_answering_a_gigabyte_never_swells_the_node(tmp_path: Path) -> None:
    config_dir = write_config_dir(tmp_path / "config", cluster(tmp_path / "relay"))
    with FakeRelay(one_gigabyte) as bad_relay:
        node = start_node(config_dir, "node-a", tmp_path / "node-a", bad_relay.url, tmp_path / "l")
        try:
            slowest = local_answers_while(node, ATTACK_SECONDS)
            assert node.proc.poll() is None
            peak = peak_rss(node.proc.pid)
            assert peak < NODE_MEMORY_BYTES, f"{peak >> 20} MiB"
            assert slowest < 1.0
        finally:
            node.terminate()


def test_a_200_that_is_not_the_relays_acknowledgement_loses_no_message(tmp_path: Path) -> None:
    config_dir = write_config_dir(tmp_path / "config", cluster(tmp_path / "relay"))
    with FakeRelay(captive_portal) as portal:
        node = start_node(config_dir, "node-a", tmp_path / "node-a", portal.url, tmp_path / "l1")
        try:
            written = [write(node, n) for n in range(20)]
            time.sleep(2)  # write-through, then the outbox, each try the portal
        finally:
            node.terminate()
    relay = start_relay(config_dir, tmp_path / "relay", free_port(), tmp_path / "relay.log")
    try:
        node = start_node(config_dir, "node-a", tmp_path / "node-a", relay.url, tmp_path / "l2")
        try:
            assert not not_on_relay(relay, written, within=20.0)
        finally:
            node.terminate()
    finally:
        relay.terminate()


def write(node: Daemon, n: int) -> str:
    """Write one message through the node's agent API; its msg_id."""
    a1 = unix_session(node.socket_path("a1"))
    answer = a1.post(BASE_URL + "/agents/a1/messages", json={"content": n}, timeout=10)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["msg_id"])


def not_on_relay(relay: Daemon, msg_ids: list[str], within: float) -> list[str]:
    """The msg_ids the relay still lacks after waiting up to `within` seconds."""
    headers = {"X-Commander-Node": "node-a", "Authorization": f"Bearer {TOKENS['node-a']}"}
    missing, until = msg_ids, time.monotonic() + within
    while missing and time.monotonic() < until:
        time.sleep(0.5)
        missing = [m for m in missing
                   if requests.get(f"{relay.url}/query/messages/{m}", headers=headers,
                                   timeout=10).status_code != 200]  # fmt: skip
    return missing


def local_answers_while(node: Daemon, seconds: float) -> float:
    """Write and read /status on the node for `seconds`; the slowest answer's seconds."""
    slowest = 0.0
    a1, admin = unix_session(node.socket_path("a1")), unix_session(node.socket_path("node"))
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.monotonic()
        written = a1.post(BASE_URL + "/agents/a1/messages", json={"content": 1}, timeout=10)
        assert written.status_code == 201, written.text
        assert admin.get(BASE_URL + "/status", timeout=10).status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.3)
    return slowest


def not_json(conn: socket.socket, stopped: threading.Event) -> None:
    """Answer every request 200 with a body that is not JSON, or JSON but no message."""
    for body in (b"{not json", b"{}", b"[]", b'{"message": 1}') * 100:
        if stopped.is_set() or not read_request(conn):
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def test_a_read_the_relay_answers_with_no_message_is_a_miss_not_a_500(tmp_path: Path) -> None:
    config_dir = write_config_dir(tmp_path / "config", cluster(tmp_path / "relay"))
    with FakeRelay(not_json) as relay:
        node = start_node(config_dir, "node-a", tmp_path / "node-a", relay.url, tmp_path / "l")
        try:
            for _ in range(4):
                url = f"{BASE_URL}/agents/a1/messages/not-on-this-node"
                answer = unix_session(node.socket_path("a1")).get(url, timeout=10)
                assert answer.status_code == 404, answer.text
        finally:
            node.terminate()


def frozen(conn: socket.socket, stopped: threading.Event) -> None:
    """Take the request and never answer it."""
    read_request(conn)
    stopped.wait(30)


def test_a_read_through_to_a_frozen_relay_keeps_to_the_agents_timeout(tmp_path: Path) -> None:
    # FAST_SYNC: sync.timeout_seconds 2, so a whole relay call takes at most 4 s.
    config_dir = write_config_dir(tmp_path / "config", cluster(tmp_path / "relay"))
    with FakeRelay(frozen) as relay:
        node = start_node(config_dir, "node-a", tmp_path / "node-a", relay.url, tmp_path / "l")
        try:
            started = time.monotonic()
            url = f"{BASE_URL}/agents/a1/messages/not-on-this-node"
            assert unix_session(node.socket_path("a1")).get(url, timeout=30).status_code == 404
            assert time.monotonic() - started < 5.0
        finally:
            node.terminate()
