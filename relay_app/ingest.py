"""IngestActor: the only writer of the cluster database, committing in groups."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pykka

from relay_app.errors import RelayAppError, StorageFull, StoreUnavailable
from relay_app.store import (
    WRITE_OPS,
    MessageStore,
    StoreWriter,
    WriteOp,
    WriteResult,
)
from runtime.core.mailbox import take_waiting

logger = logging.getLogger(__name__)

# Upper bound on the requests in one transaction, so the first caller of a flood
# still gets its answer within one commit of reasonable size.
MAX_GROUP = 256
# How long an HTTP thread waits for its commit before answering 503.
SUBMIT_TIMEOUT_S = 30.0

Reply = WriteResult | RelayAppError


class GroupCounts:
    """Transactions committed and the write requests they held; read by the metrics."""

    def __init__(self) -> None:
        # Written by the actor's thread only; an int read from another thread is whole.
        self.transactions = 0
        self.requests = 0

    def committed(self, requests: int) -> None:
        """Count one committed transaction holding `requests` write requests."""
        self.transactions += 1
        self.requests += requests


class IngestActor(pykka.ThreadingActor):
    """Owns the store's writer; answers each write request only after its group committed."""

    def __init__(
        self,
        store: MessageStore,
        *,
        clock: Callable[[], float] = time.time,
        counts: GroupCounts | None = None,
    ) -> None:
        """Remember the store; the writer opens in `on_start`, in the actor's thread."""
        super().__init__()
        self._store = store
        self._clock = clock
        self._writer: StoreWriter | None = None
        self._counts = counts or GroupCounts()

    def on_start(self) -> None:
        """Open the writer connection in the actor's own thread."""
        self._writer = self._store.open_writer()

    def on_stop(self) -> None:
        """Close the writer connection."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def on_failure(self, *_: object) -> None:
        """Close the writer so nothing keeps the database open after a crash."""
        self.on_stop()

    def on_receive(self, message: Any) -> Any:
        """Commit a write request together with every write request queued behind it."""
        if isinstance(message, WRITE_OPS):
            return self._commit_group(message)
        return super().on_receive(message)

    def _commit_group(self, first: WriteOp) -> Reply:
        drained = self._drain_writes()
        results = self._write([first, *(op for op, _ in drained)])
        # The drained requests left pykka's inbox, so pykka will not answer them: we do.
        for (_, reply_to), result in zip(drained, results[1:], strict=True):
            if reply_to is not None:
                reply_to.set(result)
        return results[0]

    def _drain_writes(self) -> list[tuple[WriteOp, pykka.Future[Any] | None]]:
        """Take the write requests waiting at the head of the inbox, leaving anything else."""
        # pykka's inbox is a queue.Queue of Envelope(message, reply_to) with this thread as its
        # only consumer; take_waiting pins why peeking at its head and taking it is safe.
        return take_waiting(self, WRITE_OPS, MAX_GROUP - 1)

    def _write(self, ops: Sequence[WriteOp]) -> list[Reply]:
        """One transaction for the group; if it fails for a reason other than a full disk,
        retry each request alone so one bad request cannot fail its neighbours."""
        try:
            return list(self._write_once(ops))
        except StorageFull as exc:
            return [exc] * len(ops)
        except RelayAppError as exc:
            if len(ops) == 1:
                return [exc]
        return [self._write_alone(op) for op in ops]

    def _write_alone(self, op: WriteOp) -> Reply:
        try:
            return self._write_once([op])[0]
        except RelayAppError as exc:
            return exc

    def _write_once(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        assert self._writer is not None, "IngestActor used before on_start"
        try:
            results = self._writer.write(ops, self._clock())
            self._counts.committed(len(ops))
            return results
        except RelayAppError:
            raise
        except Exception as exc:
            # A bug must not leave the drained callers waiting for a reply that never comes.
            logger.exception("store writer failed")
            raise StoreUnavailable(f"internal store error: {exc!r}") from exc


class Ingest:
    """The HTTP threads' handle on the IngestActor: submit a write, get its result or error."""

    def __init__(
        self,
        ref: pykka.ActorRef[IngestActor],
        timeout: float = SUBMIT_TIMEOUT_S,
        counts: GroupCounts | None = None,
    ):
        """Wrap a started IngestActor; `counts` is the one it was started with."""
        self._ref = ref
        self._timeout = timeout
        self.counts = counts or GroupCounts()

    @classmethod
    def start(cls, store: MessageStore, *, clock: Callable[[], float] = time.time) -> Ingest:
        """Start an IngestActor on `store` and return its handle."""
        counts = GroupCounts()
        return cls(IngestActor.start(store, clock=clock, counts=counts), counts=counts)

    def submit(self, op: WriteOp) -> WriteResult:
        """Store `op`; return after the commit, or raise the RelayAppError that stopped it."""
        try:
            reply = self._ref.ask(op, timeout=self._timeout)
        except pykka.ActorDeadError as exc:
            raise StoreUnavailable("the relay is shutting down; retry later") from exc
        except pykka.Timeout as exc:
            raise StoreUnavailable("the store did not commit in time; retry later") from exc
        if isinstance(reply, RelayAppError):
            # One error instance may answer a whole group: raise a fresh one per caller.
            raise type(reply)(str(reply))
        assert isinstance(reply, WriteResult)
        return reply

    def queued(self) -> int:
        """Messages waiting at the IngestActor: requests that will share the next commit."""
        inbox: Any = self._ref.actor_inbox  # pykka 4's ThreadingActor inbox is a queue.Queue
        return int(inbox.qsize())

    @property
    def alive(self) -> bool:
        """Whether the actor is running."""
        return bool(self._ref.is_alive())

    def stop(self) -> None:
        """Stop the actor after the requests already queued (pykka answers the rest)."""
        if self._ref.is_alive():
            self._ref.stop()
