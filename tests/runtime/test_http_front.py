"""The HTTP front bounds what a client can hold: deadlines, sizes, connections, queue, framing."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
import pytest

from runtime.core.wsgi import FrontLimits, ServerHandle, serve_in_thread

Start = Callable[..., Any]


def echo(environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
    """Answer `<path>:<body length>`, reading the whole body."""
    body = environ["wsgi.input"].read()
    out = f"{environ['PATH_INFO']}:{len(body)}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [out]


@pytest.fixture
def serve() -> Iterator[Callable[..., ServerHandle]]:
    """Start servers on 127.0.0.1:0 and stop them after the test."""
    started: list[ServerHandle] = []

    def start(app: Any = echo, **limits: Any) -> ServerHandle:
        threads = limits.pop("threads", 4)
        server = serve_in_thread(app, "127.0.0.1", 0, threads=threads, limits=FrontLimits(**limits))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def get(server: ServerHandle, path: str = "/ok", timeout: float = 5.0) -> tuple[int, bytes]:
    """One request on a new connection; (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def raw(server: ServerHandle, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes on a new socket; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_keep_alive_connections_serve_many_requests_each(serve: Any) -> None:
    server = serve()
    conns = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=5) for _ in range(30)]
    try:
        for round_ in range(3):
            for i, conn in enumerate(conns):
                conn.request("POST", f"/{round_}/{i}", body=b"x" * i)
                answer = conn.getresponse()
                assert answer.read() == f"/{round_}/{i}:{i}".encode()
                assert answer.getheader("Connection") is None
    finally:
        for conn in conns:
            conn.close()


def test_a_head_that_trickles_in_is_cut_off_and_holds_no_worker(serve: Any) -> None:
    server = serve(head_timeout=1.0, threads=1)
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
    try:
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        for _ in range(3):
            for sock in socks:
                sock.sendall(b"X-Slow: 1\r\n")
            assert get(server, timeout=1.0) == (200, b"/ok:0")
            time.sleep(0.2)
        assert time.monotonic() - started < 3.0
        socks[0].settimeout(5)
        answer = socks[0].recv(1000)
        assert answer.startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in socks:
            sock.close()


def test_idle_connections_do_not_starve_a_new_client(serve: Any) -> None:
    server = serve(threads=2)
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(500)]
    try:
        started = time.monotonic()
        assert get(server, timeout=2.0) == (200, b"/ok:0")
        assert time.monotonic() - started < 1.0
    finally:
        for sock in socks:
            sock.close()


def test_at_the_connection_limit_the_oldest_idle_connection_makes_room(serve: Any) -> None:
    server = serve(max_connections=20)
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(20)]
    try:
        time.sleep(0.2)  # let the loop accept them all
        assert get(server) == (200, b"/ok:0")
        assert socks[0].recv(100) == b""  # the oldest was closed to admit the request
    finally:
        for sock in socks:
            sock.close()


