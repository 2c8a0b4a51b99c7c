"""MetricsActor: gathers every agent's figures and reports them to the relay."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from actors.messages import CacheStats, GetOutboxStats, GetStats, OutboxStats, RelayUp, Tick
from actors.ports import Mailbox
from runtime.errors import CommanderError, RelayError
from runtime.logsafe import quote
from runtime.relay_client import RelayClient, RelayTarget
from runtime.supervisor import SupervisedActor
from runtime.sync_state import SyncSnapshot, SyncState

logger = logging.getLogger(__name__)

STATS_TIMEOUT = 2.0


@dataclass(frozen=True)
class AgentSources:
    """Where one agent's figures come from."""

    cache: Mailbox
    outbox: Mailbox
    sync: SyncState


@dataclass(frozen=True)
class AgentFigures:
    """One agent's figures at one moment; a part is None when its actor did not answer."""

    agent_id: str
    cache: CacheStats | None
    outbox: OutboxStats | None
    sync: SyncSnapshot


@dataclass(frozen=True)
class GetFigures:
    """Collect and return a fresh tuple of AgentFigures."""


class MetricsActor(SupervisedActor):
    """Collects figures on request (scrapes) and on Tick, when it also POSTs /sync/status."""

    def __init__(
        self,
        *,
        node_id: str,
        sources: Mapping[str, AgentSources],
        target: RelayTarget | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._node_id = node_id
        self._sources = dict(sources)
        self._target = target
        self._clock = clock
        self._client: RelayClient | None = None
        self._relay_was_down = False

    def on_start(self) -> None:
        """Open the HTTP session in the actor's thread."""
        if self._target is not None:
            self._client = RelayClient(self._target)

    def on_stop(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            self._client.close()

    def on_receive(self, message: Any) -> Any:
        """GetFigures answers; Tick collects and reports to the relay."""
        if isinstance(message, GetFigures):
            return self.collect()
        if isinstance(message, Tick):
            return self._report(self.collect())
        return super().on_receive(message)

    def collect(self) -> tuple[AgentFigures, ...]:
        """Ask every agent's actors for their figures (they never ask this actor back)."""
        return tuple(
            AgentFigures(
                agent_id,
                _ask(src.cache, GetStats()),
                _ask(src.outbox, GetOutboxStats()),
                src.sync.snapshot(),
            )
            for agent_id, src in sorted(self._sources.items())
        )

    def _report(self, figures: tuple[AgentFigures, ...]) -> bool:
        if self._client is None:
            return False
        try:
            self._client.report_status(status_report(self._node_id, figures, self._clock()))
        except RelayError as exc:
            logger.debug("status report not delivered: %s", quote(exc))
            self._relay_was_down = True
            return False
        if self._relay_was_down:
            # The report doubles as a probe: outboxes in a long backoff drain now.
            self._relay_was_down = False
            for source in self._sources.values():
                source.outbox.tell(RelayUp())
        return True


def _ask(mailbox: Mailbox, message: Any) -> Any:
    try:
        return mailbox.ask(message, timeout=STATS_TIMEOUT)
    except CommanderError:
        return None  # an actor restarting: report what we have rather than nothing


def status_report(node_id: str, figures: tuple[AgentFigures, ...], now: float) -> dict[str, Any]:
    """The body of POST /sync/status."""
    agents = []
    for fig in figures:
        oldest = fig.cache.oldest_unsynced_ts if fig.cache else None
        agents.append(
            {
                "agent_id": fig.agent_id,
                "cache_bytes_used": fig.cache.bytes_used if fig.cache else None,
                "cache_max_bytes": fig.cache.max_bytes if fig.cache else None,
                "cache_full": fig.cache.full if fig.cache else None,
                "outbox_depth": fig.outbox.pending_messages if fig.outbox else None,
                "failed_batches": fig.outbox.failed_batches if fig.outbox else None,
                "oldest_unsynced_age_s": max(0.0, now - oldest) if oldest else 0.0,
                "last_sync_at": fig.sync.last_success_at,
            }
        )
    return {"node_id": node_id, "sent_at": now, "agents": agents}
