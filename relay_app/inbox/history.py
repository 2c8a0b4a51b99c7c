"""A bounded, in-memory history of each node's reported sync lag, for the node sparklines.

The store keeps only a node's last report (`node_status`, replaced on every report), so the
relay remembers the last POINTS reports per node itself. It starts empty at a restart: a
sparkline is a glance at the recent trend, not a record (Prometheus keeps that).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

POINTS = 60  # an hour at one report a minute, five minutes at the default 5 s
MAX_NODES = 1000  # a bound on memory even if node ids churn


class LagHistory:
    """The last POINTS (received_at, lag seconds) of each node; thread-safe."""

    def __init__(self) -> None:
        """Empty; filled by `observe`."""
        self._lock = threading.Lock()
        self._points: dict[str, deque[tuple[float, float]]] = {}

    def observe(self, statuses: Iterable[dict[str, Any]]) -> None:
        """Add each node's report if it is newer than the last one seen."""
        with self._lock:
            for status in statuses:
                self._add(status)

    def _add(self, status: dict[str, Any]) -> None:
        node_id = str(status.get("node_id"))
        received = status.get("received_at")
        if not isinstance(received, int | float):
            return
        points = self._points.get(node_id)
        if points is None:
            if len(self._points) >= MAX_NODES:
                return
            points = self._points[node_id] = deque(maxlen=POINTS)
        if points and points[-1][0] >= received:
            return
        points.append((float(received), _lag(status.get("agents") or ())))

    def lags(self, node_id: str) -> list[float]:
        """The node's recorded lags, oldest first."""
        with self._lock:
            return [lag for _, lag in self._points.get(node_id, ())]


def _lag(agents: Iterable[Any]) -> float:
    """The node's lag: its worst agent's oldest unsynced message age (0 when none)."""
    ages = [0.0]
    for agent in agents:
        age = agent.get("oldest_unsynced_age_s") if isinstance(agent, dict) else None
        if isinstance(age, int | float) and not isinstance(age, bool):
            ages.append(float(age))
    return max(ages)
