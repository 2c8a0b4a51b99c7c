"""Digests a SQLite relay keeps in memory, so a node's idle comparison reads no rows.

A SQLite relay is the only writer of its database (relay.lock), so the messages it stores
are all that changes an agent's digests: an agent's hours are read from the table on a
node's first request, then the writer adds each message it stores, after the commit.
Moving messages to the archive or back changes nothing, since digests count both. Only
the last KEEP_S seconds of hours are kept; older ones are read from the table each time.

A message is added by its row id: the build notes the highest id its read saw, and a
message stored while it read is added once, whichever side of that id it fell.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from runtime.core.digest import Digest, Digests, bucket_of, bucket_start

KEEP_S = 35 * 86400.0  # past the nodes' default window of 30 days

# A stored message as the writer tells it: (row id, agent_id, node_id, timestamp, msg_id).
StoredRow = tuple[int, str, str, float, str]
# Reads an agent's digests from `floor` on: (the highest row id it saw, the digests).
Build = Callable[[float], tuple[int, Digests]]


@dataclass
class _Agent:
    """One agent's (from one node) kept hours, or the stores seen while they are read."""

    floor: int  # first hour kept
    hours: Digests = field(default_factory=dict)
    seen_to: int | None = None  # None while building
    pending: list[tuple[int, float, str]] = field(default_factory=list)

    def add(self, row_id: int, timestamp: float, msg_id: str) -> None:
        """Count a stored message in (or keep it for after the build)."""
        if self.seen_to is None:
            self.pending.append((row_id, timestamp, msg_id))
        elif row_id > self.seen_to and bucket_of(timestamp) >= self.floor:
            self.hours.setdefault(bucket_of(timestamp), Digest()).add(msg_id)


class KeptDigests:
    """Every agent's kept hours; the writer adds, HTTP threads read."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._agents: dict[tuple[str, str], _Agent] = {}

    @property
    def active(self) -> bool:
        """Whether any agent is kept (the writer reads back what it stored only then)."""
        return bool(self._agents)

    def stored(self, rows: Iterable[StoredRow]) -> None:
        """Messages the writer committed; those of kept agents count in."""
        with self._lock:
            for row_id, agent_id, node_id, timestamp, msg_id in rows:
                kept = self._agents.get((agent_id, node_id))
                if kept is not None:
                    kept.add(row_id, timestamp, msg_id)

    def forget(self) -> None:
        """Drop every agent's kept hours: they are read from the table again when asked."""
        with self._lock:
            self._agents = {}  # a build in flight finishes for its own request only

    def hours(self, agent_id: str, node_id: str, build: Build) -> tuple[float, Digests] | None:
        """(first kept report time, a copy of the kept hours); None while another thread
        builds them (read the table meanwhile)."""
        key = (agent_id, node_id)
        floor = bucket_of(self._clock() - KEEP_S)
        with self._lock:
            kept = self._agents.get(key)
            if kept is not None and kept.seen_to is None:
                return None
            if kept is None:
                kept = self._agents[key] = _Agent(floor)
                fresh = True
            else:
                fresh = False
                self._prune(kept, floor)
                return bucket_start(kept.floor), _copy(kept.hours)
        return self._build(key, kept, build) if fresh else None

    def _build(self, key: tuple[str, str], kept: _Agent, build: Build) -> tuple[float, Digests]:
        try:
            seen_to, hours = build(bucket_start(kept.floor))
        except BaseException:
            with self._lock:
                if self._agents.get(key) is kept:
                    del self._agents[key]
            raise
        with self._lock:
            kept.hours, kept.seen_to = hours, seen_to
            for row_id, timestamp, msg_id in kept.pending:
                kept.add(row_id, timestamp, msg_id)
            kept.pending = []
            return bucket_start(kept.floor), _copy(kept.hours)

    @staticmethod
    def _prune(kept: _Agent, floor: int) -> None:
        """Drop the hours that fell out of KEEP_S, a day at a time."""
        if floor - kept.floor >= 24:
            kept.hours = {h: d for h, d in kept.hours.items() if h >= floor}
            kept.floor = floor


def _copy(hours: Digests) -> Digests:
    return {h: Digest(d.count, d.xor) for h, d in hours.items()}
