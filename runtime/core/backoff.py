"""Retry delays: exponential, full jitter, capped (AWS's "full jitter" scheme)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """delay(n) = rng() * min(cap, base ** (min(n, retry_max) - 1)) seconds, for attempt n >= 1.

    `retry_max` is the attempt after which the ceiling stops growing; retries never stop.
    """

    base: float = 2.0
    retry_max: int = 10
    cap: float = 60.0
    rng: Callable[[], float] = field(default=random.random, compare=False)

    def ceiling(self, attempt: int) -> float:
        """The largest delay after failed attempt number `attempt`."""
        exponent = max(0, min(attempt, self.retry_max) - 1)
        return float(min(self.cap, self.base**exponent))

    def delay(self, attempt: int) -> float:
        """A random delay in [0, ceiling(attempt))."""
        return self.rng() * self.ceiling(attempt)
