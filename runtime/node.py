"""A node: the supervised actors of every agent configured on one machine."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from actors.cache import CacheActor
from actors.cache_store import cache_path
from actors.messages import Maintain
from runtime.agent import AgentHandle
from runtime.config import AgentConfig, ClusterConfig, load_config
from runtime.errors import SupervisorGaveUp
from runtime.supervisor import ChildHandle, ChildSpec, Restart, Supervisor
from runtime.ticker import Ticker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeOptions:
    """How a node runs, beyond what the config files say."""

    data_dir: str = "./data/node"
    synchronous: str = "FULL"
    maintain_interval: float = 3600.0
    max_restarts: int = 5
    within_seconds: float = 10.0
    call_timeout: float = 10.0


class Node:
    """Runs CacheActors (and later the sync actors) for the agents of one node."""

    def __init__(
        self,
        config: ClusterConfig,
        node_id: str,
        options: NodeOptions | None = None,
        *,
        on_give_up: Callable[[SupervisorGaveUp], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.options = options or NodeOptions()
        self.clock = clock
        self.supervisor = Supervisor(
            f"node:{node_id}",
            max_restarts=self.options.max_restarts,
            within_seconds=self.options.within_seconds,
            call_timeout=self.options.call_timeout,
            on_give_up=on_give_up,
        )
        self.ticker = Ticker()
        self.agents: dict[str, AgentHandle] = {}
        self.caches: dict[str, ChildHandle] = {}
        self._started = False

    @classmethod
    def from_config_dir(cls, config_dir: str | Path, node_id: str, **kwargs: Any) -> Node:
        """Load a config directory and build the node named `node_id`."""
        return cls(load_config(config_dir), node_id, **kwargs)

    def start(self) -> Node:
        """Start every agent's actors in dependency order, then the periodic jobs."""
        agents = self.config.agents_on(self.node_id)
        if not agents:
            logger.warning("no enabled agents configured for node %s", self.node_id)
        for agent in agents:
            self._add_agent(agent)
        self.supervisor.start()
        self.ticker.start()
        self._started = True
        logger.info("node %s started with agents %s", self.node_id, sorted(self.agents))
        return self

    def stop(self) -> None:
        """Stop the periodic jobs, then the actors in reverse start order."""
        self.ticker.stop()
        self.supervisor.stop()
        self._started = False

    def agent(self, agent_id: str) -> AgentHandle:
        """Return the handle of one agent on this node."""
        try:
            return self.agents[agent_id]
        except KeyError:
            raise KeyError(f"agent {agent_id!r} is not configured on node {self.node_id}") from None

    def healthy(self) -> bool:
        """True while every supervised actor is alive."""
        return self._started and self.supervisor.healthy()

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _add_agent(self, agent: AgentConfig) -> None:
        cache = self.supervisor.add(
            ChildSpec(f"cache:{agent.agent_id}", self._cache_factory(agent), Restart.PERMANENT)
        )
        self.caches[agent.agent_id] = cache
        self.agents[agent.agent_id] = AgentHandle(agent, cache, clock=self.clock)
        self.ticker.every(
            self.options.maintain_interval,
            f"maintain:{agent.agent_id}",
            lambda: cache.tell(Maintain()),
        )

    def _cache_factory(self, agent: AgentConfig) -> Callable[[], Any]:
        path = cache_path(self.options.data_dir, agent.agent_id)

        def start() -> Any:
            return CacheActor.start(
                path,
                agent_id=agent.agent_id,
                max_bytes=agent.cache_max_bytes,
                retention_days=agent.cache.retention_days,
                compression=agent.cache.compression,
                synchronous=self.options.synchronous,
                clock=self.clock,
            )

        return start
