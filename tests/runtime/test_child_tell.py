"""A tell never blocks its sender, even while a real supervisor's child is slow to restart.

What was told during the restart reaches the new incarnation in order, before anything
told after it; past the child's `pending_tells` the newest are dropped and counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from runtime.core.errors import ActorUnavailable
from runtime.core.supervisor import ChildSpec, SupervisedActor, Supervisor

RESTART_SECONDS = 1.0  # how long the second incarnation takes to start
WAIT = 10.0


class Recorder(SupervisedActor):
    """Appends every message it receives to a shared list; "crash" makes it crash."""

    def __init__(self, seen: list[Any]) -> None:
        super().__init__()
        self.seen = seen

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crashes on purpose")
        self.seen.append(message)
        return len(self.seen)


class SlowSecondStart:
    """A ChildSpec.start whose second call takes RESTART_SECONDS (say, a database check)."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen
        self.calls = 0
        self.restarting = threading.Event()

    def __call__(self) -> pykka.ActorRef[Any]:
        self.calls += 1
        if self.calls == 2:
            self.restarting.set()
            time.sleep(RESTART_SECONDS)
        return Recorder.start(self.seen)


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    made = Supervisor("tells", backoff_base=0.0, within_seconds=60.0)
    yield made
    made.stop()


def restarting_child(
    supervisor: Supervisor, seen: list[Any], pending_tells: int = 1000
) -> tuple[Any, SlowSecondStart]:
    start = SlowSecondStart(seen)
    child = supervisor.add(ChildSpec("recorder", start, pending_tells=pending_tells))
    supervisor.start()
    child.tell("crash")
    assert start.restarting.wait(WAIT)
    return child, start


def timed(action: Callable[[], None]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def test_tells_during_a_slow_restart_return_at_once_and_arrive_in_order(
    supervisor: Supervisor,
) -> None:
    seen: list[Any] = []
    child, _ = restarting_child(supervisor, seen)

    spent = [timed(lambda n=n: child.tell(n)) for n in range(50)]

    assert max(spent) < 0.1, max(spent)
    assert not child.is_alive()  # the new incarnation is still starting
    assert child.ask("last", timeout=WAIT) == 51
    assert seen == [*range(50), "last"]
    assert child.dropped_tells == 0


def test_past_the_bound_the_newest_tells_are_dropped_and_counted(
    supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Any] = []
    child, _ = restarting_child(supervisor, seen, pending_tells=3)

    for n in range(5):
        child.tell(n)
    assert child.try_tell("overtaker") is False  # never ahead of what waits

    assert child.ask("last", timeout=WAIT) == 4
    assert seen == [0, 1, 2, "last"]
    assert child.dropped_tells == 2
    assert "restarting with 3 tells waiting: dropped 1 so far" in caplog.text


def test_tells_waiting_when_the_child_is_stopped_are_dropped_and_later_ones_refused() -> None:
    seen: list[Any] = []
    supervisor = Supervisor("tells", backoff_base=30.0, rng=lambda: 1.0)  # a long backoff
    child = supervisor.add(ChildSpec("recorder", lambda: Recorder.start(seen)))
    supervisor.start()
    child.tell("crash")
    deadline = time.monotonic() + WAIT
    while child.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.tell("waits")

    supervisor.stop()

    assert child.dropped_tells == 1
    with pytest.raises(ActorUnavailable, match="is stopped"):
        child.tell("too late")
    assert seen == []
