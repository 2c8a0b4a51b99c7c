"""The retry schedule: exponential ceilings, full jitter, a cap, never giving up."""

from __future__ import annotations

from runtime.core.backoff import Backoff


def test_ceilings_double_until_retry_max_then_stay() -> None:
    backoff = Backoff(base=2.0, retry_max=4, cap=1000.0)
    assert [backoff.ceiling(n) for n in range(1, 8)] == [1, 2, 4, 8, 8, 8, 8]


def test_the_cap_bounds_every_delay() -> None:
    backoff = Backoff(base=2.0, retry_max=10, cap=60.0, rng=lambda: 0.999)
    assert max(backoff.delay(n) for n in range(1, 100)) < 60.0
    assert backoff.ceiling(1000) == 60.0


def test_full_jitter_scales_the_ceiling_by_the_random_source() -> None:
    draws = iter([0.0, 0.5, 0.25])
    backoff = Backoff(base=3.0, retry_max=10, cap=100.0, rng=lambda: next(draws))
    assert [backoff.delay(n) for n in (1, 2, 3)] == [0.0, 1.5, 2.25]
