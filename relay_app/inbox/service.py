"""The inbox's parts in one place: reader, writer, sessions, logins, actions, node health."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay_app.diskspace import SpaceGate
from relay_app.inbox.actions import Actions
from relay_app.inbox.activity import THROUGHPUT_BUCKETS
from relay_app.inbox.charts import sparkline
from relay_app.inbox.forwarded import Proxies
from relay_app.inbox.history import LagHistory
from relay_app.inbox.login import Logins
from relay_app.inbox.nodes import Alert, NodeHealth, alerts, node_health
from relay_app.inbox.reader import InboxReader
from relay_app.inbox.sessions import Sessions
from relay_app.inbox.throttle import LoginThrottle, ThrottlePolicy
from relay_app.inbox.writer import InboxWriter
from relay_app.ingest import Ingest
from relay_app.passwords import operator_password_hash
from relay_app.store import MessageStore
from runtime.core.config import ClusterConfig


class Inbox:
    """Everything the inbox routes share; `close()` stops the writer and closes readers."""

    def __init__(
        self,
        store: MessageStore,
        config: ClusterConfig,
        ingest: Ingest,
        *,
        gate: SpaceGate,
        clock: Callable[[], float] = time.time,
        throttle: ThrottlePolicy | None = None,
    ) -> None:
        """Open the inbox over the store; ConfigError when the operator password file is
        missing or broken."""
        settings = config.relay
        password_hash = operator_password_hash(config)  # first: a ConfigError opens nothing
        self.store = store
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        # Parts read the clock through this object, so tests can move time for all of them.
        self.clock = clock
        now = self.now
        self.gate = gate  # the relay's one gate, shared with its node API
        self.reader = InboxReader(store.inbox, now)
        self.writer = InboxWriter(store, ingest)
        self.lag_history = LagHistory()
        self.proxies = Proxies(settings.trusted_proxies)
        self.sessions = Sessions(store.sessions, ingest, now)
        self.logins = Logins(
            settings.operator_user, password_hash, self.sessions, LoginThrottle(throttle, now)
        )
        self.actions = Actions(
            self.reader, self.writer, ingest, self.gate, settings.execute_webhook, now
        )

    def now(self) -> float:
        """The time by `self.clock`, read late (tests replace the clock)."""
        return self.clock()

    def nodes(self) -> list[NodeHealth]:
        """Every node's health from its last report (each report also joins the history)."""
        statuses = self.store.node_statuses()
        self.lag_history.observe(statuses)
        return node_health(statuses, self.clock())

    def sparks(self, nodes: list[NodeHealth]) -> dict[str, tuple[str, str]]:
        """node_id -> (sync lag sparkline, throughput sparkline), as inline SVG."""
        rates = self.reader.throughput()
        found = {}
        for node in nodes:
            lags = self.lag_history.lags(node.node_id)
            rate = rates.get(node.node_id)
            counts = list(rate.counts) if rate is not None else [0] * THROUGHPUT_BUCKETS
            found[node.node_id] = (
                sparkline(lags, "sync lag (s) per report", " s"),
                sparkline(counts, "messages per 5 min, last hour"),
            )
        return found

    def alerts(self, nodes: list[NodeHealth]) -> list[Alert]:
        """The dashboard alerts for these nodes and the relay's own disk."""
        try:
            free: int | None = self.gate.free()
        except OSError:
            free = None
        return alerts(nodes, free, self.gate.floor)

    def unread(self) -> dict[str, Any]:
        """The badge's figures."""
        return {"unread": self.reader.unread_count()}

    def close(self) -> None:
        """Stop the password checks and the indexer (the store closes its own readers)."""
        self.logins.close()
        self.writer.stop()
