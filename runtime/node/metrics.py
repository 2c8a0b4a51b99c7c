"""The node's Prometheus metrics: one explicit registry, state read at scrape time.

These four names are a contract with existing dashboards and alert rules and never
change: cache_bytes_used{node,agent}, outbox_queue_depth{node,agent},
sync_lag_seconds{node}, sync_failures_total{node}; the rest is commander_*.
htpc_write_throughput_bytes is the relay's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from actors.metrics import AgentFigures, refilling

if TYPE_CHECKING:
    from runtime.node.node import Node

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)


class NodeCollector(Collector):
    """Reads every agent's figures at each scrape, never waiting on the relay."""

    def __init__(self, node: Node, clock: Callable[[], float] = time.time) -> None:
        self._node = node
        self._clock = clock

    def collect(self) -> Iterator[Any]:
        """Yield the metric families."""
        node = self._node.node_id
        figures = self._node.figures()
        yield from _cache_families(node, figures)
        yield from _sync_families(node, figures, self._clock())
        yield from _agent_families(self._node, figures)
        yield from _refill_families(node, figures)
        restarts = CounterMetricFamily(
            "commander_actor_restarts",
            "Restarts of each supervised actor.",
            labels=["node", "actor"],
        )
        for name, count in self._node.restart_counts().items():
            restarts.add_metric([node, name], count)
        yield restarts
        up = GaugeMetricFamily(
            "commander_node_healthy",
            "1 while the node's own actors are alive and every agent is supervised.",
            labels=["node"],
        )
        up.add_metric([node], 1.0 if self._node.healthy() else 0.0)
        yield up


def _agent_families(node: Node, figures: tuple[AgentFigures, ...]) -> Iterator[Any]:
    labels = ["node", "agent"]
    up = GaugeMetricFamily(
        "commander_agent_up",
        "0 while the agent's actors are down, waiting to be started again.",
        labels=labels,
    )
    downs = CounterMetricFamily(
        "commander_agent_down",
        "Times the agent's actors crashed past the restart intensity and went down.",
        labels=labels,
    )
    for fig in figures:
        up.add_metric([node.node_id, fig.agent_id], 0.0 if fig.state == "down" else 1.0)
        times = node.actors[fig.agent_id].supervisor.times_down
        downs.add_metric([node.node_id, fig.agent_id], times)
    yield from (up, downs)


def _refill_families(node: str, figures: tuple[AgentFigures, ...]) -> Iterator[Any]:
    labels = ["node", "agent"]
    refilled = CounterMetricFamily(
        "commander_refill_messages",
        "Messages the relay lacked that this node sent again (refill).",
        labels=labels,
    )
    compared = CounterMetricFamily(
        "commander_refill_buckets_compared",
        "Hours of messages compared with the relay.",
        labels=labels,
    )
    exchanged = CounterMetricFamily(
        "commander_refill_digest_bytes",
        "Bytes of digests and id lists received from the relay to compare.",
        labels=labels,
    )
    last = GaugeMetricFamily(
        "commander_refill_last_reconcile_timestamp_seconds",
        "When the last comparison with the relay ended (0: none yet).",
        labels=labels,
    )
    lacking = GaugeMetricFamily(
        "commander_refill_unrefillable_messages",
        "Messages the relay lacks that this node no longer holds, at the last full comparison.",
        labels=labels,
    )
    active = GaugeMetricFamily(
        "commander_refill_active",
        "1 while the agent compares with the relay or its resends still wait in the outbox.",
        labels=labels,
    )
    cpu = GaugeMetricFamily(
        "commander_refill_last_cpu_seconds",
        "The node process's CPU time during the agent's last comparison.",
        labels=labels,
    )
    for fig in figures:
        at, r = [node, fig.agent_id], fig.refill
        refilled.add_metric(at, r.refilled)
        compared.add_metric(at, r.buckets_compared)
        exchanged.add_metric(at, r.digest_bytes)
        last.add_metric(at, r.last_at or 0.0)
        lacking.add_metric(at, r.unrefillable)
        active.add_metric(at, 1.0 if refilling(r, fig.outbox) else 0.0)
        cpu.add_metric(at, r.last_cpu_s)
    yield from (refilled, compared, exchanged, last, lacking, active, cpu)


def _cache_families(node: str, figures: tuple[AgentFigures, ...]) -> Iterator[Any]:
    labels = ["node", "agent"]
    used = GaugeMetricFamily("cache_bytes_used", "Bytes of the local cache in use.", labels=labels)
    limit = GaugeMetricFamily(
        "commander_cache_max_bytes", "Local cache limit in bytes.", labels=labels
    )
    full = CounterMetricFamily(
        "commander_cache_full_events", "Writes refused because the cache was full.", labels=labels
    )
    depth = GaugeMetricFamily(
        "outbox_queue_depth", "Messages waiting in the outbox.", labels=labels
    )
    failed = GaugeMetricFamily(
        "commander_outbox_failed_batches", "Batches the relay rejected, set aside.", labels=labels
    )
    aside = GaugeMetricFamily(
        "commander_set_aside_messages",
        "Stored messages no stage can process, set aside until an operator retries them.",
        labels=labels,
    )
    for fig in figures:
        if fig.cache is not None:
            used.add_metric([node, fig.agent_id], fig.cache.bytes_used)
            limit.add_metric([node, fig.agent_id], fig.cache.max_bytes)
            full.add_metric([node, fig.agent_id], fig.cache.refused_writes)
            aside.add_metric([node, fig.agent_id], fig.cache.set_aside_count)
        if fig.outbox is not None:
            depth.add_metric([node, fig.agent_id], fig.outbox.pending_messages)
            failed.add_metric([node, fig.agent_id], fig.outbox.failed_batches)
    yield from (used, limit, full, depth, failed, aside)


def _sync_families(node: str, figures: tuple[AgentFigures, ...], now: float) -> Iterator[Any]:
    oldest = [f.cache.oldest_unsynced_ts for f in figures if f.cache and f.cache.oldest_unsynced_ts]
    lag = GaugeMetricFamily(
        "sync_lag_seconds",
        "Age of the oldest message not yet acknowledged by the relay.",
        labels=["node"],
    )
    lag.add_metric([node], max(0.0, now - min(oldest)) if oldest else 0.0)
    failures = CounterMetricFamily(
        "sync_failures", "Failed attempts to reach the relay.", labels=["node"]
    )
    failures.add_metric([node], sum(f.sync.failures_total for f in figures))
    acked = CounterMetricFamily(
        "commander_sync_acked_messages", "Messages acknowledged by the relay.", labels=["node"]
    )
    acked.add_metric([node], sum(f.sync.acked_messages_total for f in figures))
    yield from (lag, failures, acked)


class NodeMetrics:
    """The registry of one node: the collector plus the write latency histogram."""

    def __init__(self, node: Node) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(node))
        self.write_latency = Histogram(
            "commander_write_latency_seconds",
            "Time for an agent's write to commit locally.",
            ["node", "agent"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        for agent_id, handle in node.agents.items():
            handle.latency_observer = self.write_latency.labels(node.node_id, agent_id).observe

    def render(self) -> bytes:
        """Return the exposition in Prometheus text format."""
        return generate_latest(self.registry)
