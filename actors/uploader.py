"""UploaderActor: pushes each committed message to the relay at once (write-through).

One uploader serves every agent of a node over one connection: messages committed
while a request is in flight wait in its mailbox and leave together in the next
request, whichever agents wrote them, and a message written while the link is idle
leaves at once. Results go back to each message's own agent: acknowledgements to its
cache, what could not be delivered to its outbox.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from actors.messages import Enqueue, MarkSynced, Push, RelayUp, SetAside
from actors.outbox_store import BATCH_ROOM
from actors.poison import cut, screen
from actors.ports import Mailbox
from runtime.core.envelope import MessageEnvelope, new_msg_id
from runtime.core.errors import ActorUnavailable, RelayError, RelayRejected
from runtime.core.logsafe import quote
from runtime.core.mailbox import take_waiting
from runtime.core.relay_client import RelayClient, RelayTarget
from runtime.core.supervisor import SupervisedActor
from runtime.core.sync_state import SyncState
from runtime.core.wire import batch_gzip, message_json

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadRoute:
    """Where one agent's upload results go: its cache, its outbox, its delivery figures."""

    cache: Mailbox
    outbox: Mailbox
    sync: SyncState


class UploaderActor(SupervisedActor):
    """Sends fresh messages straight to the relay; what fails goes to the outbox."""

    def __init__(
        self,
        *,
        node_id: str,
        routes: Mapping[str, UploadRoute],
        target: RelayTarget | None,
        batch_size: int = 500,
        probe_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._node_id = node_id
        self._routes = dict(routes)
        self._target = target
        self._batch_size = batch_size
        # After a failure, skip the relay for this long: messages go straight to the outboxes
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
            envelopes = self._screen([*message.envelopes, *self._drain_pushes()])
            return [self._push(b) for b in split_batches(envelopes, self._batch_size)]
        return super().on_receive(message)

    def _drain_pushes(self) -> list[MessageEnvelope]:
        """Take the Push messages waiting at the head of the inbox (they go out together)."""
        taken = take_waiting(self, Push, self._batch_size)
        return [env for push, _ in taken for env in push.envelopes]

    def _screen(self, envelopes: list[MessageEnvelope]) -> list[MessageEnvelope]:
        """Those that can be sent; the others are set aside in their agent's cache."""
        good, poison = screen(envelopes)
        if poison:
            agent_of = {env.msg_id: env.agent_id for env in envelopes}
            grouped: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for item in poison:
                grouped[agent_of[item[0]]].append(item)
            for agent_id, items in grouped.items():
                self._tell(agent_id, "cache", SetAside(tuple(items)))
        return good

    def _push(self, envelopes: list[MessageEnvelope]) -> str:
        """Send at most one batch; on failure hand it to the outboxes and skip the relay a while."""
        if self._client is None or self._clock() < self._degraded_until:
            self._enqueue(envelopes)
            return "queued"
        try:
            self._send(self._client, envelopes)
        except RelayError as exc:
            return self._hand_over(envelopes, exc)
        now = time.time()
        for agent_id, mine in by_agent(envelopes).items():
            self._tell(agent_id, "cache", MarkSynced(tuple(e.msg_id for e in mine)))
            if (route := self._routes.get(agent_id)) is not None:
                route.sync.success(now, len(mine))
        if self._degraded:
            self._degraded = False
            for agent_id in self._routes:
                self._tell(agent_id, "outbox", RelayUp())
        return "stored"

    def _hand_over(self, envelopes: list[MessageEnvelope], exc: RelayError) -> str:
        """Give what was not delivered to the outboxes; only an unreachable relay is skipped."""
        self._enqueue(envelopes)
        if isinstance(exc, RelayRejected):
            # The relay is up but refuses something in it: the outbox finds what, by halving.
            logger.warning("relay refused %d messages: %s", len(envelopes), quote(exc))
            return "refused"
        logger.warning("write-through failed (%s); %d to the outbox", quote(exc), len(envelopes))
        reason = cut(str(exc))
        for agent_id in by_agent(envelopes):
            if (route := self._routes.get(agent_id)) is not None:
                route.sync.failure(reason)
        self._degraded, self._degraded_until = True, self._clock() + self._probe_interval
        return "queued"

    def _enqueue(self, envelopes: list[MessageEnvelope]) -> None:
        """Each agent's share to its own outbox."""
        for agent_id, mine in by_agent(envelopes).items():
            self._tell(agent_id, "outbox", Enqueue(tuple(mine)))

    def _tell(self, agent_id: str, actor: str, message: Any) -> None:
        """Tell one agent's cache or outbox; an agent down or unknown is skipped.

        Nothing is lost by skipping: a message stays unsynced in its cache until a
        MarkSynced lands, and the outbox's sweep sends what no batch covers.
        """
        route = self._routes.get(agent_id)
        if route is None:
            logger.warning("no agent %s here: its upload result is dropped", quote(agent_id))
            return
        try:
            (route.cache if actor == "cache" else route.outbox).tell(message)
        except ActorUnavailable as exc:
            logger.warning("%s of agent %s unavailable (%s)", actor, agent_id, quote(exc))

    def _send(self, client: RelayClient, envelopes: list[MessageEnvelope]) -> None:
        """Send one message singly, several as one batch."""
        if len(envelopes) == 1:
            client.push_message(envelopes[0])
            return
        batch_id = new_msg_id()
        body = batch_gzip(batch_id, self._node_id, map(message_json, envelopes))
        client.push_batch(body, batch_id)


def by_agent(envelopes: Iterable[MessageEnvelope]) -> dict[str, list[MessageEnvelope]]:
    """The messages grouped by their agent, in their order."""
    grouped: dict[str, list[MessageEnvelope]] = defaultdict(list)
    for env in envelopes:
        grouped[env.agent_id].append(env)
    return grouped


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
