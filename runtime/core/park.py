"""Long polls that hold no worker thread: a route parks its request until a bell rings.

A route with nothing to answer yet calls `long_poll`. Served by our HTTP front (which
puts CAN_PARK_KEY in the environ), it sets `environ[PARK_KEY] = Park(...)` and returns;
the front (runtime.core.http_answer.run_app) then awaits the bell on its event loop, with no
worker held, and runs the app again on the same request with DEADLINE_KEY set, so the
route answers what arrived or parks again until its deadline. Only bodiless requests
(GET) may park: a body cannot be read twice. Served by anything else, `long_poll` waits
on the calling thread instead, bounded by the same deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

PARK_KEY = "commander.park"
CAN_PARK_KEY = "commander.can_park"
DEADLINE_KEY = "commander.park_deadline"

T = TypeVar("T")


class Bell:
    """Rung after each commit; a waiter wakes when it has rung since the count it saw."""

    def __init__(self) -> None:
        """No ring yet, nobody waiting."""
        self._cond = threading.Condition()
        self.rung = 0
        self._waiters: dict[asyncio.Future[None], asyncio.AbstractEventLoop] = {}

    def ring(self) -> None:
        """Wake every waiter (cheap; from any thread)."""
        with self._cond:
            self.rung += 1
            waiters, self._waiters = self._waiters, {}
            self._cond.notify_all()
        for future, loop in waiters.items():
            loop.call_soon_threadsafe(_wake, future)

    def wait(self, seen: int, timeout: float) -> bool:
        """Block until rung past `seen` or `timeout` passed; whether it rang."""
        with self._cond:
            return self._cond.wait_for(lambda: self.rung != seen, max(0.0, timeout))

    async def until_rung(self, seen: int, deadline: float) -> None:
        """On an event loop: return once rung past `seen`, or at `deadline` (monotonic)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self.rung != seen:
                return
            self._waiters[future] = loop
        try:
            await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            pass
        finally:
            with self._cond:
                self._waiters.pop(future, None)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True)
class Park:
    """What a parked request waits for: `bell` to ring past `seen`, at most until `deadline`."""

    bell: Bell
    seen: int
    deadline: float


def long_poll(
    environ: dict[str, Any],
    bell: Bell,
    wait: float,
    fetch: Callable[[], T],
    empty: Callable[[T], bool],
) -> T | None:
    """`fetch()`'s answer once it is not empty or the wait is over; None when parked.

    A parked route returns any body: the front discards it and asks again later.
    """
    deadline = environ.get(DEADLINE_KEY) or time.monotonic() + wait
    while True:
        seen = bell.rung  # read before fetching: a commit after the fetch rings past it
        found = fetch()
        left = deadline - time.monotonic()
        if not empty(found) or left <= 0:
            return found
        if environ.get(CAN_PARK_KEY):
            environ[PARK_KEY] = Park(bell, seen, deadline)
            return None
        bell.wait(seen, left)
