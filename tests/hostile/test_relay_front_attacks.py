"""Attacks on a running relay's HTTP front that no earlier test tried (issue 10's classes)."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay_app.stores.sqlite_rows import MAX_PAGE_BYTES
from tests.relay_app.helpers import (
    NODE_A,
    TOKENS,
    NodeClient,
    message,
    relay_daemon,
    write_config,
)
from tests.support import Daemon

pytestmark = pytest.mark.slow

AUTH = f"X-Commander-Node: {NODE_A}\r\nAuthorization: Bearer {TOKENS[NODE_A]}\r\n"
# A whole answer must be taken within relay.write_timeout_s (30 s by default; WRITE_TIMEOUT
# for the relay of the test about it); a body over BUFFER_BYTES streams to a worker thread
# as it arrives; the relay runs THREADS workers.
WRITE_TIMEOUT = 8
BUFFER_BYTES = 1024 * 1024
THREADS = 16


@pytest.fixture
def relay(relay_process: Daemon) -> Daemon:
    """The relay under attack, as its own process."""
    return relay_process


@pytest.fixture
def quick_writes_relay(tmp_path: Path) -> Iterator[Daemon]:
    """A relay process whose answers must be read within WRITE_TIMEOUT seconds."""
    config = write_config(tmp_path / "config")
    with config.open("a") as relay_yaml:
        relay_yaml.write(f"  write_timeout_s: {WRITE_TIMEOUT}\n")
    with relay_daemon(config, tmp_path) as daemon:
        yield daemon


def exchange(daemon: Daemon, request: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes on a new connection; everything the relay answers until it closes."""
    received = b""
    with socket.create_connection(daemon.address, timeout=timeout) as sock:
        sock.sendall(request)
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while piece := sock.recv(65536):
                received += piece
    return received


