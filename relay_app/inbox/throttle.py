"""Login throttling: a backoff per client address and a global budget of password hashes.

An admitted attempt counts as a failure of its address until `succeeded` clears the
address, so parallel guesses from one address cannot all slip in before the first one
fails. After `free_failures` failures an address waits `first_delay_s`, doubling with
each further failure up to `max_delay_s`; an address quiet for `forget_after_s` starts
over. Every admitted attempt also takes a token from a global bucket (`hashes_per_s`,
at most `hash_burst` saved up): guesses spread over many addresses still cost the relay
at most that many scrypt hashes a second. A refused attempt costs no hash and no sleep:
the caller answers 429 with the returned wait at once.

An address the operator logged in from lately (the last `known_addresses`, for
`known_for_s`) skips the global budget, so guessers who spend it all from elsewhere do not
lock the operator out; it still has its own backoff like any address. Known means that
exact address, with a backoff of its own: on a LAN every IPv6 device shares the
operator's /64, and a guesser there must neither skip the budget nor lock the operator out.

The table keeps at most `max_addresses` addresses (the least recently seen go first);
IPv6 addresses count per /64, the block one subscriber usually holds.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottlePolicy:
    """The throttle's figures (see the module docstring for why these)."""

    # A few typos are free: the operator never waits for a mistyped password or two.
    free_failures: int = 5
    first_delay_s: float = 1.0
    # 5 minutes: one address then gets about 12 guesses an hour; an operator locked out
    # by someone sharing their address waits at most this long between tries.
    max_delay_s: float = 300.0
    forget_after_s: float = 3600.0
    # Bounds the memory the remembered addresses take (docs/benchmarks.md).
    max_addresses: int = 10_000
    # Bounds the CPU all logins together spend hashing to a small share of one core
    # (docs/benchmarks.md), whoever asks; the one operator never logs in that often.
    hashes_per_s: float = 5.0
    hash_burst: float = 10.0
    known_addresses: int = 16
    known_for_s: float = 30 * 86400


@dataclass
class _Entry:
    failures: int
    last: float  # when the last failure (or admitted attempt) happened


class LoginThrottle:
    """Decides, without hashing, whether a login attempt may hash now or must wait."""

    def __init__(
        self, policy: ThrottlePolicy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Start with an empty table and a full hash budget."""
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._addresses: OrderedDict[str, _Entry] = OrderedDict()
        self._known: OrderedDict[str, float] = OrderedDict()  # address -> last login
        self._tokens = self.policy.hash_burst
        self._refilled = clock()

    def admit(self, address: str) -> float:
        """0.0 when the attempt may hash now (counted as a failure until it succeeds),
        else the seconds to wait before asking again."""
        with self._lock:
            now = self._clock()
            key = self._key(address, now)
            entry = self._entry(key, now)
            delay = self.delay(entry.failures) if entry else 0.0
            # At most `delay`: a clock stepped back must not lengthen a lock-out.
            wait = min(delay, entry.last + delay - now) if entry else 0.0
            if wait > 0:
                return wait
            if not self._is_known(key, now):
                self._refill(now)
                if self._tokens < 1.0:
                    return (1.0 - self._tokens) / self.policy.hashes_per_s
                self._tokens -= 1.0
            entry = entry or _Entry(0, now)
            entry.failures += 1
            entry.last = now
            self._remember(key, entry)
            return 0.0

    def failures(self, address: str) -> int:
        """How many failures the address has on record now."""
        with self._lock:
            now = self._clock()
            entry = self._entry(self._key(address, now), now)
            return entry.failures if entry else 0

    def succeeded(self, address: str) -> None:
        """A right password: the address starts over, and skips the budget from now on."""
        with self._lock:
            now = self._clock()
            self._addresses.pop(self._key(address, now), None)
            exact = bucket_of(address, exact=True)
            self._known[exact] = now
            self._known.move_to_end(exact)
            while len(self._known) > self.policy.known_addresses:
                self._known.popitem(last=False)

    def refund(self, address: str) -> None:
        """An admitted attempt that never hashed (the hasher was busy): give both back."""
        with self._lock:
            now = self._clock()
            key = self._key(address, now)
            entry = self._addresses.get(key)
            if entry is not None and entry.failures > 0:
                entry.failures -= 1
            if not self._is_known(key, now):
                self._tokens = min(self.policy.hash_burst, self._tokens + 1.0)

    def delay(self, failures: int) -> float:
        """The wait after `failures` failures in a row."""
        policy = self.policy
        if failures < policy.free_failures:
            return 0.0
        doublings = min(failures - policy.free_failures, 64)  # 2**64 s is past any cap
        return float(min(policy.max_delay_s, policy.first_delay_s * 2**doublings))

    def __len__(self) -> int:
        """Addresses on record."""
        return len(self._addresses)

    def _key(self, address: str, now: float) -> str:
        """The address itself once the operator logged in from it, else its bucket."""
        exact = bucket_of(address, exact=True)
        return exact if self._is_known(exact, now) else bucket_of(address)

    def _is_known(self, key: str, now: float) -> bool:
        since = self._known.get(key)
        return since is not None and 0 <= now - since <= self.policy.known_for_s

    def _entry(self, key: str, now: float) -> _Entry | None:
        entry = self._addresses.get(key)
        if entry is not None and now - entry.last > self.policy.forget_after_s:
            del self._addresses[key]
            return None
        return entry

    def _remember(self, key: str, entry: _Entry) -> None:
        self._addresses[key] = entry
        self._addresses.move_to_end(key)
        while len(self._addresses) > self.policy.max_addresses:
            self._addresses.popitem(last=False)

    def _refill(self, now: float) -> None:
        earned = (now - self._refilled) * self.policy.hashes_per_s
        self._tokens = min(self.policy.hash_burst, self._tokens + max(0.0, earned))
        self._refilled = now


def bucket_of(address: str, *, exact: bool = False) -> str:
    """The throttle's key for an address: itself, or its /64 for IPv6 unless `exact`."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address) and not exact:
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)
