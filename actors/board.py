"""The latest figures of one agent, published by its actors and read without asking them.

A local answer (/status, /metrics) must never wait behind an actor that is blocked
in an HTTP call to the relay; so the outbox publishes its figures here after every
change, and readers take the last copy under a lock.
"""

from __future__ import annotations

import threading

from actors.messages import CacheStats, OutboxStats, RefillStats


class AgentBoard:
    """Thread-safe holder of one agent's last published cache, outbox and refill figures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: CacheStats | None = None
        self._outbox: OutboxStats | None = None
        self._refill = RefillStats()

    def publish_cache(self, stats: CacheStats) -> None:
        """Keep the cache's latest figures."""
        with self._lock:
            self._cache = stats

    def publish_outbox(self, stats: OutboxStats) -> None:
        """Keep the outbox's latest figures."""
        with self._lock:
            self._outbox = stats

    def publish_refill(self, stats: RefillStats) -> None:
        """Keep the reconciler's latest figures for this agent."""
        with self._lock:
            self._refill = stats

    def refill(self) -> RefillStats:
        """The reconciler's last figures for this agent."""
        with self._lock:
            return self._refill

    def cache(self) -> CacheStats | None:
        """The cache's last published figures, None before the first."""
        with self._lock:
            return self._cache

    def outbox(self) -> OutboxStats | None:
        """The outbox's last published figures, None before the first."""
        with self._lock:
            return self._outbox
