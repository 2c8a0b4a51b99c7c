"""tests.support on its own: where the daemons run from, waiting, process stats, the partition."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from tests.support import (
    REPO,
    CpuWindow,
    Partition,
    free_port,
    peak_rss_mb,
    rss_mb,
    wait_for,
)


def test_the_repo_is_the_checkout_the_daemons_run_from() -> None:
    assert (REPO / "pyproject.toml").is_file()
    assert (REPO / "relay_app" / "cli.py").is_file()


def test_waiting_returns_the_time_taken_or_fails_naming_what() -> None:
    ready_at = time.monotonic() + 0.1
    assert wait_for(lambda: time.monotonic() >= ready_at, timeout=5) >= 0.09
    with pytest.raises(AssertionError, match=r"the sky falling not met within 0\.1s"):
        wait_for(lambda: False, timeout=0.1, what="the sky falling")


def test_stat_helpers_read_this_process() -> None:
    window = CpuWindow(os.getpid()).start()
    busy_until = time.process_time() + 0.05  # /proc counts in clock ticks (10 ms)
    while time.process_time() < busy_until:
        pass
    window.stop()
    assert window.cpu_s > 0
    assert 0 < rss_mb(os.getpid()) <= peak_rss_mb(os.getpid())


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_a_partition_forwards_then_cuts_then_heals() -> None:
    server, upstream = _echo_server()
    partition = Partition(free_port(), upstream)
    partition.heal()
    try:
        with socket.create_connection(("127.0.0.1", partition.port), timeout=5) as conn:
            conn.sendall(b"ping")
            assert conn.recv(16) == b"ping"
            partition.cut()
            assert conn.recv(16) == b""  # the forwarded connection was reset
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", partition.port), timeout=5).close()
        partition.heal()
        with socket.create_connection(("127.0.0.1", partition.port), timeout=5) as conn:
            conn.sendall(b"again")
            assert conn.recv(16) == b"again"
    finally:
        partition.cut()
        server.close()
