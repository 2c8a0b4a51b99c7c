"""The login throttle's figures, on a clock the test moves."""

from __future__ import annotations

import pytest

from relay_app.inbox.throttle import LoginThrottle, ThrottlePolicy, bucket_of


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: LoginThrottle, address: str, times: int) -> None:
    """`times` admitted attempts that fail (an admitted attempt counts as failed)."""
    for _ in range(times):
        assert throttle.admit(address) == 0.0


def test_a_few_failures_are_free_then_the_wait_doubles_up_to_the_cap() -> None:
    clock = Clock()
    throttle = LoginThrottle(ThrottlePolicy(hashes_per_s=1000, hash_burst=1000), clock)
    fail(throttle, "192.0.2.1", 5)
    waits = []
    for _ in range(12):
        wait = throttle.admit("192.0.2.1")
        waits.append(wait)
        clock.now += wait
        assert throttle.admit("192.0.2.1") == 0.0
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


def test_addresses_wait_apart_and_a_success_clears_only_its_own() -> None:
    clock = Clock()
    throttle = LoginThrottle(ThrottlePolicy(hashes_per_s=1000, hash_burst=1000), clock)
    fail(throttle, "192.0.2.1", 5)
    fail(throttle, "192.0.2.2", 5)
    assert throttle.admit("192.0.2.1") == pytest.approx(1.0)
    assert throttle.admit("192.0.2.3") == 0.0  # a stranger is not held up
    throttle.succeeded("192.0.2.1")
    assert throttle.admit("192.0.2.1") == 0.0
    assert throttle.admit("192.0.2.2") == pytest.approx(1.0)


def test_a_quiet_address_is_forgotten() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    fail(throttle, "192.0.2.1", 5)
    clock.now += ThrottlePolicy().forget_after_s + 1
    assert throttle.failures("192.0.2.1") == 0
    fail(throttle, "192.0.2.1", 5)


def test_the_global_budget_holds_many_addresses_to_its_rate() -> None:
    clock = Clock()
    throttle = LoginThrottle(ThrottlePolicy(hashes_per_s=5, hash_burst=10), clock)
    for i in range(10):
        assert throttle.admit(f"198.51.100.{i}") == 0.0
    assert throttle.admit("198.51.100.200") == pytest.approx(0.2)
    clock.now += 0.2
    assert throttle.admit("198.51.100.200") == 0.0
    clock.now += 1.0  # one second earns five hashes, whoever asks
    assert [throttle.admit(f"203.0.113.{i}") == 0.0 for i in range(6)] == [True] * 5 + [False]


def test_a_refused_attempt_costs_no_budget_and_a_refund_gives_it_back() -> None:
    clock = Clock()
    throttle = LoginThrottle(ThrottlePolicy(hashes_per_s=0.001, hash_burst=6), clock)
    fail(throttle, "192.0.2.1", 5)
    for _ in range(100):
        assert throttle.admit("192.0.2.1") > 0  # waiting: no token taken
    assert throttle.admit("192.0.2.2") == 0.0
    throttle.refund("192.0.2.2")
    assert throttle.failures("192.0.2.2") == 0
    assert throttle.admit("192.0.2.3") == 0.0
    assert throttle.admit("192.0.2.4") > 0


def test_the_table_is_bounded_and_forgets_the_least_recent_first() -> None:
    clock = Clock()
    policy = ThrottlePolicy(max_addresses=100, hashes_per_s=1e9, hash_burst=1e9)
    throttle = LoginThrottle(policy, clock)
    fail(throttle, "192.0.2.1", 5)
    for i in range(300):
        throttle.admit(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) == 100
    assert throttle.failures("192.0.2.1") == 0


def test_ipv6_addresses_count_per_64() -> None:
    assert bucket_of("2001:db8:1:2:aaaa::1") == bucket_of("2001:db8:1:2:bbbb::2")
    assert bucket_of("2001:db8:1:3::1") != bucket_of("2001:db8:1:2::1")
    assert bucket_of("192.0.2.7") == "192.0.2.7"
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    fail(throttle, "2001:db8::1", 5)
    assert throttle.admit("2001:db8::ffff:2") > 0


def test_a_clock_stepped_back_does_not_lengthen_a_lock_out() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    fail(throttle, "192.0.2.1", 5)
    clock.now -= 3600
    assert throttle.admit("192.0.2.1") == pytest.approx(1.0)


def test_the_operators_address_skips_a_budget_spent_by_others_but_keeps_its_backoff() -> None:
    clock = Clock()
    throttle = LoginThrottle(ThrottlePolicy(hashes_per_s=0.001, hash_burst=3), clock)

    def spend_budget() -> None:
        while throttle.admit(f"198.51.100.{int(clock.now) % 250}") == 0.0:
            clock.now += 1.0  # a new guesser address each time

    assert throttle.admit("192.0.2.1") == 0.0
    throttle.succeeded("192.0.2.1")
    spend_budget()
    fail(throttle, "192.0.2.1", 5)  # the operator's address still gets in...
    assert throttle.admit("192.0.2.1") == pytest.approx(1.0)  # ...within its own backoff
    clock.now += ThrottlePolicy().known_for_s + 10
    spend_budget()
    assert throttle.admit("192.0.2.1") > 100  # a month later it is a stranger again


def test_a_guesser_in_the_operators_ipv6_64_cannot_lock_it_out_nor_skip_the_budget() -> None:
    # On a home LAN every device holds an address in the same /64: the /64 groups a
    # stranger's addresses, but the address the operator logged in from is its own.
    clock = Clock()
    throttle = LoginThrottle(ThrottlePolicy(hashes_per_s=0.0001, hash_burst=6), clock)
    operator, guesser = "2001:db8:1:2::10", "2001:db8:1:2::bad"
    assert throttle.admit(operator) == 0.0
    throttle.succeeded(operator)
    fail(throttle, guesser, 5)
    assert throttle.admit(guesser) > 0  # the guesser's /64 backs off...
    assert throttle.admit(operator) == 0.0  # ...not the operator's own address
    throttle.succeeded(operator)
    clock.now += 3600 + 1  # the guesser's failures are forgotten, the budget is spent
    assert throttle.admit("2001:db8:1:2::bad:1") > 0
