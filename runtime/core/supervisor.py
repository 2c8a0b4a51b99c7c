"""OTP-style supervision for pykka actors: one_for_one restarts, backoff, restart intensity.

pykka has no supervisors. A `Supervisor` starts its children in the order added,
restarts only the dead one (one_for_one) after an exponential backoff with full
jitter, gives up after more than `max_restarts` restarts within `within_seconds`,
and stops children in reverse order. Callers keep a `ChildHandle`, which follows
the child across restarts; only stops the supervisor makes itself never restart.

Given `revive_after`, a supervisor does not give up for good: past the restart
intensity it stops its children, marks them down (asks fail at once), waits
`revive_after(n)` for its n-th time down, and starts them all again. A node gives
each agent such a supervisor, so an agent whose data crashes its actors is down
alone, tried again now and then, while the other agents and the process go on.

Noticing a death: each child has one watcher thread blocked on an event that is
set once the current incarnation is gone: no polling latency or CPU, and one
child's backoff never delays another's restart.

Telling a crash from a normal stop: children should subclass `SupervisedActor`.
pykka sends every abnormal exit (an exception in `on_start`, in a told message, in
`on_failure` or `on_stop`) through one method, `Actor._handle_failure`, which the
subclass overrides to record the error; `on_failure` alone would miss `on_start`.
It also marks when its thread has fully finished, after `on_stop`/`on_failure` and
after pykka answered queued asks with ActorDeadError; pykka's `actor_stopped` is
set before all that. So a restart never overlaps the old incarnation, and an ask
still unanswered by then was never handled and is safely resent. A plain
`pykka.ThreadingActor` child works too, but then only `actor_stopped` is seen and
every exit counts as a crash: TRANSIENT behaves as PERMANENT for it.

A `tell` that lands in the mailbox of an actor in the middle of crashing is lost,
as in pykka itself; an `ask` is never lost that way.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable

import pykka

from runtime.core.child import ChildHandle
from runtime.core.errors import SupervisorGaveUp
from runtime.core.supervised import ActorExit, ChildSpec, Restart, SupervisedActor, start_actor

__all__ = ["ActorExit", "ChildHandle", "ChildSpec", "Restart", "SupervisedActor", "Supervisor"]

logger = logging.getLogger(__name__)

MAX_REASON = 300


class Supervisor:
    """Starts children in order, restarts them one_for_one, stops them in reverse order."""

    def __init__(
        self,
        name: str = "supervisor",
        *,
        max_restarts: int = 5,
        within_seconds: float = 10.0,
        backoff_base: float = 0.05,
        backoff_cap: float = 5.0,
        call_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        on_give_up: Callable[[SupervisorGaveUp], None] | None = None,
        revive_after: Callable[[int], float] | None = None,
    ) -> None:
        self.name = name
        self.max_restarts = max_restarts
        self.within_seconds = within_seconds
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.call_timeout = call_timeout
        self._clock = clock
        self._rng = rng
        self._on_give_up = on_give_up
        self._revive_after = revive_after
        self._down: str | None = None
        self._downs = 0
        self._revive_at: float | None = None
        self._lock = threading.RLock()  # RLock: a signal handler may stop us mid-start
        self._children: list[ChildHandle] = []
        self._watchers: list[threading.Thread] = []
        self._restart_times: deque[float] = deque()
        self._started = False
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._gave_up = False

    def add(self, spec: ChildSpec) -> ChildHandle:
        """Add a child; if the supervisor already runs, start it at once."""
        with self._lock:
            if self._stopping.is_set():
                raise RuntimeError(f"supervisor {self.name!r} is stopped")
            if any(child.name == spec.name for child in self._children):
                raise ValueError(f"supervisor {self.name!r} already has a child {spec.name!r}")
            child = ChildHandle(spec, self.call_timeout)
            self._children.append(child)
            if self._started:
                self._launch(child)
            return child

    def start(self) -> None:
        """Start the children in the order added, then watch them."""
        with self._lock:
            if self._started or self._stopping.is_set():
                raise RuntimeError(f"supervisor {self.name!r} was already started or stopped")
            self._started = True
            for child in self._children:
                self._launch(child)
        logger.info("supervisor %r started %d children", self.name, len(self._children))

    def stop(self) -> None:
        """Stop the children in reverse order; calling it again does nothing."""
        if not self._stop_children():
            return
        for watcher in self._watchers:
            if watcher is not threading.current_thread():
                watcher.join(self.call_timeout)
        self._finished.set()
        logger.info("supervisor %r stopped", self.name)

    def healthy(self) -> bool:
        """True while running and every child that should run is alive."""
        with self._lock:
            running = self._started and not self._stopping.is_set()
            return running and all(child._healthy() for child in self._children)

    def running(self) -> bool:
        """True between start and stop, down or not: the supervision itself goes on."""
        with self._lock:
            return self._started and not self._stopping.is_set()

    @property
    def down(self) -> str | None:
        """Why the children are down until revived, or None."""
        with self._lock:
            return self._down

    @property
    def times_down(self) -> int:
        """How many times the restart intensity was exceeded and the children went down."""
        with self._lock:
            return self._downs

    @property
    def revive_at(self) -> float | None:
        """When (on the supervisor's clock) down children start again, or None."""
        with self._lock:
            return self._revive_at if self._down is not None else None

    def restart_counts(self) -> dict[str, int]:
        """Restarts so far, by child name."""
        with self._lock:
            return {child.name: child.restarts for child in self._children}

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stopped or gave up; False if `timeout` passed first."""
        return self._finished.wait(timeout)

    @property
    def gave_up(self) -> bool:
        """True once restart intensity was exceeded and everything was stopped."""
        return self._gave_up

    def backoff_delay(self, recent_restarts: int) -> float:
        """Full-jitter exponential backoff: rng() * min(cap, base * 2**recent_restarts)."""
        return self._rng() * min(self.backoff_cap, self.backoff_base * 2.0**recent_restarts)

    def _launch(self, child: ChildHandle) -> None:
        if not self._start_incarnation(child):
            return  # stopped meanwhile, say by a signal handler while start() ran
        watcher = threading.Thread(
            target=self._watch, args=(child,), name=f"{self.name}/{child.name}", daemon=True
        )
        self._watchers.append(watcher)
        watcher.start()

    def _start_incarnation(self, child: ChildHandle) -> bool:
        # Under the lock, so stop() either sees the new actor or we see stop().
        with self._lock:
            if self._stopping.is_set() or self._down is not None:
                return False
            try:
                ref, actor_exit = start_actor(child.spec)
            except Exception as exc:
                logger.exception("supervisor %r: starting child %r failed", self.name, child.name)
                failed = ActorExit()
                failed.record(exc)
                failed.done.set()
                child._install(None, failed)
            else:
                child._install(ref, actor_exit)
            return True

    def _watch(self, child: ChildHandle) -> None:
        try:
            while self._watch_once(child):
                pass
        except Exception as exc:
            # A bug here must not leave the child unsupervised: escalate.
            logger.exception("supervisor %r: watcher of %r failed", self.name, child.name)
            self._give_up(f"the watcher of child {child.name!r} failed", exc)

    def _watch_once(self, child: ChildHandle) -> bool:
        actor_exit = child._exit
        actor_exit.done.wait()
        if self._stopping.is_set() or self.down is not None:
            return False  # stopped by us: stop() or _go_down() decides what comes next
        crashed = actor_exit.crashed
        how = f"crashed: {actor_exit.error!r}" if actor_exit.error else "stopped"
        if not _should_restart(child.spec.restart, crashed=crashed):
            reason = f"it {how} and is {child.spec.restart.name}"
            logger.info("supervisor %r: child %r is gone: %s", self.name, child.name, reason)
            child._close(reason, ok=not crashed)
            return False
        delay = self._plan_restart(child, actor_exit, how)
        if delay is None or self._stopping.wait(delay):
            return False
        return self._start_incarnation(child)

    def _plan_restart(self, child: ChildHandle, actor_exit: ActorExit, how: str) -> float | None:
        """Count the restart against the intensity; its delay, or None after giving up."""
        with self._lock:
            now = self._clock()
            for times in (self._restart_times, child._recent):
                while times and times[0] < now - self.within_seconds:
                    times.popleft()
            too_many = len(self._restart_times) >= self.max_restarts
            delay = 0.0 if too_many else self.backoff_delay(len(child._recent))
            if not too_many:
                self._restart_times.append(now)
                child._recent.append(now)
        if too_many:
            why = f"child {child.name!r} needed more than {self.max_restarts} restarts"
            why = f"{why} within {self.within_seconds:g}s"
            if self._revive_after is not None:
                # Shown on /status and /healthz: an exception's text is cut to a sane length.
                self._go_down(f"{why}: {actor_exit.error!r}"[:MAX_REASON])
            else:
                self._give_up(why, actor_exit.error)
            return None
        extra = {"child": child.name, "restart_delay": delay}  # for log-based alerting and tests
        message = "supervisor %r: child %r %s; restarting in %.3fs"
        logger.warning(message, self.name, child.name, how, delay, extra=extra)
        return delay

    def _go_down(self, why: str) -> None:
        """Stop every child, mark them down, wait the revival delay, start them all again."""
        assert self._revive_after is not None
        with self._lock:
            if self._stopping.is_set() or self._down is not None:
                return
            self._down, self._downs = why, self._downs + 1
            delay = self._revive_after(self._downs)
            self._revive_at = self._clock() + delay
            children = list(self._children)
        logger.error("supervisor %r: down for %.1fs: %s", self.name, delay, why)
        # Every handle first: callers, and children blocked asking each other, fail at once.
        for child in children:
            child._suspend(why)
        for child in reversed(children):
            self._stop_child(child)
        if self._stopping.wait(delay):
            return
        self._revive(children)

    def _revive(self, children: list[ChildHandle]) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            self._down = None
            self._restart_times.clear()
            for child in children:
                child._recent.clear()
            me = threading.current_thread()
            self._watchers = [w for w in self._watchers if w.is_alive() and w is not me]
            logger.warning("supervisor %r: starting its children again", self.name)
            for child in children:
                self._launch(child)

    def _stop_child(self, child: ChildHandle) -> None:
        current = child._current()
        try:
            if current is not None:
                current[0].stop(block=True, timeout=self.call_timeout)
        except pykka.Timeout:
            logger.error("supervisor %r: %r did not stop in time", self.name, child.name)

    def _give_up(self, why: str, error: BaseException | None) -> None:
        gave_up = SupervisorGaveUp(f"supervisor {self.name!r}: {why}; stopped all children")
        gave_up.__cause__ = error
        if not self._stop_children():
            return
        self._gave_up = True
        logger.critical("%s", gave_up)
        if self._on_give_up is not None:
            try:
                self._on_give_up(gave_up)
            except Exception:
                logger.exception("supervisor %r: on_give_up failed", self.name)
        self._finished.set()  # last, so wait() returns only after on_give_up has run

    def _stop_children(self) -> bool:
        """Stop every child in reverse order; False if another thread already did."""
        with self._lock:
            if self._stopping.is_set():
                return False
            # Once this is set under the lock, _start_incarnation starts nothing new.
            self._stopping.set()
            children = list(self._children)
        # Outside the lock: a child's on_stop may still call healthy() or restart_counts().
        for child in reversed(children):
            child._close(f"supervisor {self.name!r} stopped")
            self._stop_child(child)
        return True


def _should_restart(restart: Restart, *, crashed: bool) -> bool:
    return restart is Restart.PERMANENT or (restart is Restart.TRANSIENT and crashed)
