"""commander-relay as a real process speaking sd_notify to an AF_UNIX datagram socket."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.relay_app.helpers import write_config
from tests.support import Daemon

WAIT = 10.0  # seconds for a datagram that must arrive, on a loaded machine


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, Path]]:
    """A datagram socket as systemd listens on, at a path short enough for AF_UNIX."""
    with tempfile.TemporaryDirectory(prefix="sd-") as short:
        path = Path(short) / "notify"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            sock.settimeout(WAIT)
            yield sock, path


def start_relay(tmp_path: Path, env: dict[str, str]) -> Daemon:
    config = write_config(tmp_path / "config")
    args = ["-m", "relay_app.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
            "--port", "0", "--data-dir", str(tmp_path / "data")]  # fmt: skip
    return Daemon(args, tmp_path / "relay.log", env=env)


def datagrams(sock: socket.socket, count: int) -> list[str]:
    return [sock.recv(4096).decode() for _ in range(count)]


def test_a_running_relay_says_ready_pings_the_watchdog_and_says_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000", "WATCHDOG_PID": ""}
    relay = start_relay(tmp_path, env)
    try:
        assert sock.recv(4096).decode() == "READY=1"
        # Ready means serving: the relay answers at once.
        assert requests.get(relay.url + "/healthz", timeout=10).status_code == 200
        assert datagrams(sock, 3) == ["WATCHDOG=1"] * 3  # every 0.2 s, half the timeout
    finally:
        code = relay.terminate()
    assert code == 0
    rest: list[str] = []
    while "STOPPING=1" not in rest and len(rest) < 50:
        rest.append(sock.recv(4096).decode())
    assert "STOPPING=1" in rest
    assert set(rest) <= {"WATCHDOG=1", "STOPPING=1"}


def test_a_relay_whose_watchdog_is_meant_for_another_process_never_pings(
    tmp_path: Path, notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}
    relay = start_relay(tmp_path, env)
    try:
        assert sock.recv(4096).decode() == "READY=1"
        sock.settimeout(1.0)  # five watchdog periods
        with pytest.raises(TimeoutError):
            sock.recv(4096)
    finally:
        assert relay.terminate() == 0
    sock.settimeout(WAIT)
    assert sock.recv(4096).decode() == "STOPPING=1"


def test_a_relay_whose_database_is_unreachable_says_so_and_exits_1(tmp_path: Path) -> None:
    """Not 2 (a config error): the unit restarts it until the database is up."""
    config = write_config(tmp_path / "config")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # nothing listens there once closed
    done = subprocess.run(
        [sys.executable, "-m", "relay_app.cli", "serve", "--config", str(config),
         "--host", "127.0.0.1", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--store", f"postgresql://nobody@127.0.0.1:{port}/none?connect_timeout=5"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "cannot start" in done.stderr
    assert "the cluster database is unreachable" in done.stderr
    assert "Traceback" not in done.stderr
