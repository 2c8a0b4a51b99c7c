"""Node health for the inbox: green / yellow / red per node, and the dashboard's alerts.

A node's colour comes from its reported sync lag (the age of its oldest message not yet
acknowledged by the relay), the age of its last report (a silent node turns red), full
caches and failed batches. Thresholds follow config/prometheus/alerts.yml.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

LAG_YELLOW_S = 60.0
LAG_RED_S = 1800.0
REPORT_YELLOW_S = 30.0  # six missed reports at the default 5 s interval
REPORT_RED_S = 120.0
CACHE_YELLOW = 0.90
CACHE_FULL = 0.98
HTPC_CRITICAL_BYTES = 1024**3
COLORS = ("green", "yellow", "red")


@dataclass(frozen=True, slots=True)
class AgentHealth:
    """One agent's cache and sync figures from its node's last report."""

    agent_id: str
    used: float | None
    limit: float | None
    outbox: float | None
    failed: float | None
    lag_s: float | None
    last_sync_at: float | None
    refill_state: str | None = None  # refilling, idle, comparing, failed, waiting
    refilled: float | None = None
    unrefillable: float | None = None

    @property
    def refilling(self) -> bool:
        """Whether the node is sending again what the relay lacks of this agent."""
        return self.refill_state in ("refilling", "comparing")

    @property
    def fraction(self) -> float | None:
        """Cache used / limit, when both are known."""
        if self.used is None or not self.limit:
            return None
        return self.used / self.limit

    @property
    def full(self) -> bool:
        """Whether the cache is (practically) full."""
        return (self.fraction or 0.0) >= CACHE_FULL


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """One node: its colour, why, and its agents."""

    node_id: str
    color: str
    reasons: tuple[str, ...]
    report_age_s: float
    last_sync_at: float | None
    lag_s: float | None
    agents: tuple[AgentHealth, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Alert:
    """A banner on the inbox: its fixed title first, then what it is about."""

    title: str
    detail: str
    severity: str  # "yellow" or "red"


def node_health(statuses: Iterable[dict[str, Any]], now: float) -> list[NodeHealth]:
    """Classify every node's last report."""
    return [_one(status, now) for status in statuses]


def _one(status: dict[str, Any], now: float) -> NodeHealth:
    agents = tuple(_agent(a) for a in status.get("agents") or ())
    received = status.get("received_at")
    age = max(0.0, now - (received if isinstance(received, int | float) else 0.0))
    lags = [a.lag_s for a in agents if a.lag_s is not None]
    lag = max(lags) if lags else None
    syncs = [a.last_sync_at for a in agents if a.last_sync_at is not None]
    lost = sum(a.unrefillable or 0 for a in agents)
    level, reasons = 0, []
    checks: list[tuple[bool, int, str]] = [
        (age >= REPORT_RED_S, 2, f"no report for {duration(age)}"),
        (REPORT_YELLOW_S <= age < REPORT_RED_S, 1, f"last report {duration(age)} ago"),
        (lag is not None and lag >= LAG_RED_S, 2, f"sync lag {duration(lag or 0)}"),
        (lag is not None and LAG_YELLOW_S <= lag < LAG_RED_S, 1, f"sync lag {duration(lag or 0)}"),
        (any(a.full for a in agents), 2, "cache full"),
        (
            any(CACHE_YELLOW <= (a.fraction or 0) < CACHE_FULL for a in agents),
            1,
            "cache nearly full",
        ),
        (any((a.failed or 0) > 0 for a in agents), 1, "failed batches set aside"),
        (any(a.refilling for a in agents), 1, "refilling what the relay lacks"),
        (lost > 0, 2, f"{lost:.0f} messages the relay lacks are no longer held here"),
    ]
    for failed, severity, reason in checks:
        if failed:
            level = max(level, severity)
            reasons.append(reason)
    return NodeHealth(
        node_id=str(status.get("node_id")),
        color=COLORS[level],
        reasons=tuple(reasons),
        report_age_s=age,
        last_sync_at=max(syncs) if syncs else None,
        lag_s=lag,
        agents=agents,
    )


def _agent(data: dict[str, Any]) -> AgentHealth:
    def num(key: str) -> float | None:
        value = data.get(key)
        return float(value) if isinstance(value, int | float) else None

    return AgentHealth(
        agent_id=str(data.get("agent_id")),
        used=num("cache_bytes_used"),
        limit=num("cache_max_bytes"),
        outbox=num("outbox_depth"),
        failed=num("failed_batches"),
        lag_s=num("oldest_unsynced_age_s"),
        last_sync_at=num("last_sync_at"),
        refill_state=state if isinstance(state := data.get("refill_state"), str) else None,
        refilled=num("refilled"),
        unrefillable=num("unrefillable"),
    )


def alerts(nodes: Iterable[NodeHealth], free_bytes: int | None, floor: int) -> list[Alert]:
    """The dashboard's alerts: Sync lag, Node X cache full, HTPC storage critical."""
    found: list[Alert] = []
    if free_bytes is not None and free_bytes < max(HTPC_CRITICAL_BYTES, 2 * floor):
        detail = f"{size(free_bytes)} free on the relay's data directory (writes stop below "
        found.append(Alert("HTPC storage critical", detail + f"{size(floor)})", "red"))
    for node in nodes:
        for agent in node.agents:
            if agent.full:
                detail = f"agent {agent.agent_id}: {size(agent.used)} of {size(agent.limit)}"
                found.append(Alert(f"Node {node.node_id} cache full", detail, "red"))
        silent = node.report_age_s >= REPORT_RED_S
        lagging = node.lag_s is not None and node.lag_s >= LAG_YELLOW_S
        if silent or lagging:
            detail = f"node {node.node_id}: " + "; ".join(
                r for r in node.reasons if "lag" in r or "report" in r
            )
            severity = "red" if silent or (node.lag_s or 0) >= LAG_RED_S else "yellow"
            found.append(Alert("Sync lag", detail, severity))
    return found


def duration(seconds: float) -> str:
    """A short human duration: 45 s, 12 min, 3.5 h, 2.0 d."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def size(value: float | None) -> str:
    """A short human size in binary units."""
    if value is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
