"""The sd_notify protocol against real AF_UNIX datagram sockets, as systemd listens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.core import notify

WAIT = 2.0  # seconds to wait for a datagram that must arrive


@pytest.fixture
def listener(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[socket.socket]:
    """A datagram socket on a file path, named in $NOTIFY_SOCKET as systemd does."""
    # A short directory: AF_UNIX paths are limited to 108 bytes and test names are long.
    path = tmp_path_factory.mktemp("sd") / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(WAIT)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield sock


def received(sock: socket.socket) -> str:
    """The next datagram, decoded."""
    return sock.recv(4096).decode("utf-8")


def nothing_arrives(sock: socket.socket, within: float) -> bool:
    """True when no datagram arrives for ``within`` seconds."""
    sock.settimeout(within)
    try:
        sock.recv(4096)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(WAIT)
    return False


def drain(sock: socket.socket) -> None:
    """Throw away every datagram already queued."""
    sock.setblocking(False)
    try:
        while True:
            sock.recv(4096)
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(WAIT)


def test_every_helper_returns_false_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.notify("READY=1") is False
    assert notify.ready() is False
    assert notify.stopping() is False
    assert notify.watchdog() is False
    assert notify.status("starting") is False


def test_ready_status_and_stopping_arrive_as_datagrams(listener: socket.socket) -> None:
    assert notify.ready() is True
    assert received(listener) == "READY=1"
    assert notify.status("3 agents up, relay reachable") is True
    assert received(listener) == "STATUS=3 agents up, relay reachable"
    assert notify.stopping() is True
    assert received(listener) == "STOPPING=1"
    assert notify.watchdog() is True
    assert received(listener) == "WATCHDOG=1"


def test_several_assignments_travel_in_one_datagram(listener: socket.socket) -> None:
    assert notify.notify("READY=1\nSTATUS=up") is True
    assert received(listener) == "READY=1\nSTATUS=up"


def test_a_multiline_status_stays_one_assignment(listener: socket.socket) -> None:
    notify.status("relay down\nREADY=1")
    assert received(listener) == "STATUS=relay down READY=1"


def test_an_abstract_socket_is_named_with_a_leading_at(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"commander-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(WAIT)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.ready() is True
        assert received(sock) == "READY=1"


def test_the_environment_is_read_at_each_call(
    listener: socket.socket,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = tmp_path_factory.mktemp("sd") / "other"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as second:
        second.bind(str(other))
        second.settimeout(WAIT)
        notify.ready()
        monkeypatch.setenv("NOTIFY_SOCKET", str(other))
        notify.stopping()
        assert received(listener) == "READY=1"
        assert received(second) == "STOPPING=1"


def test_a_socket_that_is_gone_returns_false_instead_of_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "no-such-socket"))
    assert notify.ready() is False


def test_a_relative_or_vsock_address_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert notify.ready() is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 30.0),
        ("30000000", "self", 30.0),
        ("30000000", "other", None),
        ("0", None, None),
        ("not-a-number", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval_comes_from_watchdog_usec_for_this_process_only(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            own = os.getpid()
            monkeypatch.setenv(name, {"self": str(own), "other": str(own + 1)}.get(value, value))
    assert notify.watchdog_interval() == expected


def test_a_child_process_that_inherited_the_watchdog_does_not_ping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    code = "from runtime.core.notify import watchdog_interval; print(watchdog_interval())"
    child = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.stdout.strip() == "None"
    assert notify.watchdog_interval() == 30.0


class Health:
    """A switchable health check that records when it was last asked."""

    def __init__(self) -> None:
        self.healthy = True
        self.asked = threading.Event()

    def __call__(self) -> bool:
        self.asked.set()
        return self.healthy

    def set(self, healthy: bool) -> None:
        """Switch, then wait until the watchdog thread has asked once more."""
        self.healthy = healthy
        self.asked.clear()
        assert self.asked.wait(WAIT)


def test_the_watchdog_pings_only_while_the_actors_are_healthy(listener: socket.socket) -> None:
    health = Health()
    dog = notify.Watchdog(health, interval=0.2)  # pings every 0.1 s
    assert dog.start() is True
    try:
        assert [received(listener) for _ in range(3)] == ["WATCHDOG=1"] * 3
        health.set(False)
        # Any ping decided before the switch was sent before the thread asked again.
        drain(listener)
        assert nothing_arrives(listener, within=0.5)
        health.set(True)
        assert received(listener) == "WATCHDOG=1"
    finally:
        dog.stop()
    drain(listener)
    assert nothing_arrives(listener, within=0.3)


def test_a_health_check_that_raises_counts_as_unhealthy(listener: socket.socket) -> None:
    def broken() -> bool:
        raise RuntimeError("supervisor is gone")

    dog = notify.Watchdog(broken, interval=0.1)
    assert dog.start() is True
    try:
        assert nothing_arrives(listener, within=0.4)
    finally:
        dog.stop()


def test_the_watchdog_takes_its_interval_from_the_environment(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    dog = notify.Watchdog(lambda: True)
    assert dog.start() is True
    try:
        assert received(listener) == "WATCHDOG=1"
    finally:
        dog.stop()


def test_no_watchdog_runs_when_watchdog_pid_names_another_process(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    dog = notify.Watchdog(lambda: True)
    assert dog.start() is False
    assert nothing_arrives(listener, within=0.3)
    dog.stop()


def test_no_watchdog_runs_without_watchdog_usec(listener: socket.socket) -> None:
    dog = notify.Watchdog(lambda: True)
    assert dog.start() is False
    dog.stop()


def test_stop_ends_the_thread_and_a_second_start_is_refused_while_running(
    listener: socket.socket,
) -> None:
    dog = notify.Watchdog(lambda: True, interval=10.0)
    assert dog.start() is True
    assert dog.start() is False
    dog.stop()
    assert not [t for t in threading.enumerate() if t.name == "sd-watchdog"]


def test_a_reader_that_lags_never_holds_the_sender(listener: socket.socket) -> None:
    """Past what the reader's queue holds, a notification is dropped (False) at once."""
    sent = [notify.notify("WATCHDOG=1") for _ in range(200)]
    assert sent[0] is True
    assert sent[-1] is False  # the queue is full: dropped, not waited for
    assert listener.recv(4096).decode() == "WATCHDOG=1"  # what was queued still arrives
