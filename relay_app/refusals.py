"""Why the relay refused a client, told to the operator's log and not to the client.

A client that fails authentication hears one text whatever the reason, so that it
cannot learn which node ids exist; the real reason goes to the log, one escaped line
per refusal. A flood of bad requests must not become a flood of log: past `burst`
lines in `window` seconds the rest are counted and the next line that gets out says
how many were left out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class RefusalLog:
    """At most `burst` warning lines per `window` seconds; the rest are counted."""

    def __init__(
        self,
        log: logging.Logger = logger,
        *,
        burst: int = 20,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Log through `log`."""
        self._log = log
        self._burst = burst
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._lines = 0
        self._left_out = 0

    def warning(self, fmt: str, *args: object) -> bool:
        """Log one line unless this window's budget is spent; whether it was logged."""
        with self._lock:
            now = self._clock()
            if now - self._started >= self._window:
                self._started, self._lines = now, 0
            if self._lines >= self._burst:
                self._left_out += 1
                return False
            self._lines += 1
            left_out, self._left_out = self._left_out, 0
        if left_out:
            fmt += " (%d more refusals not logged)"
            args = (*args, left_out)
        self._log.warning(fmt, *args)
        return True


# Refusals anyone can cause (no or a wrong token): one budget for every route.
REFUSALS = RefusalLog()
# Refusals of a node that holds a valid token (an agent not its own): a budget of their
# own, so that a stranger's flood of bad tokens cannot push these out of the log.
NODE_REFUSALS = RefusalLog()
