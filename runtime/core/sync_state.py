"""Delivery figures shared by an agent's uploader and outbox, read at scrape time."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class SyncSnapshot:
    """A consistent copy of SyncState."""

    failures_total: int
    last_success_at: float | None
    acked_messages_total: int
    # Why the last attempt failed, until one succeeds (e.g. a certificate that does not verify).
    last_error: str | None = None


class SyncState:
    """Thread-safe counters: failures, acknowledgements, last success."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures = 0
        self._last_success: float | None = None
        self._acked = 0
        self._last_error: str | None = None

    def failure(self, reason: str | None = None) -> None:
        """Count one failed attempt to reach the relay, and why it failed."""
        with self._lock:
            self._failures += 1
            self._last_error = reason

    def success(self, now: float, messages: int) -> None:
        """Record an acknowledgement of `messages` messages."""
        with self._lock:
            self._last_success = now
            self._acked += messages
            self._last_error = None

    def snapshot(self) -> SyncSnapshot:
        """Return the current figures."""
        with self._lock:
            return SyncSnapshot(self._failures, self._last_success, self._acked, self._last_error)
