"""UploaderActor: pushes each committed message to the relay at once (write-through)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from actors.messages import Enqueue, MarkSynced, Push, RelayUp, SetAside
from actors.outbox_store import BATCH_ROOM
from actors.poison import cut, screen
from actors.ports import Mailbox
from runtime.core.envelope import MessageEnvelope, new_msg_id
from runtime.core.errors import RelayError, RelayRejected
from runtime.core.logsafe import quote
from runtime.core.mailbox import take_waiting
from runtime.core.relay_client import RelayClient, RelayTarget
from runtime.core.supervisor import SupervisedActor
from runtime.core.sync_state import SyncState
from runtime.core.wire import batch_gzip, message_json

logger = logging.getLogger(__name__)


class UploaderActor(SupervisedActor):
    """Sends fresh messages straight to the relay; what fails goes to the outbox."""

    def __init__(
        self,
        *,
        node_id: str,
        cache: Mailbox,
        outbox: Mailbox,
        target: RelayTarget | None,
        sync_state: SyncState,
        batch_size: int = 500,
        probe_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._node_id = node_id
        self._cache = cache
        self._outbox = outbox
        self._target = target
        self._sync = sync_state
        self._batch_size = batch_size
        # After a failure, skip the relay for this long: messages go straight to the outbox
        # instead of each paying for a connection error.
        self._probe_interval = probe_interval
        self._clock = clock
        self._client: RelayClient | None = None
        self._degraded_until = 0.0
        self._degraded = False

    def on_start(self) -> None:
        """Open the HTTP session in the actor's thread."""
        if self._target is not None:
            self._client = RelayClient(self._target)

    def on_stop(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            self._client.close()

    def on_receive(self, message: Any) -> Any:
        """Handle Push; everything else is unexpected."""
        if isinstance(message, Push):
            envelopes, poison = screen([*message.envelopes, *self._drain_pushes()])
            if poison:
                self._cache.tell(SetAside(tuple(poison)))
            return [self._push(b) for b in split_batches(envelopes, self._batch_size)]
        return super().on_receive(message)

    def _drain_pushes(self) -> list[MessageEnvelope]:
        """Take the Push messages waiting at the head of the inbox (they go out together)."""
        taken = take_waiting(self, Push, self._batch_size)
        return [env for push, _ in taken for env in push.envelopes]

    def _push(self, envelopes: list[MessageEnvelope]) -> str:
        """Send at most one batch; on failure hand it to the outbox and skip the relay a while."""
        if self._client is None or self._clock() < self._degraded_until:
            self._outbox.tell(Enqueue(tuple(envelopes)))
            return "queued"
        try:
            self._send(self._client, envelopes)
        except RelayError as exc:
            return self._hand_over(envelopes, exc)
        self._cache.tell(MarkSynced(tuple(e.msg_id for e in envelopes)))
        self._sync.success(time.time(), len(envelopes))
        if self._degraded:
            self._degraded = False
            self._outbox.tell(RelayUp())
        return "stored"

    def _hand_over(self, envelopes: list[MessageEnvelope], exc: RelayError) -> str:
        """Give what was not delivered to the outbox; only an unreachable relay is skipped."""
        self._outbox.tell(Enqueue(tuple(envelopes)))
        if isinstance(exc, RelayRejected):
            # The relay is up but refuses something in it: the outbox finds what, by halving.
            logger.warning("relay refused %d messages: %s", len(envelopes), quote(exc))
            return "refused"
        logger.warning("write-through failed (%s); %d to the outbox", quote(exc), len(envelopes))
        self._sync.failure(cut(str(exc)))
        self._degraded, self._degraded_until = True, self._clock() + self._probe_interval
        return "queued"

    def _send(self, client: RelayClient, envelopes: list[MessageEnvelope]) -> None:
        """Send one message singly, several as one batch."""
        if len(envelopes) == 1:
            client.push_message(envelopes[0])
            return
        batch_id = new_msg_id()
        body = batch_gzip(batch_id, self._node_id, map(message_json, envelopes))
        client.push_batch(body, batch_id)


def split_batches(
    envelopes: list[MessageEnvelope], count: int, room: int = BATCH_ROOM
) -> list[list[MessageEnvelope]]:
    """Split screened messages into batches of at most `count` messages and `room` bytes."""
    batches: list[list[MessageEnvelope]] = []
    used = 0
    for env in envelopes:
        size = len(message_json(env)) + 1
        if not batches or len(batches[-1]) >= count or used + size > room:
            batches.append([])
            used = 0
        batches[-1].append(env)
        used += size
    return batches
