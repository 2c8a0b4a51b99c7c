"""The relay client's whole-request deadline, against real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from runtime.core.errors import RelayUnavailable
from runtime.core.relay_client import RelayClient, RelayTarget

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@contextmanager
def server(pause: float, *, limit: float = 10.0) -> Iterator[str]:
    """Answer each request byte by byte, `pause` seconds apart; stop within `limit` seconds."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            end = time.monotonic() + limit
            for byte in OK:
                if stop.wait(pause) or time.monotonic() > end:
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def client(url: str, timeout: float) -> RelayClient:
    return RelayClient(RelayTarget(url, "node-a", "token", timeout=timeout))


def test_a_relay_trickling_its_answer_is_cut_off_at_twice_the_timeout() -> None:
    # Each byte comes within the 0.5 s socket timeout: only a whole-request deadline ends it.
    with server(pause=0.1) as url:
        relay = client(url, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(RelayUnavailable, match="within 1s"):
            relay.report_status({"agents": []})
        took = time.monotonic() - started
        relay.close()
    # Not before the deadline, and long before the trickle would have ended by itself.
    assert 1.0 <= took < len(OK) * 0.1 / 2, took


def test_an_answer_within_the_deadline_goes_through_and_the_session_recovers_after_a_cut() -> None:
    with server(pause=0.002) as fast, server(pause=0.1) as slow:
        relay = client(fast, timeout=0.5)
        relay.report_status({"agents": []})
        relay.target = RelayTarget(slow, "node-a", "token", timeout=0.5)
        with pytest.raises(RelayUnavailable):
            relay.report_status({"agents": []})
        relay.target = RelayTarget(fast, "node-a", "token", timeout=0.5)
        relay.report_status({"agents": []})
        relay.close()
