"""A single background thread that fires periodic callbacks (actors get `tell`s from it)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass
class _Job:
    name: str
    interval: float
    callback: Callable[[], None]
    due: float


class Ticker:
    """Calls each registered callback every `interval` seconds until stopped."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._jobs: list[_Job] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)

    def every(self, interval: float, name: str, callback: Callable[[], None]) -> None:
        """Register `callback` to run every `interval` seconds (first run after one interval)."""
        self._jobs.append(_Job(name, interval, callback, self._clock() + interval))

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self._clock()
            for job in self._jobs:
                if now >= job.due:
                    job.due = now + job.interval
                    self._fire(job)
            next_due = min((j.due for j in self._jobs), default=now + 1.0)
            self._stop.wait(max(0.01, min(1.0, next_due - self._clock())))

    @staticmethod
    def _fire(job: _Job) -> None:
        # A failing callback (an actor restarting, say) must not stop the other jobs.
        try:
            job.callback()
        except Exception:
            logger.exception("periodic job %s failed", job.name)