def test_an_oversized_head_is_refused_at_the_cap(serve: Any) -> None:
    server = serve(header_bytes=16 * 1024)
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * (8 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        # The server answers at 16 KiB and discards the rest for a moment (so the answer
        # is not lost to a reset), then closes: the send may or may not complete.
        with contextlib.suppress(OSError):
            sock.sendall(head)
        answer = sock.recv(1000)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_content_length_with_transfer_encoding_is_refused(serve: Any) -> None:
    answer = raw(
        serve(),
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
    )
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 400 ")
    assert b"Transfer-Encoding" in body
    assert b"Content-Length" in body


def test_a_body_the_app_never_read_is_not_parsed_as_the_next_request(serve: Any) -> None:
    def ignore_body(environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    answer = raw(
        serve(ignore_body),
        b"POST /first HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(smuggled):x}\r\n".encode()
        + smuggled
        + b"\r\n0\r\n\r\n"
        + b"GET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    assert b"/first" in answer
    assert b"/second" in answer
    assert b"/smuggled" not in answer


def test_a_declared_body_over_the_limit_gets_a_json_413_before_it_is_sent(serve: Any) -> None:
    server = serve(body_bytes=1000)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000\r\n\r\n")
        head, _, body = sock.recv(4096).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert "5000000" in orjson.loads(body)["error"]


def test_a_large_body_streams_to_the_app_which_may_refuse_it_unread(serve: Any) -> None:
    seen: list[int] = []

    def refuse(environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
        seen.append(int(environ["CONTENT_LENGTH"]))
        start_response("401 Unauthorized", [("Content-Type", "text/plain")])
        return [b"who are you"]

    server = serve(refuse, buffer_bytes=1024, body_bytes=64 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 50000000\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert seen == [50_000_000]


def test_a_large_body_the_app_reads_arrives_whole(serve: Any) -> None:
    server = serve(buffer_bytes=1024)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for size in (3 * 1024 * 1024, 5000):
            conn.request("POST", "/up", body=b"z" * size)
            assert conn.getresponse().read() == f"/up:{size}".encode()
    finally:
        conn.close()


def test_a_body_that_trickles_in_is_cut_off(serve: Any) -> None:
    server = serve(body_timeout=0.5, min_body_rate=1_000_000)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
        answer = sock.recv(1000)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_requests_past_the_queue_bound_get_503_at_once(serve: Any) -> None:
    release = threading.Event()

    def slow(environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
        release.wait(10)
        start_response("200 OK", [])
        return [b"done"]

    server = serve(slow, threads=1, max_queued=1)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(get(server, timeout=10)[0]))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    status, body = get(server, timeout=5)
    assert (status, time.monotonic() - started < 1.0) == (503, True)
    assert "busy" in orjson.loads(body)["error"]
    release.set()
    for thread in threads:
        thread.join(10)
    assert results == [200, 200]


def test_an_app_failure_is_a_json_500_and_the_connection_goes_on(serve: Any) -> None:
    def broken(environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("bug")
        start_response("200 OK", [])
        return [b"fine"]

    server = serve(broken)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/boom")
        answer = conn.getresponse()
        assert (answer.status, orjson.loads(answer.read())["error"][:14]) == (500, "internal error")
        conn.request("GET", "/fine")
        assert conn.getresponse().read() == b"fine"
    finally:
        conn.close()


def test_a_long_response_streams_and_head_gets_no_body(serve: Any) -> None:
    def long(environ: dict[str, Any], start_response: Start) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", str(64 * 65536))])
        return (b"y" * 65536 for _ in range(64))

    server = serve(long)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/")
        assert len(conn.getresponse().read()) == 64 * 65536
        conn.request("HEAD", "/")
        answer = conn.getresponse()
        assert (answer.status, answer.read()) == (200, b"")
    finally:
        conn.close()


def test_headers_with_underscores_do_not_reach_the_app(serve: Any) -> None:
    def show(environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [environ.get("HTTP_X_FORWARDED_PROTO", "-").encode()]

    answer = raw(
        serve(show),
        b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_Proto: https\r\nConnection: close\r\n\r\n",
    )
    assert answer.endswith(b"\r\n\r\n-")


def test_stop_ends_the_thread_promptly_with_idle_clients_connected(serve: Any) -> None:
    server = serve()
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
        assert not server.running
    finally:
        sock.close()


def test_pipelined_requests_are_answered_in_order(serve: Any) -> None:
    answer = raw(
        serve(),
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab"
        b"GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.index(b"/1:0") < answer.index(b"/2:2") < answer.index(b"/3:0")


def test_a_client_expecting_100_continue_is_told_to_send_its_body(serve: Any) -> None:
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"abc")
        assert sock.recv(1000).endswith(b"/c:3")


def test_a_client_that_stops_reading_a_long_answer_frees_its_worker(serve: Any) -> None:
    def long(environ: dict[str, Any], start_response: Start) -> Iterator[bytes]:
        if environ["PATH_INFO"] == "/ok":
            start_response("200 OK", [])
            return iter([b"ok"])
        start_response("200 OK", [("Content-Length", str(256 << 20))])
        return (b"y" * (1 << 20) for _ in range(256))

    server = serve(long, threads=1, write_timeout=1.0)
    with socket.create_connection(("127.0.0.1", server.port)) as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /long HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(2.0)  # the write deadline passes while the client reads nothing
        assert get(server, timeout=3.0) == (200, b"ok")


def test_an_http_1_0_request_is_answered_and_closed(serve: Any) -> None:
    answer = raw(serve(), b"GET /old HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in answer
    assert answer.endswith(b"/old:0")


def test_a_flood_of_pipelined_requests_is_cut_off_not_queued(serve: Any) -> None:
    release = threading.Event()

    def slow(environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
        release.wait(5)
        start_response("200 OK", [])
        return [b"x"]

    server = serve(slow)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 5000)
        release.set()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    # The first request is answered; the flood behind it ends the connection.
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.count(b"HTTP/1.1 200 OK") <= 34
    assert get(server) == (200, b"x")


def test_chunked_trailers_never_reach_the_app_as_headers(serve: Any) -> None:
    def show(environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [environ.get("HTTP_AUTHORIZATION", "-").encode()]

    answer = raw(
        serve(show),
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n0\r\nAuthorization: Bearer forged\r\n\r\n",
    )
    assert answer.endswith(b"\r\n\r\n-")


def test_too_many_header_fields_are_refused(serve: Any) -> None:
    answer = raw(serve(), b"GET / HTTP/1.1\r\n" + b"X:a\r\n" * 500 + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_an_answer_failing_midway_ends_the_connection(serve: Any) -> None:
    def failing(environ: dict[str, Any], start_response: Start) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", str(10 << 20))])

        def pieces() -> Iterator[bytes]:
            yield b"y" * (300 << 10)
            raise OSError("disk gone")

        return pieces()

    answer = raw(serve(failing), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", timeout=5)
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert len(answer) < 10 << 20  # closed, not left hanging for the rest


@pytest.mark.parametrize(("produced", "complete"), [(400_000, True), (280_000, False)])
def test_a_long_answer_is_held_to_its_content_length(
    serve: Any, produced: int, complete: bool
) -> None:
    def wrong(environ: dict[str, Any], start_response: Start) -> Iterator[bytes]:
        if environ["PATH_INFO"] == "/next":
            start_response("200 OK", [])
            return iter([b"next"])
        start_response("200 OK", [("Content-Length", "300000")])
        return (b"z" * 20_000 for _ in range(produced // 20_000))

    conn = http.client.HTTPConnection("127.0.0.1", serve(wrong).port, timeout=5)
    try:
        conn.request("GET", "/long")
        answer = conn.getresponse()
        if complete:  # never more than declared: the next answer is not polluted
            assert len(answer.read()) == 300_000
            conn.request("GET", "/next")
            assert conn.getresponse().read() == b"next"
        else:  # fewer: the connection ends, so the client knows
            with pytest.raises(http.client.IncompleteRead):
                answer.read()
    finally:
        conn.close()


def test_a_large_body_pipelined_behind_a_request_is_read_in_its_turn(serve: Any) -> None:
    server = serve(buffer_bytes=1024)
    answer = raw(
        server,
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n"
        + b"b"
        * 5000,
    )
    assert b"/1:0" in answer
    assert b"/2:5000" in answer


def test_a_streamed_body_that_stops_arriving_frees_its_worker(serve: Any) -> None:
    server = serve(threads=1, buffer_bytes=1024, body_timeout=0.5, min_body_rate=1_000_000)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 50000000\r\n\r\nabc")
        time.sleep(1.5)  # far behind its rate: cut off, and the one worker is free again
        assert get(server, timeout=2.0) == (200, b"/ok:0")


def test_a_refused_large_body_is_never_asked_for(serve: Any) -> None:
    def refuse(environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
        start_response("401 Unauthorized", [])
        return [b""]

    server = serve(refuse, buffer_bytes=1024)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 401 ")  # no 100 Continue before it


def test_stop_waits_for_an_answer_still_running(serve: Any) -> None:
    finished: list[bool] = []

    def slow(environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
        time.sleep(1.0)
        finished.append(True)
        start_response("200 OK", [])
        return [b"late"]

    server = serve(slow)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(0.2)
    server.stop()
    assert finished == [True]
