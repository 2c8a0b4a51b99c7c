"""OutboxActor: owns outbox.db and delivers its batches until the relay acknowledges them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.board import AgentBoard
from actors.messages import (
    Drain,
    Enqueue,
    GetOutboxStats,
    ListUnsynced,
    MarkSynced,
    OutboxStats,
    RelayUp,
    RetryFailed,
    RetrySetAside,
    SetAside,
    Sweep,
    Tick,
)
from actors.outbox_store import Batch, OutboxStore
from actors.poison import cut, screen
from actors.ports import Mailbox
from runtime.core.backoff import Backoff
from runtime.core.errors import RelayRejected, RelayUnavailable, RelayUntrusted
from runtime.core.logsafe import quote
from runtime.core.mailbox import take_waiting
from runtime.core.relay_client import RelayClient, RelayTarget
from runtime.core.sqlite import DatabaseError, is_damaged, move_aside
from runtime.core.supervisor import SupervisedActor
from runtime.core.sync_state import SyncState

logger = logging.getLogger(__name__)

# Drain at once (instead of at the next interval) when more than this many messages wait.
DRAIN_THRESHOLD = 100
SWEEP_PAGE = 1000
MAX_ENQUEUE_GROUP = 500
SWEEP_MAX_PAGES = 200


class OutboxActor(SupervisedActor):
    """Durable retry queue of one agent: enqueue, drain with backoff, set poison batches aside."""

    def __init__(
        self,
        path: str | Path,
        *,
        agent_id: str,
        node_id: str,
        cache: Mailbox,
        target: RelayTarget | None,
        backoff: Backoff,
        sync_state: SyncState,
        batch_size: int = 500,
        sweep_grace: float = 15.0,
        synchronous: str = "FULL",
        clock: Callable[[], float] = time.time,
        board: AgentBoard | None = None,
    ) -> None:
        super().__init__()
        self.agent_id = agent_id
        self._board = board or AgentBoard()
        self._path = path
        self._store_args: dict[str, Any] = {
            "node_id": node_id,
            "batch_size": batch_size,
            "synchronous": synchronous,
            "clock": clock,
        }
        self._cache = cache
        self._target = target
        self._backoff = backoff
        self._sync = sync_state
        self._sweep_grace = sweep_grace
        self._clock = clock
        self._store: OutboxStore | None = None
        self._client: RelayClient | None = None
        self._failures = 0
        self._head_attempts = 0  # of the batch next in line, as outbox.db counts them
        self._next_attempt = 0.0
        self._drain_scheduled = False
        self._swept_to = 0
        # Recovery at start takes only messages written before this actor was made: later ones
        # are in the write-through's hands, and sweeping them too would send them twice.
        self._made_at = clock()

    def on_start(self) -> None:
        """Open outbox.db, then recover: every unsynced message no batch covers is enqueued."""
        self._store = self._open_store()
        self._board.publish_outbox(self.stats())
        if self._target is not None:
            self._client = RelayClient(self._target)
        self.actor_ref.tell(_Recover(self._made_at))

    def _open_store(self) -> OutboxStore:
        """Open outbox.db; a damaged file is moved aside and a new one made.

        outbox.db only holds copies of what messages.db knows is unsynced, so the sweep
        rebuilds it; keeping the agent down for it would refuse writes for nothing.
        """
        try:
            return OutboxStore(self._path, **self._store_args)
        except DatabaseError as exc:
            if not is_damaged(exc):
                raise
            moved = move_aside(Path(self._path), self._clock())
            logger.error("agent %s: damaged outbox.db moved to %s: %s", self.agent_id, moved, exc)
        return OutboxStore(self._path, **self._store_args)

    def on_stop(self) -> None:
        """Close the database and the HTTP session."""
        if self._store is not None:
            self._store.close()
        if self._client is not None:
            self._client.close()

    def on_failure(self, *_: object) -> None:
        """Release resources so the restarted actor starts clean."""
        self.on_stop()

    @property
    def store(self) -> OutboxStore:
        """The open store."""
        assert self._store is not None, "OutboxActor used before on_start"
        return self._store

    def on_receive(self, message: Any) -> Any:
        """Dispatch one message, then publish the figures it may have changed."""
        handler = _HANDLERS.get(type(message))
        if handler is None:
            return super().on_receive(message)
        if isinstance(message, GetOutboxStats):
            return handler(self, message)
        try:
            return handler(self, message)
        finally:
            self._board.publish_outbox(self.stats())

    def _on_drain(self, _: Drain) -> str:
        self._drain_scheduled = False
        return self._drain_one()

    def _on_tick(self, _: Tick) -> None:
        self._sweep(self._sweep_grace)
        self._schedule_drain()

    def _on_relay_up(self, _: RelayUp) -> None:
        self._failures, self._next_attempt = 0, 0.0
        self._schedule_drain()

    def _on_retry_failed(self, _: RetryFailed) -> int:
        """Give failed batches and set-aside messages one more try; return the batch count."""
        count = self.store.retry_failed()
        # Told before the sweep's ask, so the cache handles it first; the sweep starts over.
        # The usual grace leaves the newest messages to the write-through, as every Tick does.
        self._cache.tell(RetrySetAside())
        self._swept_to = 0
        self.actor_ref.tell(Sweep(grace=self._sweep_grace))
        self._schedule_drain()
        return count

    def _on_enqueue(self, message: Enqueue) -> int:
        """Enqueue this and every Enqueue waiting behind it in one transaction.

        Each asker hears how many of the whole group were new.
        """
        waiting = take_waiting(self, Enqueue, MAX_ENQUEUE_GROUP)
        envelopes, poison = screen(
            [*message.envelopes, *(e for m, _ in waiting for e in m.envelopes)]
        )
        if poison:
            self._cache.tell(SetAside(tuple(poison)))
        try:
            added = self.store.enqueue(envelopes)
        except Exception as exc:
            # The waiting asks left pykka's inbox: they must hear of the failure from us.
            for _, reply_to in waiting:
                if reply_to is not None:
                    reply_to.set_exception((type(exc), exc, exc.__traceback__))
            raise
        for _, reply_to in waiting:
            if reply_to is not None:
                reply_to.set(added)
        if self.stats().pending_messages > DRAIN_THRESHOLD:
            self._schedule_drain()
        return added

    def _schedule_drain(self) -> None:
        """Queue one Drain behind the messages already waiting (never more than one)."""
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.actor_ref.tell(Drain())

    def _drain_one(self) -> str:
        """Send the oldest pending batch if due; keep going while the relay acknowledges."""
        if self._client is None:
            return "no relay configured"
        now = self._clock()
        if now < self._next_attempt:
            return "backing off"
        batch = self.store.next_pending()
        self._head_attempts = 0 if batch is None else batch.retry_count
        if batch is None:
            return "empty"
        try:
            self._client.push_batch(batch.payload, batch.batch_id)
        except RelayUnavailable as exc:
            return self._retry_later(batch.batch_id, exc, now)
        except RelayRejected as exc:
            self._head_attempts = 0  # split, dissolved or set aside: another batch is next
            return self._rejected(batch, exc)
        self._head_attempts = 0
        self._cache.tell(MarkSynced(batch.msg_ids))
        self.store.acked(batch.batch_id)
        self._sync.success(self._clock(), len(batch.msg_ids))
        self._failures, self._next_attempt = 0, 0.0
        self._schedule_drain()
        return "acked"

    def _rejected(self, batch: Batch, exc: RelayRejected) -> str:
        """Find the messages the relay refuses, so they hold none of the others back.

        Halving costs about 2 log2(n) requests per bad message, where sending each alone
        costs n; a single message refused is set aside, and the good halves flow on.
        """
        self._schedule_drain()
        why = quote(exc)
        if len(batch.msg_ids) > 1 and self.store.split(batch.batch_id):
            logger.warning("relay refused batch %s; sending it in halves: %s", batch.batch_id, why)
            return "split"
        if len(batch.msg_ids) > 1:
            # The payload does not read back: the sweep rebuilds batches from messages.db.
            logger.error("relay refused unreadable batch %s; dissolved: %s", batch.batch_id, why)
            self.store.dissolve(batch.batch_id)
            self._swept_to = 0
            return "dissolved"
        logger.error("relay refused batch %s; set aside as failed: %s", batch.batch_id, why)
        self.store.set_failed(batch.batch_id, str(exc))
        reason = cut(f"refused by the relay: {exc}")
        self._cache.tell(SetAside(tuple((m, reason) for m in batch.msg_ids)))
        self._sync.failure(reason)
        return "failed"

    def _retry_later(self, batch_id: str, exc: RelayUnavailable, now: float) -> str:
        self._failures += 1
        self._head_attempts += 1
        self._sync.failure(cut(str(exc)))
        delay = self._backoff.delay(self._failures)
        self._next_attempt = now + delay
        self.store.attempt_failed(batch_id, str(exc))
        if exc.status == 401:
            # Nothing of this node reaches the relay until an operator fixes its token, so
            # each attempt is an error to see, not one more transient failure.
            logger.error(
                "relay refused this node's token (HTTP 401): check the node's token file and"
                " its hash on the relay; nothing is dropped, next attempt in %.2fs (%s)",
                delay,
                quote(exc),
            )
        elif isinstance(exc, RelayUntrusted):
            # Not transient either: no byte (and no token) is sent until the CA is fixed.
            logger.error("%s; nothing sent, next attempt in %.2fs", quote(exc), delay)
        else:
            logger.warning(
                "relay unavailable (%s); batch %s failed %d times, next attempt in %.2fs",
                quote(exc),
                batch_id,
                self._head_attempts,
                delay,
            )
        return "retry"

    def _sweep(self, grace: float) -> int:
        """Enqueue unsynced messages older than `grace` that no batch covers (recovery)."""
        return self._sweep_before(self._clock() - grace)

    def _sweep_before(self, cutoff: float) -> int:
        """Enqueue unsynced messages written at or before `cutoff` that no batch covers."""
        added = 0
        for _ in range(SWEEP_MAX_PAGES):
            rows = self._cache.ask(ListUnsynced(limit=SWEEP_PAGE, after_id=self._swept_to))
            ripe = [r for r in rows if r.envelope.timestamp <= cutoff]
            if ripe:
                added += self.store.enqueue([r.envelope for r in ripe])
                self._swept_to = ripe[-1].row_id
            if len(ripe) < len(rows) or len(rows) < SWEEP_PAGE:
                break
        if added:
            logger.info("recovered %d unsynced messages into the outbox", added)
            self._schedule_drain()
        return added

    def stats(self) -> OutboxStats:
        """Return what waits and how delivery goes."""
        counts = self.store.counts()
        pending = counts.get("pending", (0, 0))
        failed = counts.get("failed", (0, 0))
        return OutboxStats(
            agent_id=self.agent_id,
            pending_batches=pending[0],
            pending_messages=pending[1],
            failed_batches=failed[0],
            failed_messages=failed[1],
            next_attempt_at=self._next_attempt,
            consecutive_failures=self._failures,
            head_batch_attempts=self._head_attempts,
        )


@dataclass(frozen=True, slots=True)
class _Recover:
    """To self at start: enqueue the unsynced messages written up to `cutoff`."""

    cutoff: float


_HANDLERS: dict[type, Callable[[OutboxActor, Any], Any]] = {
    Enqueue: OutboxActor._on_enqueue,
    Drain: OutboxActor._on_drain,
    Tick: OutboxActor._on_tick,
    RelayUp: OutboxActor._on_relay_up,
    Sweep: lambda actor, m: actor._sweep(m.grace),
    _Recover: lambda actor, m: actor._sweep_before(m.cutoff),
    RetryFailed: OutboxActor._on_retry_failed,
    GetOutboxStats: lambda actor, _: actor.stats(),
}
