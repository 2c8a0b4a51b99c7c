"""Retry delays: exponential, full jitter, capped (AWS's "full jitter" scheme)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.core.config import SyncConfig

# The defaults are an agent's `sync:` defaults, written down once, in SyncConfig.
_SYNC = SyncConfig()


@dataclass(frozen=True)
class Backoff:
    """delay(n) = rng() * min(cap, base ** (min(n, retry_max) - 1)) seconds, for attempt n >= 1.

    `retry_max` is the attempt after which the ceiling stops growing; retries never stop.
    """

    base: float = _SYNC.retry_backoff_base
    retry_max: int = _SYNC.retry_max
    cap: float = _SYNC.retry_cap_seconds
    rng: Callable[[], float] = field(default=random.random, compare=False)

    def ceiling(self, attempt: int) -> float:
        """The largest delay after failed attempt number `attempt`."""
        exponent = max(0, min(attempt, self.retry_max) - 1)
        return float(min(self.cap, self.base**exponent))

    def delay(self, attempt: int) -> float:
        """A random delay in [0, ceiling(attempt))."""
        return self.rng() * self.ceiling(attempt)


def sync_backoff(sync: SyncConfig) -> Backoff:
    """The backoff an agent's `sync:` section asks for."""
    return Backoff(sync.retry_backoff_base, sync.retry_max, sync.retry_cap_seconds)
