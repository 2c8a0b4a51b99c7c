"""Supervision of real pykka actors: restarts, backoff, intensity, calls across restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
import pytest

from runtime.core.errors import ActorUnavailable, SupervisorGaveUp
from runtime.core.supervisor import ChildSpec, Restart, SupervisedActor, Supervisor

WAIT = 3.0  # seconds for something that must happen


@dataclass(frozen=True)
class Ping:
    """Answered with (name, incarnation)."""


@dataclass(frozen=True)
class Crash:
    """Raises inside the actor: a crash when told, an error for the caller when asked."""


@dataclass(frozen=True)
class StopSelf:
    """Makes the actor stop itself normally."""


@dataclass(frozen=True)
class AskTheDead:
    """Makes the handler itself raise ActorDeadError, as when it asks a stopped actor."""


@dataclass(frozen=True)
class Note:
    """Written to the journal by whichever incarnation receives it."""

    text: str


class Journal:
    """What happened, in order, across every actor thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[str] = []

    def add(self, event: str) -> None:
        with self._lock:
            self._events.append(event)

    def events(self, prefix: str = "") -> list[str]:
        with self._lock:
            return [event for event in self._events if event.startswith(prefix)]


class Worker(SupervisedActor):
    """A child that records its life and does what the test messages say."""

    def __init__(self, name: str, incarnation: int, journal: Journal, *, fail: bool) -> None:
        super().__init__()
        self.name = f"{name}#{incarnation}"
        self.identity = (name, incarnation)
        self.journal = journal
        self.fail = fail

    def on_start(self) -> None:
        self.journal.add(f"start {self.name}")
        if self.fail:
            raise RuntimeError(f"{self.name} fails in on_start on purpose")

    def on_stop(self) -> None:
        self.journal.add(f"stop {self.name}")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Crash):
            raise RuntimeError(f"{self.name} crashes on purpose")
        if isinstance(message, StopSelf):
            self.stop()
        if isinstance(message, AskTheDead):
            self.journal.add(f"asked the dead {self.name}")
            raise pykka.ActorDeadError("another actor is gone")
        if isinstance(message, Note):
            self.journal.add(f"note {message.text} {self.name}")
        return self.identity


class PlainWorker(pykka.ThreadingActor):
    """A child that is not a SupervisedActor, so it cannot report how it exited."""

    def __init__(self, identity: tuple[str, int]) -> None:
        super().__init__()
        self.identity = identity

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StopSelf):
            self.stop()
        return self.identity


