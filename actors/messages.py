"""The messages node actors accept: frozen dataclasses, one per request kind."""

from __future__ import annotations

from dataclasses import dataclass, replace

from runtime.core.envelope import MessageEnvelope

# --- CacheActor -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Write:
    """Commit one message to the local cache; answers its msg_id after the commit.

    `reply=False` marks a fire-and-forget write (sent with `tell`): a failure is
    logged and counted instead of crashing the actor, since nobody waits for it.
    """

    envelope: MessageEnvelope
    reply: bool = True


@dataclass(frozen=True, slots=True)
class Get:
    """Return the message with this msg_id, or None."""

    msg_id: str


@dataclass(frozen=True, slots=True)
class Query:
    """Return messages matching every given filter, oldest first."""

    task_id: str | None = None
    sender: str | None = None
    recipient: str | None = None
    since: float | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class CacheRemote:
    """Store messages fetched from the relay, already synced, if the limit allows."""

    envelopes: tuple[MessageEnvelope, ...]


@dataclass(frozen=True, slots=True)
class ListUnsynced:
    """Return up to `limit` unsynced messages with a local row id above `after_id`."""

    limit: int = 500
    after_id: int = 0


@dataclass(frozen=True, slots=True)
class MarkSynced:
    """Mark these messages as acknowledged by the relay."""

    msg_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SetAside:
    """Set these unsynced messages aside, each with its reason: no stage can process them."""

    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RetrySetAside:
    """Make set-aside messages unsynced again, so they are tried once more (an operator's call)."""


@dataclass(frozen=True, slots=True)
class GetStats:
    """Return a CacheStats snapshot."""


@dataclass(frozen=True, slots=True)
class Maintain:
    """Apply retention_days and the size limit (sent periodically)."""


@dataclass(frozen=True, slots=True)
class GetHeld:
    """Return a HeldReport: digests of the agent's own acknowledged messages from `since`."""

    since: float


@dataclass(frozen=True, slots=True)
class ListHeld:
    """Return the msg_ids of the agent's own acknowledged messages reported in [since, until)."""

    since: float
    until: float


@dataclass(frozen=True, slots=True)
class GetAcked:
    """Return {hour: messages the relay ever acknowledged} from the hour of `since` on."""

    since: float


@dataclass(frozen=True, slots=True)
class GetEnvelopes:
    """Return the messages held under these msg_ids."""

    msg_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What the cache holds right now."""

    agent_id: str
    bytes_used: int
    max_bytes: int
    message_count: int
    unsynced_count: int
    oldest_unsynced_ts: float | None
    full: bool
    refused_writes: int
    set_aside_count: int = 0
    # The newest few set-aside messages as (msg_id, reason), for the status page.
    set_aside_recent: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class UnsyncedRow:
    """An unsynced message and its local row id (the outbox's cursor)."""

    row_id: int
    envelope: MessageEnvelope


# --- ReconcilerActor ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Compare every agent's held messages with the relay's now; `why` is logged."""

    why: str = "asked"


@dataclass(frozen=True, slots=True)
class RefillStats:
    """How refill goes for one agent: the figures /status, /metrics and the relay show."""

    state: str = "waiting"  # waiting (no comparison yet), comparing, idle, failed
    passes: int = 0
    last_reason: str = ""
    last_at: float | None = None  # when the last comparison ended
    refilled: int = 0  # messages sent again, in all
    last_refilled: int = 0
    unrefillable: int = 0  # the relay lacks them and this node no longer holds them (last pass)
    buckets_compared: int = 0
    digest_bytes: int = 0
    last_cpu_s: float = 0.0  # the node process's CPU time over the last comparison
    last_error: str = ""

    def begun(self, why: str) -> RefillStats:
        """A comparison started."""
        return replace(self, state="comparing", last_reason=why)

    def failed(self, error: str) -> RefillStats:
        """It stopped half-way."""
        return replace(self, state="failed", last_error=error[:300])

    def ended(
        self,
        at: float,
        compared: int,
        resent: int,
        unrefillable: int | None,
        size: int,
        cpu_s: float,
    ) -> RefillStats:
        """It ended: what it compared, sent again and could not (None: not checked)."""
        return replace(
            self,
            state="idle",
            last_cpu_s=cpu_s,
            passes=self.passes + 1,
            last_at=at,
            refilled=self.refilled + resent,
            last_refilled=resent,
            unrefillable=self.unrefillable if unrefillable is None else unrefillable,
            buckets_compared=self.buckets_compared + compared,
            digest_bytes=self.digest_bytes + size,
            last_error="",
        )


# --- OutboxActor ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Put these unsynced messages into durable batches for retried delivery."""

    envelopes: tuple[MessageEnvelope, ...]


@dataclass(frozen=True, slots=True)
class Tick:
    """Periodic wake-up: sweep for uncovered unsynced messages and drain if due."""


@dataclass(frozen=True, slots=True)
class Drain:
    """Send the oldest pending batch if the backoff allows."""


@dataclass(frozen=True, slots=True)
class RelayUp:
    """The relay just acknowledged something: forget the backoff and drain now."""


@dataclass(frozen=True, slots=True)
class Sweep:
    """Enqueue unsynced messages older than `grace` seconds that no batch covers."""

    grace: float


@dataclass(frozen=True, slots=True)
class RetryFailed:
    """Move batches set aside as failed back to pending (an operator's request)."""


@dataclass(frozen=True, slots=True)
class GetOutboxStats:
    """Return an OutboxStats snapshot."""


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What waits in the outbox and how delivery is going."""

    agent_id: str
    pending_batches: int
    pending_messages: int
    failed_batches: int
    failed_messages: int
    next_attempt_at: float
    consecutive_failures: int
    # Failed attempts of the batch next in line, from outbox.db: unlike
    # consecutive_failures, it survives restarts and a relay that came back.
    head_batch_attempts: int


# --- UploaderActor --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Push:
    """Send freshly committed messages to the relay now (write-through)."""

    envelopes: tuple[MessageEnvelope, ...]