def healthz_seconds(daemon: Daemon) -> float:
    """How long GET /healthz on a new connection takes to answer 200 (inf if it does not)."""
    started = time.monotonic()
    try:
        answer = exchange(daemon, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", 3.0)
    except OSError:
        return float("inf")
    return time.monotonic() - started if answer.startswith(b"HTTP/1.1 200 ") else float("inf")


def sockets_open(pid: int) -> int:
    """How many sockets the process holds."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed while we looked
            count += os.readlink(fd).startswith("socket:")
    return count


@pytest.mark.parametrize("upgrade", ["h2c", "websocket"])
def test_a_request_offering_a_protocol_upgrade_is_answered_over_http_1_1(
    relay: Daemon, upgrade: str
) -> None:
    # curl --http2 on an http:// URL offers h2c like this; a server may ignore the offer.
    offer = f"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: {upgrade}\r\nHTTP2-Settings: AA\r\n"
    answer = exchange(relay, f"GET /healthz HTTP/1.1\r\nHost: relay\r\n{offer}\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert b'"status":"ok"' in answer


def test_a_connect_request_gets_an_answer_not_a_dropped_connection(relay: Daemon) -> None:
    answer = exchange(relay, b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n")
    assert answer[:12] in (b"HTTP/1.1 404", b"HTTP/1.1 405", b"HTTP/1.1 501"), answer[:200]


def fill_one_page(relay: Daemon) -> int:
    """Store about 12 MiB of incompressible content; the size of the page that lists it
    (cut at the relay's MAX_PAGE_BYTES: more than the kernel buffers of one connection)."""
    client = NodeClient(relay.url)
    for _ in range(6):
        text = [base64.b64encode(os.urandom(700_000)).decode() for _ in range(3)]
        batch = {"batch_id": str(uuid.uuid4()), "node_id": NODE_A,
                 "messages": [message(content=t).to_wire() for t in text]}  # fmt: skip
        assert client.send_batch(batch).status_code == 200
    size = len(client.get("/query/messages?limit=1000").content)
    client.session.close()  # its keep-alive connection would blur the count of sockets
    time.sleep(0.2)
    return size


def test_a_client_that_never_reads_a_large_page_is_cut_off_at_the_write_deadline(
    quick_writes_relay: Daemon,
) -> None:
    relay = quick_writes_relay
    page_bytes = fill_one_page(relay)
    assert page_bytes > MAX_PAGE_BYTES
    baseline = sockets_open(relay.proc.pid)
    stalled = []
    for _ in range(4):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(relay.address)
        sock.sendall(f"GET /query/messages?limit=1000 HTTP/1.1\r\nHost: r\r\n{AUTH}\r\n".encode())
        stalled.append(sock)
    try:
        time.sleep(2)
        assert sockets_open(relay.proc.pid) >= baseline + 4
        time.sleep(WRITE_TIMEOUT + 3)
        # Each answer sat unread for longer than the write deadline: the relay let go of it
        # (and of the megabytes queued for it), rather than waiting for a reader forever.
        assert sockets_open(relay.proc.pid) <= baseline
    finally:
        for sock in stalled:
            sock.close()
    assert healthz_seconds(relay) < 1.0


def trickle_large_body(relay: Daemon) -> socket.socket:
    """An authenticated batch of 2 MB declared, 1.1 MB sent; the rest is to come slowly."""
    sock = socket.create_connection(relay.address, timeout=5)
    head = f"POST /sync/messages HTTP/1.1\r\nHost: r\r\n{AUTH}Content-Length: 2000000\r\n\r\n"
    sock.sendall(head.encode() + b"[" * (BUFFER_BYTES + 100_000))
    return sock


def test_slow_large_bodies_from_a_node_never_hold_every_worker(relay: Daemon) -> None:
    trickling = [trickle_large_body(relay) for _ in range(THREADS + 4)]
    try:
        latencies = []
        for _ in range(10):
            for sock in trickling:
                with contextlib.suppress(OSError):
                    sock.send(b"[")
            latencies.append(healthz_seconds(relay))
            time.sleep(0.5)
        assert max(latencies) < 1.0, latencies
    finally:
        for sock in trickling:
            sock.close()


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a client that crashed or was cut off mid-request."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def server_errors(daemon: Daemon) -> list[str]:
    """The relay's /metrics lines counting 5xx answers."""
    text = exchange(daemon, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").decode()
    counted = [line for line in text.splitlines() if 'status="5' in line]
    return [line for line in counted if line.startswith("commander_relay_requests_total")]


@pytest.mark.parametrize("path", ["/sync/messages", "/sync/files"])
def test_a_node_cut_off_mid_body_is_no_server_error_and_no_traceback(
    relay: Daemon, path: str
) -> None:
    # A node's own deadline shuts its socket mid-upload, as does a crash or a lost link.
    head = f"POST {path} HTTP/1.1\r\nHost: r\r\n{AUTH}Content-Length: 3000000\r\n"
    body = b"[" * (BUFFER_BYTES + 500_000)
    if path == "/sync/files":
        head += "Content-Type: multipart/form-data; boundary=XyZ\r\n"
        part = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'
        body = part + body
    for _ in range(3):
        sock = socket.create_connection(relay.address, timeout=5)
        sock.sendall(head.encode() + b"\r\n" + body)
        time.sleep(0.3)
        reset(sock)
    time.sleep(0.5)
    assert server_errors(relay) == []
    assert "Traceback" not in relay.log_path.read_text()
    assert healthz_seconds(relay) < 1.0


def test_refused_large_bodies_being_drained_hold_no_upload_slot(relay: Daemon) -> None:
    # Without a token each is refused at once; what it still sends is read and dropped
    # for a moment before the close. That moment must not count as a worker streaming.
    head = b"POST /sync/messages HTTP/1.1\r\nHost: r\r\nContent-Length: 3000000\r\n\r\n"
    refused = []
    for _ in range(THREADS // 2):
        sock = socket.create_connection(relay.address, timeout=5)
        sock.sendall(head + b"[" * (BUFFER_BYTES + 100_000))
        refused.append(sock)
    try:
        time.sleep(0.2)
        text = [base64.b64encode(os.urandom(500_000)).decode() for _ in range(3)]
        batch = {"batch_id": str(uuid.uuid4()), "node_id": NODE_A,
                 "messages": [message(content=t).to_wire() for t in text]}  # fmt: skip
        answer = NodeClient(relay.url).send_batch(batch)
        assert answer.status_code == 200, answer.text
    finally:
        for sock in refused:
            sock.close()
