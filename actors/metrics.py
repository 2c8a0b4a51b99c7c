"""Every agent's figures, read without waiting on the relay; MetricsActor reports them to it.

`collect_figures` runs in whichever thread answers locally (/status, /metrics): it
asks each cache (local work only) with a short deadline and reads the outbox's
published figures, so no answer waits behind an actor blocked in an HTTP call.
The MetricsActor only sends those figures to the relay now and then; it may block.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from actors.board import AgentBoard
from actors.messages import CacheStats, GetStats, OutboxStats, RefillStats, RelayUp, Tick
from actors.ports import Mailbox
from runtime.core.errors import CommanderError, RelayError, RelayRejected
from runtime.core.logsafe import quote
from runtime.core.relay_client import RelayClient, RelayTarget
from runtime.core.supervisor import SupervisedActor
from runtime.core.sync_state import SyncSnapshot, SyncState

logger = logging.getLogger(__name__)

# The whole budget of one collection: a local answer is due well within a second.
FIGURES_TIMEOUT = 0.5
# However late the earlier caches were, each still gets this long.
MIN_ASK = 0.05


def _always_up() -> str:
    return "up"


@dataclass(frozen=True)
class AgentSources:
    """Where one agent's figures come from."""

    cache: Mailbox
    outbox: Mailbox
    sync: SyncState
    board: AgentBoard = field(default_factory=AgentBoard)
    # "up", "restarting" or "down", as the agent's supervisor sees it.
    state: Callable[[], str] = _always_up


@dataclass(frozen=True)
class AgentFigures:
    """One agent's figures at one moment; a part is None when its actor did not answer."""

    agent_id: str
    cache: CacheStats | None
    outbox: OutboxStats | None
    sync: SyncSnapshot
    state: str = "up"
    refill: RefillStats = field(default_factory=RefillStats)


def collect_figures(
    sources: Mapping[str, AgentSources], timeout: float = FIGURES_TIMEOUT
) -> tuple[AgentFigures, ...]:
    """Every agent's figures within `timeout`; a cache that is late gives its last figures."""
    deadline = time.monotonic() + timeout
    figures = []
    for agent_id, src in sorted(sources.items()):
        cache = _ask_cache(src, max(MIN_ASK, deadline - time.monotonic()))
        figures.append(
            AgentFigures(
                agent_id,
                cache,
                src.board.outbox(),
                src.sync.snapshot(),
                src.state(),
                src.board.refill(),
            )
        )
    return tuple(figures)


def _ask_cache(src: AgentSources, timeout: float) -> CacheStats | None:
    try:
        stats: CacheStats = src.cache.ask(GetStats(), timeout=timeout)
    except CommanderError:
        return src.board.cache()  # restarting, down or busy: what it said last
    src.board.publish_cache(stats)
    return stats


class MetricsActor(SupervisedActor):
    """On Tick, collects every agent's figures and POSTs them to /sync/status."""

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
        self._refused = ""

    def on_start(self) -> None:
        """Open the HTTP session in the actor's thread."""
        if self._target is not None:
            self._client = RelayClient(self._target)

    def on_stop(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            self._client.close()

    def on_receive(self, message: Any) -> Any:
        """Tick collects and reports to the relay."""
        if isinstance(message, Tick):
            return self._report(collect_figures(self._sources))
        return super().on_receive(message)

    def _report(self, figures: tuple[AgentFigures, ...]) -> bool:
        if self._client is None:
            return False
        try:
            self._client.report_status(status_report(self._node_id, figures, self._clock()))
        except RelayRejected as exc:
            # The relay is up and refuses the report itself (it names an agent the relay
            # does not give this node): an operator must see it, once, not every tick.
            if str(exc) != self._refused:
                logger.error("status report refused by the relay: %s", quote(exc))
            self._refused = str(exc)
            return False
        except RelayError as exc:
            logger.debug("status report not delivered: %s", quote(exc))
            self._relay_was_down = True
            return False
        self._refused = ""
        if self._relay_was_down:
            # The report doubles as a probe: outboxes in a long backoff drain now.
            self._relay_was_down = False
            for source in self._sources.values():
                # An agent down or restarting starts its outbox without backoff anyway.
                with contextlib.suppress(CommanderError):
                    source.outbox.tell(RelayUp())
        return True


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
                **refill_report(fig.refill, fig.outbox),
            }
        )
    return {"node_id": node_id, "sent_at": now, "agents": agents}


def refilling(refill: RefillStats, outbox: OutboxStats | None) -> bool:
    """Whether the agent is refilling: comparing now, or its last resends still waiting."""
    waiting = outbox is not None and outbox.pending_messages > 0
    return refill.state == "comparing" or (refill.last_refilled > 0 and waiting)


def refill_report(refill: RefillStats, outbox: OutboxStats | None) -> dict[str, Any]:
    """The refill fields of one agent's status report (flat, small: the relay keeps them)."""
    return {
        "refill_state": "refilling" if refilling(refill, outbox) else refill.state,
        "refilled": refill.refilled,
        "unrefillable": refill.unrefillable,
        "last_reconcile_at": refill.last_at,
    }
