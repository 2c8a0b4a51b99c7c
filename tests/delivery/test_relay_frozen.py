"""A node answers locally within its budget while its relay is frozen (SIGSTOP)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from runtime.node.client import NodeAdmin, NodeClient
from tests.delivery.harness import relay_get
from tests.delivery.procs import metric, relay_and_node_dirs, scrape, timed_get
from tests.support import wait_for

BUDGET = 1.0
# Longer than the HTTP timeout (5 s) and the status report interval (5 s) together.
FROZEN_FOR = 12.0


def test_status_metrics_healthz_and_writes_answer_within_a_second_while_the_relay_is_frozen(
    tmp_path: Path,
) -> None:
    with relay_and_node_dirs(tmp_path) as procs:
        relay = procs.start_relay()
        node = procs.start_node()
        a1, a2 = (
            NodeClient(node.sockets, "a1", timeout=5),
            NodeClient(node.sockets, "a2", timeout=5),
        )
        admin = NodeAdmin(node.sockets, timeout=10)
        first = a1.write("before the freeze")
        wait_for(lambda: relay_get(procs.relay_url, first) is not None, timeout=10)
        written: list[str] = []
        slowest: dict[str, float] = {}
        os.kill(relay.proc.pid, signal.SIGSTOP)
        try:
            end = time.monotonic() + FROZEN_FOR
            while time.monotonic() < end:
                for path in ("/metrics", "/healthz"):
                    took, response = timed_get(node.url + path)
                    assert response.status_code == 200, (path, response.text)
                    slowest[path] = max(slowest.get(path, 0.0), took)
                for path, call in (("/status", admin.status), ("/agents/a1/status", a1.status)):
                    start = time.monotonic()
                    call()
                    slowest[path] = max(slowest.get(path, 0.0), time.monotonic() - start)
                for client in (a1, a2):
                    start = time.monotonic()
                    written.append(client.write({"during": "freeze"}))
                    slowest["write"] = max(slowest.get("write", 0.0), time.monotonic() - start)
                time.sleep(0.1)
            samples = scrape(node.url)
        finally:
            os.kill(relay.proc.pid, signal.SIGCONT)
        print(f"slowest answers while frozen: {slowest}")
        assert max(slowest.values()) < BUDGET, slowest
        assert metric(samples, "sync_lag_seconds", node="node-a") > 1.0  # it did wait
        assert metric(samples, "outbox_queue_depth", node="node-a", agent="a1") > 0
        for msg_id in written:
            wait_for(lambda m=msg_id: relay_get(procs.relay_url, m) is not None, timeout=60)
        wait_for(lambda: metric(scrape(node.url), "sync_lag_seconds", node="node-a") == 0, 30)
        a1.close()
        a2.close()
        assert node.terminate() == 0
