"""The quickstart's daemons, its signals and its output: whatever started it, it stops them all.

Three ways a `make run` used to leave daemons behind, and what answers each here:
- started in the background (`nohup make run &`), SIGINT arrives ignored and Python keeps
  it ignored: `install_stop_signals` installs handlers for SIGINT and SIGTERM regardless;
- piped into `head`, the reader goes away and every print raises BrokenPipeError, which
  used to abort the shutdown: `Output` stops printing at the first error and asks to stop;
- an exception or SystemExit on the way: `Children.stop_all` runs in `finally` and at exit,
  and each daemon leads a process group of its own, which is signalled as a whole.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TextIO

# How long a daemon has to stop after SIGTERM before its group gets SIGKILL.
STOP_GRACE_S = 30.0


class Output:
    """Prints that never raise: at the first output error it goes quiet and calls `on_error`."""

    def __init__(self, on_error: Callable[[], None], stream: TextIO | None = None) -> None:
        self._on_error = on_error
        self._stream = stream
        self.broken = False

    def say(self, *parts: object) -> None:
        """Print one line and flush it; an EPIPE or EIO ends all printing, not the caller."""
        if self.broken:
            return
        stream = self._stream or sys.stdout
        try:
            print(*parts, file=stream, flush=True)
        except (OSError, ValueError):  # EPIPE, EIO; ValueError: the stream was closed
            self.broken = True
            _silence(stream)
            self._on_error()


def _silence(stream: TextIO) -> None:
    """Point the broken stream's descriptor at /dev/null so the exit-time flush cannot fail."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def install_stop_signals(stop: threading.Event) -> list[str]:
    """SIGINT and SIGTERM set `stop`, even if SIGINT came ignored; returns the signals handled.

    SIGHUP too, unless it came ignored: `nohup` ignores it on purpose, to outlive the terminal.
    The handler only sets the event, so a second signal cannot interrupt the shutdown.
    """

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    handled = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        handled.append(signal.SIGHUP)
    for signum in handled:
        signal.signal(signum, handler)
    return [signal.Signals(s).name for s in handled]


class Children:
    """The daemons started, each the leader of its own process group; stopped in reverse."""

    def __init__(self, log_dir: Path, output: Output) -> None:
        self._log_dir = log_dir
        self._output = output
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._lock = threading.Lock()
        # The last resort: an exit path that skipped `finally` still stops them.
        atexit.register(self.stop_all)

    def start(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        """Start one daemon with this interpreter; output to <log_dir>/<name>.log."""
        with (self._log_dir / f"{name}.log").open("ab") as log:
            # A session of its own: a Ctrl-C on the terminal reaches only us, and we stop the
            # daemons in order; its process group is also what we signal to stop it whole.
            proc = subprocess.Popen(
                [sys.executable, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        """SIGTERM each group in reverse start order (nodes, then the relay); wait; no raise."""
        with self._lock:
            while self.procs:
                name, proc = self.procs.pop()
                code = stop_group(proc)
                if code is not None:
                    self._output.say(f"  stopped {name} (exit {code})")


def stop_group(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> int | None:
    """Stop `proc` and its process group; its exit code, or None if it had already exited."""
    already = proc.poll() is not None
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        code = proc.wait()
    # Whatever the leader left in its group (a grandchild) goes with it.
    _signal_group(proc.pid, signal.SIGKILL)
    return None if already else code


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
