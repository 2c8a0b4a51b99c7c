"""The kernel's run loop (runtime.core.daemon) in a real process, as systemd runs it.

tests/runtime/run_loop_child.py is a small service on the loop; the node and the relay
run on the same loop (tests/runtime/test_daemon.py, tests/relay_app/test_relay_process.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import wait_for

SCRIPT = Path(__file__).with_name("run_loop_child.py")
ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0  # seconds for something that must happen, on a loaded machine


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, Path]]:
    """A datagram socket as systemd listens on, at a path short enough for AF_UNIX."""
    with tempfile.TemporaryDirectory(prefix="sd-") as short:
        path = Path(short) / "notify"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            sock.settimeout(WAIT)
            yield sock, path


class Child:
    """run_loop_child.py in one mode, under $NOTIFY_SOCKET with a 0.4 s watchdog."""

    def __init__(self, mode: str, notify: Path, tmp_path: Path) -> None:
        self.out = tmp_path / "stdout"
        self.err = tmp_path / "stderr"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "NOTIFY_SOCKET": str(notify),
            "WATCHDOG_USEC": "400000",
            "WATCHDOG_PID": "",
        }
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), mode], stdout=out, stderr=err, env=env
            )
        wait_for(lambda: "ready" in self.out.read_text(), timeout=WAIT)

    def steps(self) -> list[str]:
        return [line for line in self.out.read_text().splitlines() if line.startswith("step")]

    def wait(self) -> int:
        try:
            return self.proc.wait(WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def datagrams_until(sock: socket.socket, last: str) -> list[str]:
    seen: list[str] = []
    while last not in seen and len(seen) < 100:
        seen.append(sock.recv(4096).decode())
    return seen


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_service_with_0_after_ready_pings_and_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, Path], signum: int
) -> None:
    sock, path = notify_socket
    child = Child("serve", path, tmp_path)
    assert sock.recv(4096).decode() == "READY=1"  # before any ping
    assert [sock.recv(4096).decode() for _ in range(2)] == ["WATCHDOG=1"] * 2

    child.proc.send_signal(signum)

    assert child.wait() == 0
    assert datagrams_until(sock, "STOPPING=1")[-1] == "STOPPING=1"
    assert child.steps() == ["step doors", "step store"]


def test_a_failure_stops_the_service_with_1_and_still_runs_every_step(
    tmp_path: Path, notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    child = Child("fail", path, tmp_path)

    assert child.wait() == 1
    seen = datagrams_until(sock, "STOPPING=1")
    assert seen[0] == "READY=1"
    assert child.steps() == ["step doors", "step store"]
    assert "the part died on purpose; stopping" in child.err.read_text()


def test_a_failing_shutdown_step_does_not_skip_the_others_and_exits_1(
    tmp_path: Path, notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    child = Child("broken-step", path, tmp_path)
    assert sock.recv(4096).decode() == "READY=1"

    child.proc.send_signal(signal.SIGTERM)

    assert child.wait() == 1
    assert child.steps() == ["step doors", "step store"]
    assert "shutdown step 'doors' failed" in child.err.read_text()


def test_an_unhealthy_service_is_ready_but_never_pings(
    tmp_path: Path, notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    child = Child("unhealthy", path, tmp_path)
    assert sock.recv(4096).decode() == "READY=1"
    sock.settimeout(1.0)  # five ping periods
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sock.recv(4096)
    assert time.monotonic() - started >= 0.9

    child.proc.send_signal(signal.SIGTERM)

    assert child.wait() == 0
    sock.settimeout(WAIT)
    assert sock.recv(4096).decode() == "STOPPING=1"
