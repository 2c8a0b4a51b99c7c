"""A node: the supervised actors of every agent configured on one machine.

Per agent, in start order: CacheActor (owns messages.db), OutboxActor (owns
outbox.db, retries). Per node: one UploaderActor (write-through) for every agent,
so messages committed while a push is in flight share the next request; a commit
in any cache is told to it, and what it cannot deliver goes to that agent's
outbox. One MailPoller long-polls the relay for every agent's mail into the
MailStore (runtime.node.mail_store), which `AgentHandle.receive` reads.

Each agent has its own supervisor: past its restart intensity that agent is down
(its asks fail at once, /status and /metrics say so) and is started again after a
growing delay, while the other agents and the process go on. What a restart
cannot fix in one agent's data must not cost every other agent its node. Only the
MetricsActor's supervisor gives up for the whole node, as before. The uploader has a
supervisor of its own that revives it like an agent: while it is down, the outboxes'
sweeps deliver everything, late but whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from actors.board import AgentBoard
from actors.cache import CacheActor
from actors.cache_store import cache_path
from actors.messages import Maintain, Push, Tick
from actors.metrics import AgentFigures, AgentSources, MetricsActor, collect_figures
from actors.outbox import OutboxActor
from actors.outbox_store import outbox_path
from actors.reconciler import ReconcilerActor, RefillRoute
from actors.uploader import UploaderActor, UploadRoute
from runtime.core.backoff import sync_backoff
from runtime.core.config import AgentConfig, ClusterConfig, load_config
from runtime.core.envelope import MessageEnvelope
from runtime.core.errors import SupervisorGaveUp
from runtime.core.logsafe import quote
from runtime.core.relay_client import RelayTarget
from runtime.core.supervisor import ChildHandle, ChildSpec, Restart, Supervisor
from runtime.core.sync_state import SyncState
from runtime.core.tls import client_ca_file, is_loopback_url, relay_urls
from runtime.node.agent import AgentHandle
from runtime.node.mail_poller import MailPoller
from runtime.node.mail_store import MailStore, mail_path
from runtime.node.remote import RemoteReader
from runtime.node.ticker import Ticker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeOptions:
    """How a node runs, beyond what the config files say."""

    data_dir: str = "./data/node"
    relay_url: str | None = None
    token: str | None = None
    # The CA an https relay is verified against (the `--relay-ca-file` flag); None:
    # relay.yaml's `relay.ca_file`, else the system store.
    relay_ca_file: str | None = None
    synchronous: str = "FULL"
    maintain_interval: float = 3600.0
    probe_interval: float = 1.0
    report_interval: float = 5.0
    max_restarts: int = 5
    within_seconds: float = 10.0
    call_timeout: float = 10.0
    # An agent down is started again after base * 2**(n-1) seconds, at most cap.
    agent_revive_base: float = 30.0
    agent_revive_cap: float = 600.0
    # Refill (actors.reconciler): how often the relay's identity is looked at (a restore
    # or a restart is noticed within this), and how often an idle comparison runs anyway.
    refill_check_interval: float = 15.0
    refill_interval: float = 600.0


@dataclass
class AgentActors:
    """The handles of one agent's actors and its delivery figures."""

    config: AgentConfig
    cache: ChildHandle
    outbox: ChildHandle
    sync: SyncState
    supervisor: Supervisor
    board: AgentBoard


