"""What a supervised child is: its spec, its restart type, and how it reports its exit.

See runtime.core.supervisor for the supervision itself and why a child should subclass
`SupervisedActor`.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pykka


class Restart(enum.Enum):
    """When a child is restarted, as in OTP."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after a crash
    TEMPORARY = "temporary"  # never


@dataclass(frozen=True)
class ChildSpec:
    """How to start one child: `start` starts a fresh actor each call."""

    name: str
    start: Callable[[], pykka.ActorRef[Any]]
    restart: Restart = Restart.PERMANENT
    # Tells that wait, in order, for the next incarnation while the child restarts; past
    # this many the newest are dropped and counted (a sender never waits).
    pending_tells: int = 1000


class ActorExit:
    """How one actor incarnation ended: `done` is set once it is gone, `error` if it crashed."""

    def __init__(self, done: threading.Event | None = None, *, reported: bool = True) -> None:
        self.done = done or threading.Event()
        self.error: BaseException | None = None
        # False when the actor cannot tell us whether it crashed (not a SupervisedActor).
        self.reported = reported

    @property
    def crashed(self) -> bool:
        """True after an abnormal exit, or whenever the actor could not report it."""
        return self.error is not None or not self.reported

    def record(self, error: BaseException | None) -> None:
        """Keep the first error: later ones (say, in on_failure) are consequences."""
        if self.error is None:
            self.error = error


# While a supervisor calls ChildSpec.start, the SupervisedActors created in that thread
# hand it their ActorExit here. A global registry would outlive them: an ActorExit's
# error holds a traceback, whose frames hold the actor.
_starting = threading.local()


def start_actor(spec: ChildSpec) -> tuple[pykka.ActorRef[Any], ActorExit]:
    outer = getattr(_starting, "exits", None)  # restored below: start() may nest supervisors
    created: list[tuple[pykka.ActorRef[Any], ActorExit]] = []
    _starting.exits = created
    try:
        ref = spec.start()
    finally:
        _starting.exits = outer
    for candidate, actor_exit in created:
        if candidate is ref:
            return ref, actor_exit
    return ref, ActorExit(ref.actor_stopped, reported=False)


class SupervisedActor(pykka.ThreadingActor):
    """A ThreadingActor that tells its supervisor whether it crashed and when it is gone."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._actor_exit = ActorExit()
        # __init__ runs in the thread that calls start(), so the supervisor gets this first.
        created = getattr(_starting, "exits", None)
        if created is not None:
            created.append((self.actor_ref, self._actor_exit))

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._actor_exit.record(exception_value or RuntimeError("unknown failure"))
        super()._handle_failure(exception_type, exception_value, traceback)

    def _actor_loop(self) -> None:
        try:
            super()._actor_loop()
        except BaseException as exc:  # pykka lets a BaseException in on_start escape
            self._actor_exit.record(exc)
            raise
        finally:
            self._actor_exit.done.set()
