"""Attacks on a running node's agent API that no earlier test tried."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.node.client import NodeClient
from tests.support import Daemon, cluster, start_node, write_config_dir

pytestmark = pytest.mark.slow

# A body over the front's buffer (1 MiB) streams to the app as it arrives.
STREAMED = 1024 * 1024 + 500_000


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Daemon]:
    """`commander-node` as its own process; its relay is nowhere (local answers only)."""
    config_dir = write_config_dir(tmp_path / "config", cluster(tmp_path / "relay"))
    daemon = start_node(
        config_dir, "node-a", tmp_path / "node-a", "http://127.0.0.1:9", tmp_path / "node.log"
    )
    try:
        yield daemon
    finally:
        daemon.terminate()


def test_an_agent_cut_off_mid_body_is_no_server_error_and_no_traceback(node: Daemon) -> None:
    head = b"POST /agents/a1/messages HTTP/1.1\r\nHost: n\r\nContent-Length: 3000000\r\n"
    head += b"Content-Type: application/json\r\n\r\n"
    for _ in range(3):
        sock = socket.socket(socket.AF_UNIX)  # a1's own socket: its requests reach the app
        sock.settimeout(5)
        sock.connect(node.socket_path("a1"))
        sock.sendall(head + b"{" * STREAMED)
        time.sleep(0.3)
        # A reset, as from an agent that crashed or whose own timeout cut the request.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    time.sleep(0.5)
    assert "Traceback" not in node.log_path.read_text()
    assert NodeClient(node.sockets, "a1", timeout=5).write(1)
