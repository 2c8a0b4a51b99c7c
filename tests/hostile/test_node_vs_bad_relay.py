"""A running node while its relay misbehaves at the HTTP level: local answers and memory hold."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench._cluster import cluster, write_config_dir
from bench._procs import Daemon, start_node

pytestmark = pytest.mark.slow

# The node unit's MemoryMax is 512 MiB; a node holds far less than half of it.
NODE_MEMORY_BYTES = 256 * 1024 * 1024
ATTACK_SECONDS = 12.0


class HugeAnswers(threading.Thread):
    """A relay that answers every request with a 1 GB body, sent as fast as it is taken."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = self.server.accept()
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()
        self.server.close()

    def _answer(self, conn: socket.socket) -> None:
        piece = b"x" * (1024 * 1024)
        with contextlib.suppress(OSError), conn:
            conn.settimeout(5)
            conn.recv(1024 * 1024)  # the request (or its start): it is answered either way
            conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000000\r\n\r\n")
            for _ in range(1000):
                if self.stopped.is_set():
                    return
                conn.sendall(piece)


@pytest.fixture
def bad_relay() -> Iterator[HugeAnswers]:
    """The misbehaving relay, stopped at the end."""
    relay = HugeAnswers()
    relay.start()
    yield relay
    relay.stopped.set()
    relay.join(5)


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_relay_answering_a_gigabyte_never_swells_the_node(
    tmp_path: Path, bad_relay: HugeAnswers
) -> None:
    config_dir = write_config_dir(tmp_path / "config", cluster(tmp_path / "relay"))
    node = start_node(config_dir, "node-a", tmp_path / "node-a", bad_relay.url, tmp_path / "log")
    try:
        slowest = local_answers_while(node, ATTACK_SECONDS)
        assert node.proc.poll() is None
        assert peak_rss(node.proc.pid) < NODE_MEMORY_BYTES, f"{peak_rss(node.proc.pid) >> 20} MiB"
        assert slowest < 1.0
    finally:
        node.terminate()


def local_answers_while(node: Daemon, seconds: float) -> float:
    """Write and read /status on the node for `seconds`; the slowest answer's seconds."""
    slowest = 0.0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.monotonic()
        written = requests.post(node.url + "/agents/a1/messages", json={"content": 1}, timeout=10)
        assert written.status_code == 201, written.text
        assert requests.get(node.url + "/status", timeout=10).status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.3)
    return slowest
