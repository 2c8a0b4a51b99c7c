"""A relay process serving HTTPS keeps the front's promises to hostile clients.

Plain HTTP sent to the TLS port gets a clear 400; handshakes that stall or never start
hold no worker and are cut at the head deadline; a thousand idle TLS connections do
not delay anyone; the inbox logs in over HTTPS with a Secure cookie.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from relay_app.passwords import hash_password
from tests.relay_app.helpers import relay_daemon, write_config
from tests.relay_app.tls_helpers import make_ca, use_tls
from tests.support import Daemon

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
# The front's head deadline (FrontLimits.head_timeout): a handshake must be done by then.
HEAD_TIMEOUT = 10.0


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    """A CA and the relay's certificate for 127.0.0.1."""
    return make_ca(tmp_path / "tls", "127.0.0.1")


@pytest.fixture
def relay(tmp_path: Path, ca: Path) -> Iterator[Daemon]:
    """`commander-relay serve` over HTTPS, with an operator password for the inbox."""
    config = write_config(tmp_path / "config")
    use_tls(config.parent, ca, operator_password_hash=hash_password(PASSWORD))
    with relay_daemon(config, tmp_path) as daemon:
        yield daemon


def healthz_seconds(relay: Daemon, ca: Path) -> float:
    """How long a GET /healthz over a new TLS connection takes (it must answer 200)."""
    started = time.monotonic()
    answer = requests.get(relay.url + "/healthz", timeout=5, verify=str(ca / "ca.pem"))
    assert answer.status_code == 200
    return time.monotonic() - started


def log_of(relay: Daemon) -> str:
    return relay.log_path.read_text(errors="replace")


def test_the_relay_speaks_https_only(relay: Daemon, ca: Path) -> None:
    assert relay.url.startswith("https://127.0.0.1:")
    assert "HTTPS with a certificate for 127.0.0.1, valid 82" in log_of(relay)
    assert healthz_seconds(relay, ca) < 2.0
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(relay.url + "/healthz", timeout=5)  # the system store knows no such CA


def test_plain_http_to_the_tls_port_gets_a_clear_400_then_the_close(relay: Daemon) -> None:
    with socket.create_connection(relay.address, timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"This port speaks HTTPS" in answer
    assert "Traceback" not in log_of(relay)


def test_stalled_handshakes_hold_no_worker_and_end_at_the_head_deadline(
    relay: Daemon, ca: Path
) -> None:
    # More than the relay's 16 workers: silent sockets, and half a ClientHello each.
    silent = [socket.create_connection(relay.address) for _ in range(40)]
    halves = [socket.create_connection(relay.address) for _ in range(40)]
    for sock in halves:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    try:
        time.sleep(0.5)
        latencies = [healthz_seconds(relay, ca) for _ in range(10)]
        assert max(latencies) < 1.0, latencies
        started = time.monotonic()
        for sock in (silent[0], halves[0]):
            sock.settimeout(HEAD_TIMEOUT + 5)
            assert sock.recv(100) == b""  # closed by the relay, not by this test
        assert time.monotonic() - started < HEAD_TIMEOUT + 3
    finally:
        for sock in silent + halves:
            sock.close()
    log = log_of(relay)
    assert "Traceback" not in log
    assert "ERROR" not in log


def test_a_thousand_idle_tls_connections_never_delay_a_normal_request(
    relay: Daemon, ca: Path
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    context = ssl.create_default_context(cafile=str(ca / "ca.pem"))
    before = rss(relay.proc.pid)
    idle: list[ssl.SSLSocket] = []
    try:
        for _ in range(1000):
            raw = socket.create_connection(relay.address, timeout=10)
            idle.append(context.wrap_socket(raw, server_hostname="127.0.0.1"))
        time.sleep(1.0)
        latencies = [healthz_seconds(relay, ca) for _ in range(20)]
        grown = rss(relay.proc.pid) - before
        assert max(latencies) < 1.0, sorted(latencies)[-5:]
        # Each idle TLS connection costs its SSL object and buffers, bounded well below
        # what the unit's 512 MB allow for a full front of 1,024.
        assert grown < 80 * 1024 * 1024, grown
    finally:
        for sock in idle:
            with contextlib.suppress(OSError):
                sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def rss(pid: int) -> int:
    """The process's resident set size in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_the_inbox_logs_in_over_https_with_a_secure_cookie(relay: Daemon, ca: Path) -> None:
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE would replace session.verify
    session.verify = str(ca / "ca.pem")
    form = session.get(relay.url + "/messages/login", timeout=10)
    assert form.status_code == 200
    assert 'name="password"' in form.text
    logged_in = session.post(
        relay.url + "/messages/login",
        data={"user": "operator", "password": PASSWORD, "next": "/messages"},
        timeout=30,
    )
    assert logged_in.status_code == 200, logged_in.text
    cookie = logged_in.history[0].headers["Set-Cookie"]
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert session.get(relay.url + "/messages", timeout=10).status_code == 200
