"""ReconcilerActor: finds what the relay lacks of this node's messages and sends it again.

A relay restored from a backup, or rolled back to a snapshot, lacks what was written
since; this node may still hold much of it. Per agent, the relay's digests by hour
(runtime.core.digest) are compared with those of what the cache holds; for each hour
that differs, the ids of both sides tell which messages the relay lacks, and those go
to the agent's outbox like any other: exactly once still comes from the relay's unique
msg_id. Hours the cache no longer holds whole (evicted) are not compared; their
acknowledged counts against the relay's say how many this node cannot send again.

It runs on start, when the relay comes back after being unreachable, when the relay's
generation (a restore) or instance (a restart, perhaps onto a rolled-back disk) changes,
and every `interval` seconds. Equal sides exchange only digests; a pair of differing
digests found to hide nothing to send (the relay holds more) is remembered, so an
idle comparison stays at digests too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from actors.board import AgentBoard
from actors.messages import (
    Enqueue,
    GetAcked,
    GetEnvelopes,
    GetHeld,
    ListHeld,
    Reconcile,
    RefillStats,
    Tick,
)
from actors.ports import Mailbox
from runtime.core import digest
from runtime.core.digest import Digests, bucket_of, bucket_start
from runtime.core.errors import RelayError, RelayUnavailable
from runtime.core.logsafe import quote
from runtime.core.relay_client import RelayClient, RelayTarget
from runtime.core.supervisor import SupervisedActor

logger = logging.getLogger(__name__)

RESEND_CHUNK = 500  # messages per Enqueue
MAX_PAGES = 1000  # of one listing: a relay that pages forever is cut off
# Ids of one agent's hour held at once: far past any real hour, short of a relay's
# answers filling the node's memory.
MAX_HOUR_IDS = 1_000_000
BUILD_ASKS = 10_000  # of a cache building its digests a page at a time


@dataclass(frozen=True)
class RefillRoute:
    """One agent's cache (what it holds), outbox (where resends go) and board (figures)."""

    cache: Mailbox
    outbox: Mailbox
    board: AgentBoard


@dataclass(frozen=True)
class Identity:
    """Which relay process, on which copy of the corpus."""

    generation: str
    instance: str


@dataclass
class _Pass:
    """One agent's comparison: what it found and what it cost."""

    compared: int = 0
    resent: int = 0
    unrefillable: int | None = None  # None: not checked (a periodic comparison)
    digest_bytes: int = 0


