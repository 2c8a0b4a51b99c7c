"""CacheActor: the only owner of one agent's local cache, with group commit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka

from actors.cache_store import CacheStore, WriteResult
from actors.messages import (
    CacheRemote,
    Get,
    GetAcked,
    GetEnvelopes,
    GetHeld,
    GetStats,
    ListHeld,
    ListUnsynced,
    Maintain,
    MarkSynced,
    Query,
    RetrySetAside,
    SetAside,
    Write,
)
from runtime.core.envelope import MessageEnvelope
from runtime.core.mailbox import take_waiting
from runtime.core.supervisor import SupervisedActor

logger = logging.getLogger(__name__)

# Upper bound on one group commit, so a flood of writers still gets timely replies.
MAX_GROUP = 1000

CommitListener = Callable[[Sequence[MessageEnvelope]], None]


@dataclass(frozen=True)
class _Committed:
    """To self: hand these committed messages to the listener, after the writers' replies."""

    envelopes: tuple[MessageEnvelope, ...]


class CacheActor(SupervisedActor):
    """Owns `<node_data_dir>/cache/<agent_id>/messages.db`; answers writes after commit."""

    def __init__(
        self,
        path: str | Path,
        *,
        agent_id: str,
        max_bytes: int,
        retention_days: float = 30.0,
        compression: bool = True,
        synchronous: str = "FULL",
        max_page_count: int | None = None,
        on_commit: CommitListener | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._path = path
        self._options: dict[str, Any] = {
            "agent_id": agent_id,
            "max_bytes": max_bytes,
            "retention_days": retention_days,
            "compression": compression,
            "synchronous": synchronous,
            "max_page_count": max_page_count,
            "clock": clock,
        }
        self._on_commit = on_commit
        self._store: CacheStore | None = None

    def on_start(self) -> None:
        """Open the database in the actor's own thread."""
        self._store = CacheStore(self._path, **self._options)
        self._store.apply_retention()

    def on_stop(self) -> None:
        """Close the database."""
        if self._store is not None:
            self._store.close()

    def on_failure(self, *_: object) -> None:
        """Close the database so the restarted actor opens a clean connection."""
        self.on_stop()

    @property
    def store(self) -> CacheStore:
        """The open store (only valid between on_start and on_stop)."""
        assert self._store is not None, "CacheActor used before on_start"
        return self._store

    def on_receive(self, message: Any) -> Any:
        """Dispatch one message."""
        if isinstance(message, Write):
            return self._write_group(message)
        if isinstance(message, _Committed):
            return self._notify(message.envelopes)
        return self._dispatch(message)

    def _dispatch(self, message: Any) -> Any:
        handler = _HANDLERS.get(type(message))
        if handler is None:
            return super().on_receive(message)
        return handler(self.store, message)

    def _write_group(self, first: Write) -> str | None:
        """Commit `first` and every write queued right behind it in one transaction."""
        group = [(first, None), *self._drain_writes()]
        try:
            results = self.store.write_many([w.envelope for w, _ in group])
        except Exception as exc:
            # The drained writes left pykka's inbox: their callers must hear of the failure.
            for _, reply_to in group[1:]:
                if reply_to is not None:
                    reply_to.set_exception((type(exc), exc, exc.__traceback__))
            raise
        for (_, reply_to), result in zip(group[1:], results[1:], strict=True):
            if reply_to is not None:
                _reply(reply_to, result)
            elif not isinstance(result, str):
                logger.warning("fire-and-forget write refused: %s", result)
        committed = [
            w.envelope for (w, _), r in zip(group, results, strict=True) if isinstance(r, str)
        ]
        if committed and self._on_commit is not None:
            # Not now: the uploader would wake and take the GIL before the writer hears its
            # reply, slowing every write with write-through on (docs/benchmarks.md). pykka answers
            # `first` when this returns; the message to self comes next. If the actor dies
            # first, the messages are committed and unsynced: the outbox's sweep sends them.
            self.actor_ref.tell(_Committed(tuple(committed)))
        return _first_result(first, results[0])

    def _notify(self, committed: Sequence[MessageEnvelope]) -> None:
        """Tell the listener; its failure must not turn a committed write into an error."""
        try:
            self._on_commit(committed)  # type: ignore[misc]
        except Exception:
            # The messages are committed and unsynced: the outbox's sweep will send them.
            logger.exception("could not hand %d committed messages to the uploader", len(committed))

    def _drain_writes(self) -> list[tuple[Write, pykka.Future[Any] | None]]:
        """Take the Write messages waiting right behind the one being handled."""
        return take_waiting(self, Write, MAX_GROUP - 1)


_HANDLERS: dict[type, Callable[[CacheStore, Any], Any]] = {
    Get: lambda store, m: store.get(m.msg_id),
    Query: lambda store, m: store.query(m),
    ListUnsynced: lambda store, m: store.list_unsynced(m.limit, m.after_id),
    MarkSynced: lambda store, m: store.mark_synced(m.msg_ids),
    GetStats: lambda store, _: store.stats(),
    CacheRemote: lambda store, m: store.cache_remote(m.envelopes),
    Maintain: lambda store, _: store.apply_retention(),
    SetAside: lambda store, m: store.set_aside(m.items),
    RetrySetAside: lambda store, _: store.retry_set_aside(),
    GetHeld: lambda store, m: store.held.report(m.since),
    ListHeld: lambda store, m: store.held.ids(m.since, m.until),
    GetAcked: lambda store, m: store.held.acked_counts(m.since),
    GetEnvelopes: lambda store, m: store.envelopes(m.msg_ids),
}


def _reply(future: pykka.Future[Any], result: WriteResult) -> None:
    if not isinstance(result, str):
        future.set_exception((type(result), result, None))
    else:
        future.set(result)


def _first_result(write: Write, result: WriteResult) -> str | None:
    if not isinstance(result, str):
        if write.reply:
            raise result
        logger.warning("fire-and-forget write refused: %s", result)
        return None
    return result
