"""ChildHandle: the stable handle callers keep on a supervised child, across its restarts.

A `tell` never waits: while the child restarts, told messages wait in the handle, in
order, and go to the next incarnation before anything told after it. An `ask` waits
for the answer (its timeout), across a restart if need be.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import pykka

from runtime.core.errors import ActorUnavailable
from runtime.core.supervised import ActorExit, ChildSpec

logger = logging.getLogger(__name__)

# How often a waiting ask rechecks whether its actor is gone for good.
_POLL_SECONDS = 0.05


class ChildHandle:
    """The stable handle to a supervised child; it follows the child across restarts."""

    def __init__(self, spec: ChildSpec, call_timeout: float) -> None:
        self.name = spec.name
        self.spec = spec
        self._call_timeout = call_timeout
        self._cond = threading.Condition()
        self._ref: pykka.ActorRef[Any] | None = None
        self._exit = ActorExit()
        self._closed: str | None = None  # why the child will not come back
        self._closed_ok = False  # it ended normally, so that is no failure
        self._down: str | None = None  # why its group is down until the supervisor revives it
        self._incarnations = 0
        self._recent: deque[float] = deque()  # times of this child's recent restarts
        self._pending: deque[Any] = deque()  # told while no incarnation runs, oldest first
        self._dropped = 0  # tells dropped: the pending ones were too many, or it went down

    def ask(self, message: Any, *, timeout: float | None = None) -> Any:
        """Send a message and wait for the answer, across a restart if need be."""
        return self.ask_future(message).get(timeout=timeout)

    def ask_future(self, message: Any) -> pykka.Future[Any]:
        """Send a message now if the child is up; `get()` waits (default call_timeout)."""
        call = _Call(self, message)
        future: pykka.Future[Any] = pykka.ThreadingFuture()
        future.set_get_hook(call.result)
        return future

    def tell(self, message: Any) -> None:
        """Send a message without waiting; while the child restarts it waits here, in order.

        ActorUnavailable if the child is stopped for good or down; past `pending_tells`
        waiting messages it is dropped and counted (`dropped_tells`).
        """
        with self._cond:
            self._check_reachable()
            if not self._pending and self._ref is not None and _sent(self._ref, message):
                return
            if len(self._pending) < self.spec.pending_tells:
                self._pending.append(message)
                return
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                logger.warning(
                    "child %r restarting with %d tells waiting: dropped %d so far",
                    self.name,
                    len(self._pending),
                    self._dropped,
                )

    def try_tell(self, message: Any) -> bool:
        """Send without waiting if the child is up right now; False (message dropped) if not."""
        with self._cond:
            # Behind tells still waiting for the incarnation, this one would overtake them.
            return not self._pending and self._ref is not None and _sent(self._ref, message)

    def is_alive(self) -> bool:
        """True while the current incarnation runs."""
        return self._current() is not None

    @property
    def down(self) -> str | None:
        """Why the child is down until its supervisor revives it, or None."""
        with self._cond:
            return self._down

    @property
    def dropped_tells(self) -> int:
        """Tells dropped so far: too many waited for a restart, or the child went down."""
        with self._cond:
            return self._dropped

    @property
    def restarts(self) -> int:
        """How many times this child was restarted."""
        with self._cond:
            return max(0, self._incarnations - 1)

    def _current(self) -> tuple[pykka.ActorRef[Any], ActorExit] | None:
        with self._cond:
            if self._ref is not None and self._ref.is_alive():
                return self._ref, self._exit
            return None

    def _check_reachable(self) -> None:
        """ActorUnavailable if the child is stopped for good or down; call with the lock."""
        if self._closed is not None:
            raise ActorUnavailable(f"child {self.name!r} is stopped: {self._closed}")
        if self._down is not None:
            # Fail at once: a caller must not wait out a long revival backoff.
            raise ActorUnavailable(f"child {self.name!r} is down: {self._down}")

    def _wait_up(self, deadline: float, timeout: float) -> tuple[pykka.ActorRef[Any], ActorExit]:
        with self._cond:
            while True:
                self._check_reachable()
                if self._ref is not None and self._ref.is_alive():
                    return self._ref, self._exit
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    raise ActorUnavailable(
                        f"child {self.name!r} is restarting and did not come back "
                        f"within {timeout:g}s"
                    )

    def _install(self, ref: pykka.ActorRef[Any] | None, actor_exit: ActorExit) -> None:
        with self._cond:
            self._ref, self._exit = ref, actor_exit
            self._incarnations += 1
            self._down = None
            # Under the lock: nothing told from now on can overtake what waited.
            while ref is not None and self._pending and _sent(ref, self._pending[0]):
                self._pending.popleft()
            self._cond.notify_all()

    def _suspend(self, reason: str) -> None:
        with self._cond:
            self._down = reason
            self._drop_pending(f"it is down: {reason}")
            self._cond.notify_all()

    def _close(self, reason: str, *, ok: bool = False) -> None:
        with self._cond:
            if self._closed is None:
                self._closed, self._closed_ok = reason, ok
            self._drop_pending(f"it is stopped: {reason}")
            self._cond.notify_all()

    def _drop_pending(self, why: str) -> None:
        """Drop (and count) the tells waiting for an incarnation that will not come soon."""
        if self._pending:
            logger.warning(
                "child %r: %d told messages dropped, %s", self.name, len(self._pending), why
            )
            self._dropped += len(self._pending)
            self._pending.clear()

    def _healthy(self) -> bool:
        with self._cond:
            # A child that ended normally for good is done, not dead.
            return self._closed_ok if self._closed is not None else self.is_alive()


def _sent(ref: pykka.ActorRef[Any], message: Any) -> bool:
    """Tell `ref` if its incarnation still runs; False if it is gone."""
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True


class _NeverHandledError(Exception):
    """The incarnation an ask went to is gone and never handled it: resend."""


_Sent = tuple[pykka.Future[Any], pykka.ActorRef[Any], ActorExit]


class _Call:
    """One ask that follows its child across restarts until answered or out of time."""

    def __init__(self, child: ChildHandle, message: Any) -> None:
        self._child = child
        self._message = message
        self._sent: _Sent | None = None
        current = child._current()
        if current is not None:
            self._send(*current)

    def _send(self, ref: pykka.ActorRef[Any], actor_exit: ActorExit) -> None:
        self._sent = (ref.ask(self._message, block=False), ref, actor_exit)

    def result(self, timeout: float | None) -> Any:
        """Wait for the answer; resend only what pykka proves was never handled."""
        timeout = self._child._call_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if self._sent is None:
                self._send(*self._child._wait_up(deadline, timeout))
            assert self._sent is not None
            try:
                return self._await(self._sent, deadline, timeout)
            except _NeverHandledError:
                self._sent = None

    def _await(self, sent: _Sent, deadline: float, timeout: float) -> Any:
        future, ref, actor_exit = sent
        while True:
            # Every answer is set before `done`; so if it was set before this wait and
            # nothing came, the message reached the mailbox too late and is lost.
            gone = actor_exit.reported and actor_exit.done.is_set()
            wait = 0.0 if gone else min(_POLL_SECONDS, max(0.0, deadline - time.monotonic()))
            try:
                return future.get(timeout=wait)
            except pykka.ActorDeadError:
                # From a dead incarnation pykka only sends it for messages never handled;
                # from a live one it came out of the handler and is the caller's business.
                if ref.is_alive():
                    raise
                raise _NeverHandledError from None
            except pykka.Timeout:
                if gone:
                    raise _NeverHandledError from None
                if time.monotonic() >= deadline:
                    raise ActorUnavailable(
                        f"child {self._child.name!r} did not answer within {timeout:g}s"
                    ) from None
