"""The bounded lag history behind the node sparklines, and the sparkline itself."""

from __future__ import annotations

from relay_app.inbox import history
from relay_app.inbox.charts import sparkline
from relay_app.inbox.history import LagHistory


def status(node: str, at: float, *lags: object) -> dict[str, object]:
    agents = [{"agent_id": f"a{i}", "oldest_unsynced_age_s": lag} for i, lag in enumerate(lags)]
    return {"node_id": node, "received_at": at, "agents": agents}


def test_a_report_counts_once_with_its_worst_agents_lag() -> None:
    lags = LagHistory()
    lags.observe([status("n", 1.0, 3, 9, None, "x", True)])
    lags.observe([status("n", 1.0, 50)])  # the same report read again
    lags.observe([status("n", 0.5, 70)])  # an older one
    lags.observe([status("n", 2.0)])
    assert lags.lags("n") == [9.0, 0.0]


def test_the_history_is_bounded_per_node_and_in_nodes() -> None:
    lags = LagHistory()
    for i in range(history.POINTS + 10):
        lags.observe([status("n", float(i), i)])
    assert lags.lags("n")[0] == 10.0
    assert len(lags.lags("n")) == history.POINTS
    lags.observe([status(f"other-{i}", 1.0, 1) for i in range(history.MAX_NODES + 5)])
    assert lags.lags(f"other-{history.MAX_NODES + 4}") == []


def test_a_sparkline_needs_two_points_and_scales_to_its_maximum() -> None:
    assert "no history yet" in sparkline([4.0], "lag")
    svg = sparkline([0.0, 10.0], "lag <b>", width=100, height=24)
    assert 'points="0.0,22.0 100.0,2.0"' in svg
    assert "lag &lt;b&gt;: latest 10, max 10" in svg
    assert "style=" not in svg  # the CSP allows no inline style