class Node:
    """Runs every agent's cache and outbox, and the node's uploader, metrics and mail."""

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
        # The node's own actors (metrics); agents each get theirs in _add_agent.
        self.supervisor = Supervisor(
            f"node:{node_id}",
            max_restarts=self.options.max_restarts,
            within_seconds=self.options.within_seconds,
            call_timeout=self.options.call_timeout,
            on_give_up=on_give_up,
        )
        self.ticker = Ticker()
        self.agents: dict[str, AgentHandle] = {}
        self.actors: dict[str, AgentActors] = {}
        self.metrics_actor: ChildHandle
        self.uploader: ChildHandle | None = None
        self.reconciler: ChildHandle | None = None
        self.uploader_supervisor = self._revived_supervisor(f"uploader:{node_id}")
        self.target = self._relay_target()
        self.mail: MailStore | None = None
        self.mail_poller: MailPoller | None = None
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
        # NORMAL, whatever the caches use: the relay keeps the mail, and a commit lost to a
        # power cut takes its relay cursor with it, so the next poll fetches it again.
        self.mail = MailStore(mail_path(self.options.data_dir), "NORMAL")
        for agent in agents:
            self._add_agent(agent)
        if self.target is not None and agents:
            self.uploader = self.uploader_supervisor.add(
                ChildSpec("uploader", self._uploader_factory(agents), Restart.PERMANENT)
            )
            self.reconciler = self.uploader_supervisor.add(
                ChildSpec("reconciler", self._reconciler_factory(agents), Restart.PERMANENT)
            )
            check = self.options.refill_check_interval
            self.ticker.every(check, "refill", _periodic(self.reconciler, Tick()))
        self.metrics_actor = self.supervisor.add(
            ChildSpec("metrics", self._metrics_factory(), Restart.PERMANENT)
        )
        # One ticker thread serves every agent: a periodic tell skips an actor that is
        # restarting or down (the next one comes soon) instead of holding the others' ticks.
        report = self.options.report_interval
        self.ticker.every(report, "status-report", _periodic(self.metrics_actor, Tick()))
        for actors in self.actors.values():
            actors.supervisor.start()
        self.uploader_supervisor.start()
        self.supervisor.start()
        self.ticker.start()
        self._start_mail(agents)
        self._started = True
        logger.info("node %s started with agents %s", self.node_id, sorted(self.agents))
        return self

    def stop(self) -> None:
        """Stop the periodic jobs, then the actors in reverse start order."""
        if self.mail_poller is not None:
            self.mail_poller.stop()
        self.ticker.stop()
        self.supervisor.stop()
        self.uploader_supervisor.stop()
        for actors in reversed(self.actors.values()):
            actors.supervisor.stop()
        if self.mail is not None:
            self.mail.close()
        self._started = False

    def _start_mail(self, agents: Sequence[AgentConfig]) -> None:
        """One long poll for every agent's mail (to its id or its role), if there is a relay."""
        if self.target is None or not agents or self.mail is None:
            return
        recipients = sorted({a.agent_id for a in agents} | {a.role for a in agents})
        self.mail_poller = MailPoller(self.target, recipients, self.mail).start()

    def agent(self, agent_id: str) -> AgentHandle:
        """Return the handle of one agent on this node."""
        try:
            return self.agents[agent_id]
        except KeyError:
            raise KeyError(f"agent {agent_id!r} is not configured on node {self.node_id}") from None

    def healthy(self) -> bool:
        """True while the node does its work: its own actors alive, every agent supervised.

        An agent down waiting to be started again still counts: restarting the process
        cannot mend what that agent's data does to it, and would stop every other agent.
        """
        return (
            self._started
            and self.supervisor.healthy()
            and self.uploader_supervisor.running()
            and all(a.supervisor.running() for a in self.actors.values())
        )

    def agent_state(self, agent_id: str) -> str:
        """ "up", "restarting" (an actor is between incarnations) or "down" (waits to revive)."""
        supervisor = self.actors[agent_id].supervisor
        if supervisor.down is not None:
            return "down"
        return "up" if supervisor.healthy() else "restarting"

    def agents_down(self) -> dict[str, str]:
        """Why each agent that is down is down."""
        return {a: x.supervisor.down or "" for a, x in self.actors.items() if x.supervisor.down}

    def restart_counts(self) -> dict[str, int]:
        """Restarts so far of every supervised actor, by name."""
        counts = dict(self.supervisor.restart_counts())
        counts.update(self.uploader_supervisor.restart_counts())
        for actors in self.actors.values():
            counts.update(actors.supervisor.restart_counts())
        return counts

    def figures(self) -> tuple[AgentFigures, ...]:
        """Every agent's figures, never waiting on the relay (at most about half a second)."""
        return collect_figures(self._sources())

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _relay_target(self) -> RelayTarget | None:
        entry = next((n for n in self.config.nodes if n.id == self.node_id), None)
        if entry is not None and not entry.sync_enabled:
            # Said by the operator in relay.yaml: it wins over --relay-url and the token.
            logger.warning("sync_enabled is false for node %s: messages stay local", self.node_id)
            return None
        urls = relay_urls(self.config, self.options.relay_url, self.node_id)
        if not urls or self.options.token is None:
            logger.warning("no relay URL or token for node %s: messages stay local", self.node_id)
            return None
        ca_file = None
        if any(url.startswith("https://") for url in urls):
            ca_file = client_ca_file(self.config, self.options.relay_ca_file)
        for url in urls:
            if not url.startswith("https://") and not is_loopback_url(url):
                logger.warning(
                    "relay %s is plain HTTP: this node's token and messages cross the network"
                    " in clear (`commander-relay tls` makes a CA; give the relay an https URL)",
                    quote(url),
                )
        primary, *fallbacks = urls
        return RelayTarget(
            primary, self.node_id, self.options.token, ca_file=ca_file, fallbacks=tuple(fallbacks)
        )

    def _add_agent(self, agent: AgentConfig) -> None:
        sync, board = SyncState(), AgentBoard()
        supervisor = self._agent_supervisor(agent.agent_id)

        def child(name: str, start: Callable[[], Any]) -> ChildHandle:
            return supervisor.add(ChildSpec(f"{name}:{agent.agent_id}", start, Restart.PERMANENT))

        cache = child("cache", self._cache_factory(agent))
        outbox = child("outbox", self._outbox_factory(agent, cache, sync, board))
        self.actors[agent.agent_id] = AgentActors(agent, cache, outbox, sync, supervisor, board)
        timed = self._timed_target(agent)  # a read-through keeps to the agent's timeout too
        remote = RemoteReader(timed) if timed is not None else None
        self.agents[agent.agent_id] = AgentHandle(
            agent,
            cache,
            remote_lookup=remote.get if remote else None,
            clock=self.clock,
            mail=self.mail,
        )
        self.ticker.every(
            self.options.maintain_interval,
            f"maintain:{agent.agent_id}",
            _periodic(cache, Maintain()),
        )
        self.ticker.every(
            agent.sync.interval_seconds, f"outbox:{agent.agent_id}", _periodic(outbox, Tick())
        )

    def _agent_supervisor(self, agent_id: str) -> Supervisor:
        return self._revived_supervisor(f"agent:{agent_id}")

    def _revived_supervisor(self, name: str) -> Supervisor:
        """A supervisor that never gives up for the node: past its intensity it revives later."""
        base, cap = self.options.agent_revive_base, self.options.agent_revive_cap
        return Supervisor(
            name,
            max_restarts=self.options.max_restarts,
            within_seconds=self.options.within_seconds,
            call_timeout=self.options.call_timeout,
            revive_after=lambda n: min(cap, base * 2.0 ** (n - 1)),
        )

    def _sources(self) -> dict[str, AgentSources]:
        return {
            agent_id: AgentSources(x.cache, x.outbox, x.sync, x.board, self._state_of(agent_id))
            for agent_id, x in self.actors.items()
        }

    def _state_of(self, agent_id: str) -> Callable[[], str]:
        return lambda: self.agent_state(agent_id)

    def _cache_factory(self, agent: AgentConfig) -> Callable[[], Any]:
        path = cache_path(self.options.data_dir, agent.agent_id)

        # Bound late: the uploader's handle exists only after every agent is added.
        def on_commit(envelopes: Sequence[MessageEnvelope]) -> None:
            # Never wait for an uploader that is restarting: the outbox's sweep sends these.
            if self.uploader is not None:
                self.uploader.try_tell(Push(tuple(envelopes)))

        def start() -> Any:
            return CacheActor.start(
                path,
                agent_id=agent.agent_id,
                max_bytes=agent.cache_max_bytes,
                retention_days=agent.cache.retention_days,
                compression=agent.cache.compression,
                synchronous=self.options.synchronous,
                on_commit=on_commit if self.target is not None else None,
                clock=self.clock,
            )

        return start

    def _outbox_factory(
        self, agent: AgentConfig, cache: ChildHandle, sync: SyncState, board: AgentBoard
    ) -> Callable[[], Any]:
        path = outbox_path(self.options.data_dir, agent.agent_id)
        backoff = sync_backoff(agent.sync)
        target = self._timed_target(agent)

        def start() -> Any:
            return OutboxActor.start(
                path,
                agent_id=agent.agent_id,
                node_id=self.node_id,
                cache=cache,
                target=target,
                backoff=backoff,
                sync_state=sync,
                batch_size=agent.sync.batch_size,
                sweep_grace=2 * agent.sync.timeout_seconds + 1.0,
                synchronous=self.options.synchronous,
                clock=self.clock,
                board=board,
            )

        return start

    def _uploader_factory(self, agents: Sequence[AgentConfig]) -> Callable[[], Any]:
        """One uploader for every agent of the node."""
        # It waits as long and sends as much as the most patient, largest agent setting.
        routes = {
            a.agent_id: UploadRoute(x.cache, x.outbox, x.sync)
            for a in agents
            if (x := self.actors.get(a.agent_id)) is not None
        }
        target = self._timed_target(max(agents, key=lambda a: a.sync.timeout_seconds))
        batch_size = max(a.sync.batch_size for a in agents)

        def start() -> Any:
            return UploaderActor.start(
                node_id=self.node_id,
                routes=routes,
                target=target,
                batch_size=batch_size,
                probe_interval=self.options.probe_interval,
            )

        return start

    def _reconciler_factory(self, agents: Sequence[AgentConfig]) -> Callable[[], Any]:
        """One reconciler for every agent; it compares as far back as caches keep messages."""
        routes = {
            a.agent_id: RefillRoute(x.cache, x.outbox, x.board)
            for a in agents
            if (x := self.actors.get(a.agent_id)) is not None
        }
        target = self._timed_target(max(agents, key=lambda a: a.sync.timeout_seconds))
        window = max(a.cache.retention_days for a in agents) * 86400.0

        def start() -> Any:
            # First comparison at once: a node starting after a restore must not wait.
            actor = ReconcilerActor.start(
                routes=routes,
                target=target,
                window_s=window,
                interval_s=self.options.refill_interval,
                clock=self.clock,
            )
            actor.tell(Tick())
            return actor

        return start

    def _metrics_factory(self) -> Callable[[], Any]:
        sources = self._sources()

        def start() -> Any:
            return MetricsActor.start(node_id=self.node_id, sources=sources, target=self.target)

        return start

    def _timed_target(self, agent: AgentConfig) -> RelayTarget | None:
        if self.target is None:
            return None
        return replace(self.target, timeout=agent.sync.timeout_seconds)


def _periodic(handle: ChildHandle, message: Any) -> Callable[[], None]:
    """A ticker job that tells `message` if the actor is up, and otherwise lets it pass."""

    def tell() -> None:
        handle.try_tell(message)

    return tell
