"""A supervisor with revive_after: past its restart intensity it is down for a while, not gone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runtime.core.errors import ActorUnavailable
from runtime.core.supervisor import ChildSpec, Supervisor
from tests.runtime.test_supervisor import Factory, Journal, Ping, wait_until


@pytest.fixture
def make_supervisor() -> Iterator[Callable[..., Supervisor]]:
    made: list[Supervisor] = []

    def make(**kwargs: Any) -> Supervisor:
        kwargs.setdefault("backoff_base", 0.001)
        kwargs.setdefault("call_timeout", 3.0)
        supervisor = Supervisor("agent", **kwargs)
        made.append(supervisor)
        return supervisor

    yield make
    for supervisor in made:
        supervisor.stop()


def test_a_child_crashing_past_the_intensity_takes_its_group_down_and_back_up_after_the_delay(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    journal = Journal()
    delays: list[int] = []

    def revive_after(n: int) -> float:
        delays.append(n)
        return 0.5

    # Incarnations 1-4 of "broken" fail in on_start; the 5th, after the revival, works.
    supervisor = make_supervisor(max_restarts=2, within_seconds=10, revive_after=revive_after)
    steady = supervisor.add(Factory("steady", journal).spec())
    broken = supervisor.add(Factory("broken", journal, fail_on_start=lambda n: n <= 4).spec())
    supervisor.start()
    wait_until(lambda: supervisor.down is not None)
    assert "broken" in (supervisor.down or "")
    assert not supervisor.healthy()
    assert supervisor.running()
    started = time.monotonic()
    with pytest.raises(ActorUnavailable, match="down"):
        steady.ask(Ping(), timeout=3.0)
    assert time.monotonic() - started < 0.5  # at once, not after the ask's timeout
    wait_until(supervisor.healthy, timeout=5)
    assert broken.ask(Ping()) == ("broken", 5)
    assert steady.ask(Ping())[0] == "steady"
    assert delays == [1]
    assert supervisor.times_down == 1
    assert not supervisor.gave_up
    assert "stop steady#1" in journal.events("stop")


def test_stop_during_the_revival_delay_returns_at_once_and_starts_nothing(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    journal = Journal()
    supervisor = make_supervisor(max_restarts=1, revive_after=lambda n: 60.0)
    broken = Factory("broken", journal, fail_on_start=lambda n: True)
    supervisor.add(ChildSpec("broken", broken))
    supervisor.start()
    wait_until(lambda: supervisor.down is not None)
    calls = broken.calls
    started = time.monotonic()
    supervisor.stop()
    assert time.monotonic() - started < 2.0
    assert supervisor.wait(0)
    assert broken.calls == calls