class ReconcilerActor(SupervisedActor):
    """Compares each agent's held messages with the relay's, on the occasions above."""

    def __init__(
        self,
        *,
        routes: Mapping[str, RefillRoute],
        target: RelayTarget | None,
        window_s: float,
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._routes = dict(routes)
        self._target = target
        self._window = window_s
        self._interval = interval_s
        self._clock = clock
        self._client: RelayClient | None = None
        self._identity: Identity | None = None
        self._reachable = True
        self._due = 0.0
        # (agent, hour) -> (held digest, relay digest) found to hide nothing to send.
        self._verified: dict[tuple[str, int], tuple[tuple[int, int], tuple[int, int]]] = {}
        self._stats = {a: RefillStats() for a in self._routes}

    def on_start(self) -> None:
        """Open the HTTP session in the actor's thread."""
        if self._target is not None:
            self._client = RelayClient(self._target)
        for agent_id in self._routes:
            self._publish(agent_id)

    def on_stop(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            self._client.close()

    def on_receive(self, message: Any) -> Any:
        """Tick looks at the relay and compares when due; Reconcile compares now."""
        if isinstance(message, Tick):
            return self._check(force=None)
        if isinstance(message, Reconcile):
            return self._check(force=message.why)
        return super().on_receive(message)

    def _check(self, force: str | None) -> str | None:
        """Compare every agent if the relay answers and one of the occasions holds."""
        if self._client is None:
            return None
        try:
            identity = self._identify(self._client)
        except RelayError as exc:
            if self._reachable:
                logger.info("refill waits for the relay: %s", quote(exc))
            self._reachable = False
            return None
        why = force or self._occasion(identity)
        self._identity, self._reachable = identity, True
        if why is not None:
            self._compare_all(self._client, why)
        return why

    def _occasion(self, identity: Identity) -> str | None:
        """Why a comparison is due now, or None."""
        if self._identity is None:
            return "start"
        if identity.generation != self._identity.generation:
            return "relay restored"
        if identity.instance != self._identity.instance:
            return "relay restarted"
        if not self._reachable:
            return "relay back"
        if self._clock() >= self._due:
            return "periodic"
        return None

    def _identify(self, client: RelayClient) -> Identity:
        body, _ = client.get_json("/healthz")
        try:
            return Identity(str(body["generation"]), str(body["instance"]))
        except (KeyError, TypeError) as exc:
            raise RelayError(f"/healthz names no generation (an older relay?): {exc}") from exc

    def _compare_all(self, client: RelayClient, why: str) -> None:
        for agent_id, route in self._routes.items():
            stats = self._stats[agent_id]
            self._stats[agent_id] = stats.begun(why)
            self._publish(agent_id)
            cpu = time.process_time()
            try:
                found = self._compare(client, agent_id, route, full=why != "periodic")
            except Exception as exc:
                # An agent down, a relay gone or refusing mid-way: the next occasion (the
                # relay back, or the next period) tries again.
                logger.warning("refill of agent %s stopped: %s", agent_id, quote(exc))
                self._stats[agent_id] = stats.failed(str(exc))
                if isinstance(exc, RelayUnavailable):
                    self._reachable = False
            else:
                self._stats[agent_id] = stats.ended(
                    self._clock(), found.compared, found.resent, found.unrefillable,
                    found.digest_bytes, time.process_time() - cpu,
                )  # fmt: skip
                if found.resent or found.unrefillable:
                    logger.warning(
                        "refill (%s) of agent %s: %d messages the relay lacked sent again,"
                        " %d it lacks no longer held here",
                        why, agent_id, found.resent, found.unrefillable or 0,
                    )  # fmt: skip
            self._publish(agent_id)
        # From the end: a comparison longer than the interval is not followed at once by
        # another, which would send again what the outbox is still sending.
        self._due = self._clock() + self._interval

    def _compare(
        self, client: RelayClient, agent_id: str, route: RefillRoute, *, full: bool
    ) -> _Pass:
        """One agent: compare hour by hour from the cache's horizon, resend what lacks."""
        found = _Pass()
        window_start = self._clock() - self._window
        held = route.cache.ask(GetHeld(window_start))
        for _ in range(BUILD_ASKS):
            if held.ready:
                break
            held = route.cache.ask(GetHeld(window_start))
        self._forget_verified(agent_id, bucket_of(window_start))
        relay = self._digests(client, agent_id, held.since, None, found)
        resent: dict[int, int] = {}
        lacking_in: dict[int, int] = {}  # held here, lacked by the relay: sent now or before
        for hour in sorted(set(held.digests) | set(relay)):
            mine, theirs = held.digests.get(hour), relay.get(hour)
            found.compared += 1
            mine_key = mine.key() if mine else (0, 0)
            theirs_key = theirs.key() if theirs else (0, 0)
            if mine_key in (theirs_key, (0, 0)):
                continue
            if self._verified.get((agent_id, hour)) == (mine_key, theirs_key):
                continue
            sent, lacking = self._resend_hour(
                client, agent_id, route, hour, held.since, found, theirs
            )
            resent[hour], lacking_in[hour] = sent, lacking
            if lacking == 0:
                self._verified[(agent_id, hour)] = (mine_key, theirs_key)
        found.resent = sum(resent.values())
        if full:
            found.unrefillable = 0
        if full and held.since > window_start:
            found.unrefillable = self._unrefillable(
                client, agent_id, route, window_start, held.since, relay, lacking_in, found
            )
        return found

    def _forget_verified(self, agent_id: str, first: int) -> None:
        """Drop the remembered pairs of hours that left the window."""
        for key in [k for k in self._verified if k[0] == agent_id and k[1] < first]:
            del self._verified[key]

    def _resend_hour(
        self,
        client: RelayClient,
        agent_id: str,
        route: RefillRoute,
        hour: int,
        horizon: float,
        found: _Pass,
        theirs: digest.Digest | None,
    ) -> tuple[int, int]:
        """Send again the held messages of one hour that the relay lacks: (how many went to
        the outbox now, how many it lacks; those already waiting there are not sent twice)."""
        since, until = max(horizon, bucket_start(hour)), bucket_start(hour + 1)
        mine = route.cache.ask(ListHeld(since, until))
        relay_ids = set() if theirs is None else self._ids(client, agent_id, since, until, found)
        lacking = [m for m in mine if m not in relay_ids]
        sent = 0
        for start in range(0, len(lacking), RESEND_CHUNK):
            envelopes = route.cache.ask(GetEnvelopes(tuple(lacking[start : start + RESEND_CHUNK])))
            sent += int(route.outbox.ask(Enqueue(tuple(envelopes))))
        return sent, len(lacking)

    def _unrefillable(
        self,
        client: RelayClient,
        agent_id: str,
        route: RefillRoute,
        window_start: float,
        horizon: float,
        upper: Digests,
        held_lacking: Mapping[int, int],
        found: _Pass,
    ) -> int:
        """Messages the relay ever acknowledged, lacks now, and this cache no longer holds
        (those it holds are on their way, sent by this comparison or an earlier one)."""
        lower = self._digests(client, agent_id, window_start, horizon, found)
        acked: dict[int, int] = route.cache.ask(GetAcked(window_start))
        lacking = 0
        for hour, count in acked.items():
            if hour > bucket_of(horizon):
                continue  # held whole: every lacking message was sent again
            relay = sum(d.count for d in (lower.get(hour), upper.get(hour)) if d is not None)
            lacking += max(0, count - relay - held_lacking.get(hour, 0))
        return lacking

    def _digests(
        self, client: RelayClient, agent_id: str, since: float, until: float | None, found: _Pass
    ) -> Digests:
        """The relay's digests of the agent's messages in [since, until), every page."""
        merged: Digests = {}
        at: float | None = since
        for _ in range(MAX_PAGES):
            if at is None:
                break
            params: dict[str, Any] = {"agent": agent_id, "since": repr(at)}
            if until is not None:
                params["until"] = repr(until)
            body, size = client.get_json("/sync/digests", params)
            found.digest_bytes += size
            try:
                merged.update(digest.decode(body["digests"]))
                at = _onward(body["next_since"], at)
            except (KeyError, TypeError, ValueError) as exc:
                raise RelayError(f"/sync/digests answered no digests: {exc}") from exc
        return merged

    def _ids(
        self, client: RelayClient, agent_id: str, since: float, until: float, found: _Pass
    ) -> set[str]:
        """The relay's ids of the agent's messages in [since, until), every page."""
        ids: set[str] = set()
        after: str | None = ""
        for _ in range(MAX_PAGES):
            params = {"agent": agent_id, "since": repr(since), "until": repr(until)}
            body, size = client.get_json("/sync/ids", {**params, "after": after})
            found.digest_bytes += size
            try:
                ids.update(str(i) for i in body["ids"])
                after = _onward(body["next"], after)
            except (KeyError, TypeError, ValueError) as exc:
                raise RelayError(f"/sync/ids answered no ids: {exc}") from exc
            if after is None:
                break
            if len(ids) > MAX_HOUR_IDS:
                raise RelayError(f"/sync/ids listed over {MAX_HOUR_IDS} ids for one hour")
        return ids

    def _publish(self, agent_id: str) -> None:
        self._routes[agent_id].board.publish_refill(self._stats[agent_id])


def _onward(cursor: Any, previous: Any) -> Any:
    """A page's cursor if it moves past the previous one (None: the last page); a relay
    that answers the same page again, or nonsense, must not hold the comparison."""
    if cursor is None:
        return None
    if type(cursor) is not type(previous) or not cursor > previous:
        raise ValueError(f"the next page's cursor {cursor!r} does not move past {previous!r}")
    return cursor
