"""The agent API: what an agent holds to write, read and query its messages."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pykka

from actors.messages import CacheRemote, CacheStats, Get, GetStats, Write
from runtime.core.config import AgentConfig
from runtime.core.envelope import MessageEnvelope, from_stored
from runtime.core.errors import ActorUnavailable, InvalidMessage
from runtime.core.ids import ID_RULE, is_id
from runtime.core.relay_client import strip_relay_fields
from runtime.core.supervisor import ChildHandle
from runtime.node.mail_store import MailStore, next_mail
from runtime.node.query_filters import make_query

# Looks a message up on the relay when the local cache does not have it.
RemoteLookup = Callable[[str], MessageEnvelope | None]


class AgentHandle:
    """One agent's view of its node: writes land in its local cache, reads look there first."""

    def __init__(
        self,
        config: AgentConfig,
        cache: ChildHandle,
        *,
        remote_lookup: RemoteLookup | None = None,
        clock: Callable[[], float] = time.time,
        mail: MailStore | None = None,
    ) -> None:
        self.config = config
        self._mail = mail
        # The seq of the last batch `receive` handed out, acknowledged by the next call.
        self._unacked: int | None = None
        self.agent_id = config.agent_id
        self.node_id = config.node_id
        self._cache = cache
        self._remote_lookup = remote_lookup
        self._clock = clock
        # Set by the node's metrics: called with each write's latency in seconds.
        self.latency_observer: Callable[[float], None] | None = None

    def new_message(self, content: Any, **fields: Any) -> MessageEnvelope:
        """Build an envelope from this agent (fresh msg_id and timestamp), checked by the rule.

        Content is stored as its JSON: a tuple is stored (and read back) as a list.
        """
        for name in ("agent_id", "node_id"):
            if name in fields:
                raise InvalidMessage(name, "set by the node")
        fields.setdefault("role", self.config.role)
        envelope = MessageEnvelope.new(
            agent_id=self.agent_id,
            node_id=self.node_id,
            content=content,
            clock=self._clock,
            **fields,
        )
        return self._as_itself(envelope)

    def write(self, content: Any, *, timeout: float | None = None, **fields: Any) -> str:
        """Write a message; return its msg_id once it is committed locally."""
        return self._commit(self.new_message(content, **fields), timeout)

    def write_envelope(self, envelope: MessageEnvelope, *, timeout: float | None = None) -> str:
        """Write a message built elsewhere (same guarantee as `write`); checked by the rule."""
        return self._commit(self._as_itself(envelope.checked()), timeout)

    def _as_itself(self, envelope: MessageEnvelope) -> MessageEnvelope:
        """An agent writes only as itself: its sender, role, agent_id and node_id are its own.

        Both doors come through here (the HTTP API takes no role or ids at all), after the
        envelope rule, so a malformed value is named by the rule. `recipient` is anyone.
        """
        own = {"agent_id": self.agent_id, "node_id": self.node_id, "sender": self.agent_id}
        own["role"] = self.config.role
        for name, mine in own.items():
            value = getattr(envelope, name)
            if value is not None and value != mine:
                raise InvalidMessage(name, f"an agent writes only as itself: expected {mine!r}")
        return envelope

    def _commit(self, envelope: MessageEnvelope, timeout: float | None) -> str:
        start = time.perf_counter()
        msg_id = str(self._cache.ask(Write(envelope), timeout=timeout))
        if self.latency_observer is not None:
            self.latency_observer(time.perf_counter() - start)
        return msg_id

    def write_async(self, content: Any, **fields: Any) -> pykka.Future[str]:
        """Write without waiting; the future resolves to the msg_id after the commit."""
        return self._cache.ask_future(Write(self.new_message(content, **fields)))

    def write_nowait(self, content: Any, **fields: Any) -> str:
        """Fire and forget: return the msg_id at once; a refused write is only logged."""
        envelope = self.new_message(content, **fields)
        self._cache.tell(Write(envelope, reply=False))
        return envelope.msg_id

    def read(self, msg_id: str, *, timeout: float | None = None) -> MessageEnvelope | None:
        """Return a message: from the local cache, else from the relay (then cached locally)."""
        if not is_id(msg_id):  # it becomes part of the relay's URL path on a cache miss
            raise InvalidMessage("msg_id", ID_RULE)
        local = self._cache.ask(Get(msg_id), timeout=timeout)
        if local is not None or self._remote_lookup is None:
            return local  # type: ignore[no-any-return]
        remote = self._remote_lookup(msg_id)
        if remote is not None:
            self._cache.tell(CacheRemote((remote,)))
        return remote

    def query(self, *, timeout: float | None = None, **filters: Any) -> list[MessageEnvelope]:
        """Return local messages matching task_id, sender, recipient, since; oldest first.

        An unknown filter raises InvalidMessage naming it (ignored, it would match everything).
        """
        return list(self._cache.ask(make_query(filters), timeout=timeout))

    def query_async(self, **filters: Any) -> pykka.Future[list[MessageEnvelope]]:
        """Like `query`, returning a future; an unknown filter raises here, at once."""
        return self._cache.ask_future(make_query(filters))

    def receive(self, timeout: float = 0.0, *, limit: int = 100) -> list[MessageEnvelope]:
        """Messages to this agent (recipient = its id or its role) from any node, oldest first,
        waiting up to `timeout` seconds for some; [] when none came.

        Asking again acknowledges the previous batch (as does `ack`): the node keeps that
        cursor durably. Delivery is at-least-once: a batch not yet acknowledged when the
        node restarts is handed out again, so drop repeats by msg_id.
        """
        if self._mail is None:
            raise ActorUnavailable("this node has no mail store (not started)")
        found = next_mail(self._mail, self.config, {}, timeout, limit, self._unacked)
        found = found or []
        self._unacked = found[-1][0] if found else None
        return [from_stored(strip_relay_fields(message)) for _, message in found]

    def ack(self) -> None:
        """Acknowledge the last batch `receive` returned, without asking for more."""
        if self._mail is not None and self._unacked is not None:
            self._mail.ack(self.agent_id, self._unacked)
            self._unacked = None

    def stats(self, *, timeout: float | None = None) -> CacheStats:
        """Return the cache's current figures."""
        result: CacheStats = self._cache.ask(GetStats(), timeout=timeout)
        return result
