"""Node colours and the dashboard's alerts (sync lag, a node's cache full, storage critical)."""

from __future__ import annotations

from relay_app.inbox.nodes import alerts, node_health

NOW = 1_700_000_000.0


def report(age: float = 0, **agent: object) -> dict[str, object]:
    fields = {"agent_id": "agent-1", "cache_bytes_used": 10, "cache_max_bytes": 100,
              "oldest_unsynced_age_s": 0, "failed_batches": 0, "last_sync_at": NOW - 1}  # fmt: skip
    fields.update(agent)
    return {"node_id": "laptop", "received_at": NOW - age, "agents": [fields]}


def colour(status: dict[str, object]) -> str:
    return node_health([status], NOW)[0].color


def test_a_fresh_report_with_no_lag_is_green() -> None:
    assert colour(report()) == "green"


def test_lag_and_silence_turn_a_node_yellow_then_red() -> None:
    assert colour(report(oldest_unsynced_age_s=120)) == "yellow"
    assert colour(report(oldest_unsynced_age_s=4000)) == "red"
    assert colour(report(age=45)) == "yellow"
    assert colour(report(age=600)) == "red"


def test_a_full_cache_is_red_and_raises_node_x_cache_full() -> None:
    nodes = node_health([report(cache_bytes_used=99)], NOW)
    assert nodes[0].color == "red"
    titles = [a.title for a in alerts(nodes, free_bytes=None, floor=0)]
    assert titles == ["Node laptop cache full"]


def test_sync_lag_and_htpc_storage_critical_alerts() -> None:
    nodes = node_health([report(oldest_unsynced_age_s=300)], NOW)
    found = alerts(nodes, free_bytes=100 * 1024**2, floor=256 * 1024**2)
    assert [a.title for a in found] == ["HTPC storage critical", "Sync lag"]
    assert alerts(node_health([report()], NOW), free_bytes=50 * 1024**3, floor=0) == []


def test_a_refilling_node_is_yellow_and_says_so() -> None:
    """Refilling is worth seeing, not alarming: yellow, with the reason and the agent's state."""
    node = node_health([report(refill_state="refilling", refilled=40)], NOW)[0]
    assert node.color == "yellow"
    assert "refilling what the relay lacks" in node.reasons
    assert node.agents[0].refilling
    assert colour(report(refill_state="idle", refilled=40)) == "green"


def test_messages_no_node_can_send_again_turn_the_node_red() -> None:
    """The relay lacks them and the node evicted them: an operator must know."""
    node = node_health([report(refill_state="idle", unrefillable=7)], NOW)[0]
    assert node.color == "red"
    assert "7 messages the relay lacks are no longer held here" in node.reasons
