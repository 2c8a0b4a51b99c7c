"""Which node may write for which agent: the topology's `agents/<agent_id>.yaml` files.

The source is the operator's topology on the storage host (each agent file's `node_id`),
not the nodes' own status reports: a report is the node's word, which is exactly what a
stolen token would forge, so it cannot decide what that token may write. An agent
belongs to one node whether or not it is enabled (a disabled agent's earlier messages
may still be on their way). A node writing for an agent of another node, or for an
agent the topology does not name, gets 403 naming both.

The table follows the agent files without a restart: the directory is looked at (one
`stat` per file) at most once a second, and again before any refusal, so the first
write of an agent added a moment ago is accepted, and it is re-read when a file was
added, removed or changed. A refusal costs the node a set-aside, so a directory that
no longer parses, or holds no agent file at all (a deploy half done), keeps the
previous table, with an error in the log. relay.yaml itself is read only at start.

Without agent files (the embedded defaults) every write is refused, unless the relay
was started with `--allow-any-agent` (tests and benchmarks), which it says in its log
at start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from relay_app.errors import Forbidden
from relay_app.refusals import NODE_REFUSALS
from relay_app.store import MessageRow
from runtime.core.config import AgentConfig, ClusterConfig, load_agents
from runtime.core.errors import ConfigError, ConfigProblem
from runtime.core.logsafe import quote

logger = logging.getLogger(__name__)

RECHECK_SECONDS = 1.0
Signature = tuple[tuple[str, int, int], ...]


def agents_dir_of(config: ClusterConfig) -> Path | None:
    """`<config_dir>/agents` of a config read from a directory; None for embedded defaults."""
    return Path(config.config_dir) / "agents" if config.config_dir else None


def signature(directory: Path | None) -> Signature:
    """Name, mtime and size of every agent file: what changes when one is edited."""
    if directory is None:
        return ()
    found = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.endswith(".yaml"):
                    stat = entry.stat()
                    found.append((entry.name, stat.st_mtime_ns, stat.st_size))
    except OSError:
        return ()
    return tuple(sorted(found))


def owner_table(agents: Iterable[AgentConfig]) -> dict[str, str]:
    """agent_id -> node_id."""
    return {agent.agent_id: agent.node_id for agent in agents}


def role_table(agents: Iterable[AgentConfig]) -> dict[str, frozenset[str]]:
    """node_id -> the roles of its agents (mail to a role reaches every node holding one)."""
    roles: dict[str, set[str]] = {}
    for agent in agents:
        roles.setdefault(agent.node_id, set()).add(agent.role)
    return {node: frozenset(found) for node, found in roles.items()}


class AgentOwners:
    """The agent -> node table the relay checks every write against."""

    def __init__(self, config: ClusterConfig, clock: Callable[[], float] = time.monotonic) -> None:
        """Start from the agents loaded with the config; watch their directory from here."""
        self.open = config.relay.allow_any_agent
        self._dir = agents_dir_of(config)
        self._clock = clock
        self._lock = threading.Lock()
        self._table = owner_table(config.agents)
        self._roles = role_table(config.agents)
        self._signature = signature(self._dir)
        self._checked_at = clock()

    def owner(self, agent_id: str) -> str | None:
        """The node the topology gives `agent_id`, or None when it names no such agent."""
        self._maybe_reload()
        return self._table.get(agent_id)

    def check(self, node_id: str, agent_id: str, where: str) -> None:
        """403 unless `node_id` may write for `agent_id`."""
        if self.open:
            return
        owner = self.owner(agent_id)
        if owner == node_id:
            return
        self._maybe_reload(force=True)  # the table may be up to a second old: look now
        owner = self._table.get(agent_id)
        if owner == node_id:
            return
        # A stolen token, or topologies that differ: either way the operator should know.
        NODE_REFUSALS.warning(
            "node %s refused (403): writes for agent %s, which the topology gives %s",
            quote(node_id),
            quote(agent_id),
            quote(owner) if owner else "no node",
        )
        if owner is None:
            raise Forbidden(
                f"{where} is {agent_id!r}, an agent the relay's topology does not name; "
                f"node {node_id!r} may write only for its own agents"
            )
        raise Forbidden(
            f"{where} is {agent_id!r}, an agent of node {owner!r}; "
            f"node {node_id!r} may write only for its own agents"
        )

    def may_receive(self, node_id: str, recipient: str) -> bool:
        """Whether mail to `recipient` (one of its agents, or one of their roles) is `node_id`'s."""
        if self.open:
            return True
        self._maybe_reload()
        owner = self._table.get(recipient)
        if owner is not None:  # an agent's id is its own, even where a role is spelled alike
            return owner == node_id
        return recipient in self._roles.get(node_id, frozenset())

    def _maybe_reload(self, *, force: bool = False) -> None:
        if self._dir is None or not (force or self._due()):
            return
        with self._lock:
            if not (force or self._due()):
                return
            self._checked_at = self._clock()
            current = signature(self._dir)
            if current != self._signature:
                self._signature = current
                self._reload(self._dir)

    def _due(self) -> bool:
        return self._clock() - self._checked_at >= RECHECK_SECONDS

    def _reload(self, directory: Path) -> None:
        problems: list[ConfigProblem] = []
        agents = load_agents(directory, problems) if directory.is_dir() else ()
        if not agents and not problems:
            problems.append(ConfigProblem(str(directory), "(directory)", "agent files"))
        if problems:
            # Keep what was known (a refusal costs the node a set-aside), say why once.
            logger.error(
                "agent files in %s do not load; keeping the previous table: %s",
                quote(str(directory)),
                quote(str(ConfigError(problems)), 1000),
            )
            return
        self._table, self._roles = owner_table(agents), role_table(agents)
        logger.info("agent files changed: %d agents known to %s", len(agents), directory)


def own_sender(row: MessageRow, where: str) -> None:
    """403 when a message names a sender other than its agent (a node's agents write only
    as themselves; a forged sender would speak as the operator or another node's agent)."""
    if row.sender is not None and row.sender != row.agent_id:
        raise Forbidden(
            f"{where}.sender: {row.sender!r} is not the message's agent {row.agent_id!r};"
            " an agent writes only as itself"
        )


def warn_about_agents(config: ClusterConfig) -> None:
    """Say at start which agents the relay accepts writes for, loudly when none or any."""
    if config.relay.allow_any_agent:
        logger.warning(
            "--allow-any-agent: any node with a token may write for any agent id"
            " (for tests and benchmarks, never for a cluster)"
        )
    elif not config.agents:
        logger.warning(
            "no agent files (%s): every write is refused (403) until agents/<agent_id>.yaml"
            " name the node each agent runs on",
            agents_dir_of(config) or "embedded defaults; give --config",
        )
    else:
        logger.info(
            "%d agents known from %s; an edit there is followed without a restart",
            len(config.agents),
            agents_dir_of(config),
        )
