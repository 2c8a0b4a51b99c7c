"""serve_in_thread over TLS: the app sees https, and sockets still in their handshake count.

A socket that never finishes its handshake is one more connection of the front: at
the connection limit the oldest of them makes room for a client that does, and each
is closed at the head deadline.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from relay_app.tls import init_ca, issue
from runtime.core.tls import load_server_context
from runtime.core.wsgi import FrontLimits, ServerHandle, serve_in_thread


def echo_scheme(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["wsgi.url_scheme"].encode()]


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    init_ca(directory)
    issue(directory, "relay", ["127.0.0.1"])
    return directory


@pytest.fixture
def server(tls_dir: Path) -> Iterator[ServerHandle]:
    context = load_server_context(tls_dir / "relay.pem", tls_dir / "relay.key", "test")
    limits = FrontLimits(max_connections=16, head_timeout=1.0)
    handle = serve_in_thread(echo_scheme, "127.0.0.1", 0, limits=limits, ssl_context=context)
    yield handle
    handle.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def get(server: ServerHandle, tls_dir: Path) -> bytes:
    """GET / over a new verified TLS connection; the body."""
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:  # noqa: SIM117
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(4096):
                answer += chunk
    return answer.partition(b"\r\n\r\n")[2]


def test_the_app_sees_https_and_the_handle_says_so(server: ServerHandle, tls_dir: Path) -> None:
    assert server.url.startswith("https://127.0.0.1:")
    assert get(server, tls_dir) == b"https"


def test_sockets_stuck_before_their_handshake_make_room_and_are_cut(
    server: ServerHandle, tls_dir: Path
) -> None:
    stuck = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]
    try:
        time.sleep(0.2)
        assert get(server, tls_dir) == b"https"  # the oldest stuck one made room
        started = time.monotonic()
        stuck[-1].settimeout(5)
        assert stuck[-1].recv(10) == b""  # cut by the server at its head deadline
        assert time.monotonic() - started < 3
    finally:
        for sock in stuck:
            sock.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_older_than_1_2_is_refused_by_the_server(server: ServerHandle, tls_dir: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(tls_dir / "ca.pem")
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that this client really offers TLS 1.1
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:  # noqa: SIM117
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # the same client, one version up: in
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        context.wrap_socket(raw, server_hostname="127.0.0.1").close()


def sized(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """POST: answer the body's length and a digest of it; GET: 8 MiB."""
    if environ["REQUEST_METHOD"] == "POST":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{len(body)} {hash(body)}".encode()]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [b"x" * (1024 * 1024) for _ in range(8)]


@pytest.fixture
def sized_server(tls_dir: Path) -> Iterator[ServerHandle]:
    context = load_server_context(tls_dir / "relay.pem", tls_dir / "relay.key", "test")
    limits = FrontLimits(write_timeout=1.0)
    handle = serve_in_thread(sized, "127.0.0.1", 0, limits=limits, ssl_context=context)
    yield handle
    handle.stop()


def test_a_streamed_body_arrives_whole_and_a_reader_that_stops_is_cut(
    sized_server: ServerHandle, tls_dir: Path
) -> None:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace session.verify
    session.verify = str(tls_dir / "ca.pem")
    body = bytes(range(256)) * (16 * 1024)  # 4 MiB: streamed to the app as it arrives
    answer = session.post(sized_server.url, data=body, timeout=30)
    assert answer.text == f"{len(body)} {hash(body)}"
    session.close()
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
    raw = socket.create_connection(("127.0.0.1", sized_server.port), timeout=10)
    stalled = context.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET / HTTP/1.1\r\nHost: relay\r\n\r\n")
        # The front lets go of it at the write deadline (1 s) though it never reads; what
        # the kernel still holds for it is the kernel's to deliver, not a worker's.
        connections = sized_server._front.connections
        mine = stalled.getsockname()

        def held() -> bool:
            return any(getattr(c, "peer", None) == mine for c in connections)

        assert wait_until(held)  # its answer is going out, into a window of 4 KiB
        started = time.monotonic()
        assert wait_until(lambda: not held())
        assert time.monotonic() - started > 0.5  # by the write deadline, not at once
    finally:
        # No graceful close: the 8 MiB still queued need not trickle into a tiny window.
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stalled.close()
