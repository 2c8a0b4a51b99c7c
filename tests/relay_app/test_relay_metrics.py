"""The relay's /metrics: valid exposition, htpc_write_throughput, refusals, node report ages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from relay_app.metrics import route_of
from relay_app.server import RelayServer
from runtime.core.envelope import MessageEnvelope
from tests.support import TOKENS, cluster

HEADERS = {"X-Commander-Node": "node-a", "Authorization": f"Bearer {TOKENS['node-a']}"}


def scrape(url: str) -> dict[str, Any]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict[str, Any], name: str, **labels: str) -> float:
    """The value of the first sample of `name` with these labels (not its _created twin)."""
    for sample in families[name].samples:
        matches = all(sample.labels.get(k) == v for k, v in labels.items())
        if matches and not sample.name.endswith("_created"):
            return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}")


def test_ingest_refusals_and_reports_show_in_metrics(tmp_path: Path) -> None:
    free = {"bytes": 10**12}
    config = cluster(tmp_path / "relay", min_free_bytes=10**6)
    with RelayServer(config, host="127.0.0.1", port=0, free_bytes=lambda: free["bytes"]) as relay:
        env = MessageEnvelope.new(agent_id="a1", node_id="node-a", content={"x": 1})
        body = env.to_wire()
        ok = requests.post(f"{relay.url}/sync/message", json=body, headers=HEADERS, timeout=5)
        assert ok.status_code == 200
        report = {"node_id": "node-a", "sent_at": 1.0, "agents": []}
        requests.post(f"{relay.url}/sync/status", json=report, headers=HEADERS, timeout=5)
        free["bytes"] = 4096
        refused = requests.post(f"{relay.url}/sync/message", json=body, headers=HEADERS, timeout=5)
        assert refused.status_code == 507
        families = scrape(relay.url)
        assert value(families, "htpc_write_throughput_bytes") > 0
        assert value(families, "commander_relay_writes_refused", reason="disk_full") == 1
        assert value(families, "commander_relay_messages_stored") == 1
        assert value(families, "commander_relay_requests", route="/sync/message", status="507") == 1
        assert value(families, "commander_relay_node_last_report_age_seconds", node="node-a") >= 0
        # The figure the relay's one free-space gate refused by, not a second reading.
        assert value(families, "commander_relay_free_disk_bytes") == 4096
        assert "commander_relay_request_seconds" in families


def test_routes_are_bounded_labels() -> None:
    assert route_of("/query/messages/0190-abc") == "/query/messages/*"
    assert route_of("/sync/messages") == "/sync/messages"
    assert route_of("/../../etc/passwd") == "other"


def test_messages_stored_and_cpu_seconds_give_the_cost_of_a_message(tmp_path: Path) -> None:
    """Messages newly stored count once (a repeat stores nothing) beside the process's CPU."""
    with RelayServer(cluster(tmp_path / "relay"), host="127.0.0.1", port=0) as relay:
        first = MessageEnvelope.new(agent_id="a1", node_id="node-a", content={"x": 1}).to_wire()
        batch = {
            "batch_id": "b-1",
            "node_id": "node-a",
            "messages": [
                first,
                *(
                    MessageEnvelope.new(agent_id="a1", node_id="node-a", content={"n": n}).to_wire()
                    for n in range(3)
                ),
            ],
        }
        for url, body in ((f"{relay.url}/sync/message", first),) * 2 + (
            (f"{relay.url}/sync/messages", batch),
        ):
            assert requests.post(url, json=body, headers=HEADERS, timeout=5).status_code == 200
        families = scrape(relay.url)
        assert value(families, "commander_relay_messages_ingested") == 4
        assert value(families, "process_cpu_seconds") > 0
        assert value(families, "process_resident_memory_bytes") > 0
