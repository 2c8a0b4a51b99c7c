"""Signal handling: in this process, and in a real daemon-like child process."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.core.signals import install_signal_handlers

WAIT = 5.0  # seconds for something that must happen
SCRIPT = Path(__file__).with_name("supervised_child.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    """Put pytest's own handlers back, so a later Ctrl-C still works."""
    saved = {
        signum: signal.getsignal(signum)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
    }
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.usefixtures("restore_handlers")
def test_sigterm_and_sigint_call_on_terminate_exactly_once() -> None:
    calls: list[str] = []
    install_signal_handlers(lambda: calls.append("terminate"))

    os.kill(os.getpid(), signal.SIGTERM)
    wait_until(lambda: calls == ["terminate"])
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)  # room for the handlers to run (they run at once in the main thread)

    assert calls == ["terminate"]


@pytest.mark.usefixtures("restore_handlers")
def test_sigusr1_logs_the_traceback_of_every_thread(caplog: pytest.LogCaptureFixture) -> None:
    install_signal_handlers(lambda: None)

    with caplog.at_level(logging.CRITICAL, logger="pykka"):
        os.kill(os.getpid(), signal.SIGUSR1)
        wait_until(lambda: any("MainThread" in r.getMessage() for r in caplog.records))

    assert "test_sigusr1_logs_the_traceback" in caplog.text


def test_installing_the_handlers_outside_the_main_thread_is_refused() -> None:
    errors: list[BaseException] = []

    def install() -> None:
        try:
            install_signal_handlers(lambda: None)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=install)
    thread.start()
    thread.join()

    assert len(errors) == 1
    assert "main thread" in str(errors[0])


class Daemon:
    """tests/runtime/supervised_child.py in `serve` mode, its output in files to read any time."""

    def __init__(self, tmp_path: Path) -> None:
        self.stdout_path = tmp_path / "stdout"
        self.stderr_path = tmp_path / "stderr"
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(SCRIPT), "serve"],
                stdout=out,
                stderr=err,
                env={**os.environ, "PYTHONPATH": path},
            )
        wait_until(lambda: "ready" in self.stdout())

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def kill(self, signum: int) -> None:
        self.process.send_signal(signum)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path)
    yield daemon
    if daemon.process.poll() is None:
        daemon.process.kill()
        daemon.process.wait()


def test_sigterm_stops_the_children_in_reverse_order_and_the_process_exits_zero(
    daemon: Daemon,
) -> None:
    daemon.kill(signal.SIGTERM)

    assert daemon.process.wait(timeout=WAIT) == 0, daemon.stderr()
    stops = [line for line in daemon.stdout().splitlines() if line.startswith("stopped")]
    assert stops == ["stopped third", "stopped second", "stopped first"]
    assert "received SIGTERM; stopping" in daemon.stderr()


def test_sigusr1_makes_the_process_log_every_thread_and_keep_running(daemon: Daemon) -> None:
    daemon.kill(signal.SIGUSR1)

    wait_until(lambda: "Current state of MainThread" in daemon.stderr())
    assert "supervisor.wait()" in daemon.stderr(), "the main thread's stack is in the log"
    assert daemon.process.poll() is None
    daemon.kill(signal.SIGTERM)
    assert daemon.process.wait(timeout=WAIT) == 0
