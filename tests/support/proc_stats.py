"""CPU time and memory of another process, read from /proc (Linux)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of `pid` so far: utime and stime of /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of `pid` so far."""
    return sum(cpu_times(pid))


def status_kb(pid: int, key: str) -> int:
    """A kB figure of /proc/<pid>/status: VmRSS (resident now) or VmHWM (peak resident)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/status")


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` now, MB."""
    return status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of `pid` over its life so far (VmHWM), MB."""
    return status_kb(pid, "VmHWM") / 1024


@dataclass
class CpuWindow:
    """CPU used by a process between `start()` and `stop()`, as a share of one core."""

    pid: int
    times0: tuple[float, float] = (0.0, 0.0)
    wall0: float = 0.0
    user_s: float = 0.0
    sys_s: float = 0.0
    wall_s: float = 0.0

    def start(self) -> CpuWindow:
        """Open the window now."""
        self.times0, self.wall0 = cpu_times(self.pid), time.monotonic()
        return self

    def stop(self) -> CpuWindow:
        """Close the window now."""
        user, system = cpu_times(self.pid)
        self.user_s, self.sys_s = user - self.times0[0], system - self.times0[1]
        self.wall_s = time.monotonic() - self.wall0
        return self

    @property
    def cpu_s(self) -> float:
        """User plus system CPU seconds in the window."""
        return self.user_s + self.sys_s

    @property
    def pct(self) -> float:
        """CPU as a percentage of one core over the window."""
        return 100 * self.cpu_s / self.wall_s if self.wall_s else 0.0


@dataclass
class RssSampler:
    """Samples the resident memory of named processes every `every` seconds in a thread.

    `pids` maps a name to a callable giving the current pid (or None while the process is
    down), so a restarted process keeps its series; each sample is (t, name, pid, MB).
    """

    pids: dict[str, Callable[[], int | None]]
    every: float = 1.0
    samples: list[tuple[float, str, int, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        """Start sampling in a daemon thread."""
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            now = time.monotonic() - self._t0
            for name, get_pid in self.pids.items():
                pid = get_pid()
                if pid is None:
                    continue
                try:
                    self.samples.append((now, name, pid, rss_mb(pid)))
                except (OSError, KeyError):
                    continue  # the process went away between two reads

    def series(self, name: str) -> list[tuple[float, int, float]]:
        """(t, pid, MB) of one process name, in time order."""
        return [(t, pid, mb) for t, n, pid, mb in self.samples if n == name]
