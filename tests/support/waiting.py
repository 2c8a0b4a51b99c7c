"""Waiting for what another thread or process does: poll a condition until a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, step: float = 0.02, what: str = ""
) -> float:
    """Poll until predicate() is true; return the seconds it took, or fail naming `what`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    if predicate():  # one last look: the deadline may have passed during a slow poll
        return time.monotonic() - start
    raise AssertionError(f"{what or 'condition'} not met within {timeout}s")