class Factory:
    """A ChildSpec.start that counts incarnations and can make chosen ones fail."""

    def __init__(
        self,
        name: str,
        journal: Journal,
        *,
        fail_on_start: Callable[[int], bool] = lambda n: False,
        raise_on_call: Callable[[int], bool] = lambda n: False,
    ) -> None:
        self.name = name
        self.journal = journal
        self.fail_on_start = fail_on_start
        self.raise_on_call = raise_on_call
        self.calls = 0

    def __call__(self) -> pykka.ActorRef[Any]:
        self.calls += 1
        if self.raise_on_call(self.calls):
            raise OSError(f"{self.name} cannot even be created")
        return Worker.start(
            self.name, self.calls, self.journal, fail=self.fail_on_start(self.calls)
        )

    def spec(self, restart: Restart = Restart.PERMANENT) -> ChildSpec:
        return ChildSpec(self.name, self, restart)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def make_supervisor() -> Iterator[Callable[..., Supervisor]]:
    """Build supervisors with fast test defaults; stop them all afterwards."""
    made: list[Supervisor] = []

    def make(**kwargs: Any) -> Supervisor:
        kwargs.setdefault("backoff_base", 0.001)
        kwargs.setdefault("call_timeout", WAIT)
        supervisor = Supervisor("test", **kwargs)
        made.append(supervisor)
        return supervisor

    yield make
    for supervisor in made:
        supervisor.stop()


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_a_child_that_crashes_on_a_told_message_is_restarted_and_answers_again(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor()
    child = supervisor.add(Factory("worker", journal).spec())
    supervisor.start()
    assert child.ask(Ping()) == ("worker", 1)

    child.tell(Crash())

    assert child.ask(Ping()) == ("worker", 2)
    assert child.restarts == 1
    assert supervisor.restart_counts() == {"worker": 1}
    wait_until(supervisor.healthy)


def test_an_exception_in_the_first_on_start_is_a_crash_and_the_child_is_restarted(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor()
    child = supervisor.add(Factory("worker", journal, fail_on_start=lambda n: n == 1).spec())
    supervisor.start()

    assert child.ask(Ping()) == ("worker", 2)
    assert child.restarts == 1


def test_an_exception_in_a_later_on_start_is_a_crash_too(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor()
    factory = Factory("worker", journal, fail_on_start=lambda n: n in {2, 3})
    child = supervisor.add(factory.spec(Restart.TRANSIENT))
    supervisor.start()
    assert child.ask(Ping()) == ("worker", 1)

    child.tell(Crash())

    assert child.ask(Ping()) == ("worker", 4)
    assert child.restarts == 3


def test_a_start_function_that_raises_is_retried_like_a_crash(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor()
    child = supervisor.add(Factory("worker", journal, raise_on_call=lambda n: n == 1).spec())
    supervisor.start()

    assert child.ask(Ping()) == ("worker", 2)


def test_an_exception_in_an_asked_message_goes_to_the_caller_and_is_no_crash(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor()
    child = supervisor.add(Factory("worker", journal).spec())
    supervisor.start()

    with pytest.raises(RuntimeError, match="crashes on purpose"):
        child.ask(Crash())

    assert child.ask(Ping()) == ("worker", 1)
    assert child.restarts == 0


def test_an_actor_dead_error_raised_by_the_handler_reaches_the_caller_and_is_not_resent(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor()
    child = supervisor.add(Factory("worker", journal).spec())
    supervisor.start()

    with pytest.raises(pykka.ActorDeadError, match="another actor is gone"):
        child.ask(AskTheDead())

    assert journal.events("asked") == ["asked the dead worker#1"]


@pytest.mark.parametrize("restart", [Restart.PERMANENT, Restart.TRANSIENT, Restart.TEMPORARY])
def test_after_a_crash_only_permanent_and_transient_children_come_back(
    make_supervisor: Callable[..., Supervisor], journal: Journal, restart: Restart
) -> None:
    supervisor = make_supervisor()
    child = supervisor.add(Factory("worker", journal).spec(restart))
    supervisor.start()

    child.tell(Crash())

    if restart is Restart.TEMPORARY:
        with pytest.raises(ActorUnavailable, match="'worker' is stopped"):
            child.ask(Ping())
        assert not supervisor.healthy()
    else:
        assert child.ask(Ping()) == ("worker", 2)


@pytest.mark.parametrize(
    ("restart", "comes_back"),
    [(Restart.PERMANENT, True), (Restart.TRANSIENT, False), (Restart.TEMPORARY, False)],
)
def test_after_a_normal_stop_only_permanent_children_come_back(
    make_supervisor: Callable[..., Supervisor],
    journal: Journal,
    restart: Restart,
    comes_back: bool,
) -> None:
    supervisor = make_supervisor()
    child = supervisor.add(Factory("worker", journal).spec(restart))
    supervisor.start()

    child.ask(StopSelf())

    if comes_back:
        assert child.ask(Ping()) == ("worker", 2)
    else:
        started = time.monotonic()
        with pytest.raises(ActorUnavailable, match="'worker' is stopped"):
            child.ask(Ping())
        assert time.monotonic() - started < 1.0, "a child that will not come back fails fast"
        assert child.restarts == 0
        assert supervisor.healthy(), "a child that ended normally for good is not a failure"


def test_a_plain_pykka_actor_cannot_report_a_normal_stop_so_it_is_restarted_even_if_transient(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    supervisor = make_supervisor()
    incarnations = iter(range(1, 100))
    child = supervisor.add(
        ChildSpec(
            "plain", lambda: PlainWorker.start(("plain", next(incarnations))), Restart.TRANSIENT
        )
    )
    supervisor.start()

    child.ask(StopSelf())

    assert child.ask(Ping()) == ("plain", 2)


def test_an_ask_during_a_restart_waits_for_the_new_actor(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor(backoff_base=0.3, rng=lambda: 1.0)
    child = supervisor.add(Factory("worker", journal).spec())
    supervisor.start()
    child.tell(Crash())
    wait_until(lambda: not child.is_alive())
    assert not supervisor.healthy()

    started = time.monotonic()
    assert child.ask(Ping(), timeout=WAIT) == ("worker", 2)
    assert time.monotonic() - started >= 0.2


def test_a_future_asked_during_a_restart_resolves_from_the_new_actor(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor(backoff_base=0.1, rng=lambda: 1.0)
    child = supervisor.add(Factory("worker", journal).spec())
    supervisor.start()
    child.tell(Crash())
    wait_until(lambda: not child.is_alive())

    future = child.ask_future(Ping())

    assert future.get(timeout=WAIT) == ("worker", 2)


def test_ask_future_sends_at_once_without_waiting_for_get(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor()
    child = supervisor.add(Factory("worker", journal).spec())
    supervisor.start()

    future = child.ask_future(Note("sent"))

    wait_until(lambda: journal.events("note") == ["note sent worker#1"])
    assert future.get() == ("worker", 1)


def test_a_tell_during_a_restart_reaches_the_new_actor(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor(backoff_base=0.1, rng=lambda: 1.0)
    child = supervisor.add(Factory("worker", journal).spec())
    supervisor.start()
    child.tell(Crash())
    wait_until(lambda: not child.is_alive())

    child.tell(Note("hello"))

    wait_until(lambda: journal.events("note") == ["note hello worker#2"])


def test_an_ask_on_a_child_that_never_comes_back_fails_with_actor_unavailable_after_the_timeout(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor(backoff_base=0.05, rng=lambda: 1.0)
    child = supervisor.add(Factory("worker", journal, fail_on_start=lambda n: True).spec())
    supervisor.start()

    started = time.monotonic()
    with pytest.raises(ActorUnavailable, match=r"'worker' is restarting .* within 0.3s"):
        child.ask(Ping(), timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2.0


def restart_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [r.restart_delay for r in caplog.records if hasattr(r, "restart_delay")]


def crash_and_wait(child: Any, incarnation: int) -> None:
    child.tell(Crash())
    assert child.ask(Ping())[1] == incarnation


def test_backoff_doubles_per_recent_restart_with_full_jitter_up_to_the_cap(
    make_supervisor: Callable[..., Supervisor],
    journal: Journal,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    supervisor = make_supervisor(
        backoff_base=0.004, backoff_cap=0.016, max_restarts=10, clock=clock, rng=lambda: 0.5
    )
    child = supervisor.add(Factory("worker", journal).spec())
    supervisor.start()

    for incarnation in range(2, 6):
        crash_and_wait(child, incarnation)
    clock.now += 10.5  # the earlier restarts leave the window, so the delay starts over
    crash_and_wait(child, 6)

    assert restart_delays(caplog) == pytest.approx([0.002, 0.004, 0.008, 0.008, 0.002])


def test_restarts_spread_wider_than_the_window_never_exhaust_the_intensity(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    clock = FakeClock()
    supervisor = make_supervisor(max_restarts=2, within_seconds=10.0, clock=clock)
    child = supervisor.add(Factory("worker", journal).spec())
    supervisor.start()

    for incarnation in range(2, 7):
        clock.now += 6.0
        crash_and_wait(child, incarnation)

    assert not supervisor.gave_up
    assert child.restarts == 5


def test_too_many_restarts_stop_every_child_in_reverse_order_and_call_on_give_up(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    errors: list[SupervisorGaveUp] = []
    supervisor = make_supervisor(max_restarts=2, clock=FakeClock(), on_give_up=errors.append)
    first = supervisor.add(Factory("first", journal).spec())
    second = supervisor.add(Factory("second", journal).spec())
    supervisor.add(Factory("third", journal).spec())
    supervisor.start()
    crash_and_wait(second, 2)
    crash_and_wait(second, 3)

    second.tell(Crash())

    assert supervisor.wait(WAIT)
    assert supervisor.gave_up
    assert not supervisor.healthy()
    assert len(errors) == 1
    assert "'second' needed more than 2 restarts" in str(errors[0])
    assert journal.events("stop") == ["stop third#1", "stop first#1"]
    with pytest.raises(ActorUnavailable, match="'first' is stopped"):
        first.ask(Ping())


def test_stop_stops_the_children_in_reverse_order_and_is_idempotent(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor()
    first = supervisor.add(Factory("first", journal).spec())
    supervisor.add(Factory("second", journal).spec())
    supervisor.start()
    third = supervisor.add(Factory("third", journal).spec())  # started at once
    assert third.ask(Ping()) == ("third", 1)
    assert supervisor.healthy()

    supervisor.stop()
    supervisor.stop()

    assert journal.events("stop") == ["stop third#1", "stop second#1", "stop first#1"]
    assert supervisor.wait(0)
    assert not supervisor.gave_up
    assert not supervisor.healthy()
    assert supervisor.restart_counts() == {"first": 0, "second": 0, "third": 0}
    with pytest.raises(ActorUnavailable, match="'first' is stopped"):
        first.tell(Ping())


def test_stop_during_a_backoff_returns_at_once_and_restarts_nothing(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor(backoff_base=30.0, rng=lambda: 1.0)
    child = supervisor.add(Factory("worker", journal).spec())
    supervisor.start()
    child.tell(Crash())
    wait_until(lambda: not child.is_alive())

    started = time.monotonic()
    supervisor.stop()

    assert time.monotonic() - started < 1.0
    assert journal.events("start") == ["start worker#1"]


def test_children_start_in_the_order_they_were_added(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor()
    children = [supervisor.add(Factory(name, journal).spec()) for name in ("a", "b", "c")]
    assert not any(child.is_alive() for child in children), "nothing runs before start()"

    supervisor.start()

    assert [child.ask(Ping()) for child in children] == [("a", 1), ("b", 1), ("c", 1)]
    assert journal.events("start") == ["start a#1", "start b#1", "start c#1"]


def test_a_second_child_with_the_same_name_is_refused(
    make_supervisor: Callable[..., Supervisor], journal: Journal
) -> None:
    supervisor = make_supervisor()
    supervisor.add(Factory("worker", journal).spec())

    with pytest.raises(ValueError, match="already has a child 'worker'"):
        supervisor.add(Factory("worker", journal).spec())


def test_a_process_whose_child_keeps_crashing_gives_up_and_exits_non_zero() -> None:
    script = Path(__file__).with_name("supervised_child.py")
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }

    done = subprocess.run(
        [sys.executable, str(script), "give-up"],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    stops = [line for line in done.stdout.splitlines() if line.startswith("stopped")]
    assert stops == ["stopped third", "stopped first"]
    assert "gave up: supervisor 'child-process': child 'second'" in done.stdout
    assert "second cannot start" in done.stderr
