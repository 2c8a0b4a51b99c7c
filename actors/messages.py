"""The messages node actors accept: frozen dataclasses, one per request kind."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.envelope import MessageEnvelope

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
class GetStats:
    """Return a CacheStats snapshot."""


@dataclass(frozen=True, slots=True)
class Maintain:
    """Apply retention_days and the size limit (sent periodically)."""


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


@dataclass(frozen=True, slots=True)
class UnsyncedRow:
    """An unsynced message and its local row id (the outbox's cursor)."""

    row_id: int
    envelope: MessageEnvelope
