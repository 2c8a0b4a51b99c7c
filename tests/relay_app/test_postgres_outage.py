"""A relay whose PostgreSQL goes away answers 503, never 500, holds no worker for long,
and serves again once the server is back, with nothing acknowledged lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay_app.server import RelayServer
from tests.relay_app.helpers import NODE_A, NodeClient, make_config, message
from tests.support.postgres import ThrowawayPostgres

BACK_WITHIN_S = 20.0


@pytest.fixture
def server(postgres_server: ThrowawayPostgres) -> Iterator[ThrowawayPostgres]:
    """A server of this test's own, to stop under a running relay; durable, since an
    immediate stop of a server without fsync may lose what it had committed."""
    own = ThrowawayPostgres(durable=True).start()
    yield own
    own.stop()


def test_reads_and_writes_answer_503_while_the_database_is_down_then_recover(
    server: ThrowawayPostgres, tmp_path: Path
) -> None:
    relay = RelayServer(
        make_config(tmp_path / "relay", store=server.create_database()), host="127.0.0.1", port=0
    ).start()
    node = NodeClient(relay.url, NODE_A)
    try:
        first, second = message(), message()
        assert node.send(first).status_code == 200
        server.shutdown("immediate")
        started = time.monotonic()
        answers = [
            node.send(second).status_code,
            node.get("/query/messages").status_code,
            node.get(f"/query/messages/{first.msg_id}").status_code,
            node.get("/sync/mail", params={"for": "agent-1"}).status_code,
        ]
        assert answers == [503, 503, 503, 503]
        assert time.monotonic() - started < 20  # each waits at most the pool's few seconds
        server.launch(server.port, server.settings)
        deadline = time.monotonic() + BACK_WITHIN_S
        while (status := node.send(second).status_code) != 200:
            assert status == 503
            assert time.monotonic() < deadline, "the relay did not recover"
            time.sleep(0.2)
        # Reads come back as the pool reconnects (it backs off while the server is away).
        while (page := node.get("/query/messages")).status_code != 200:
            assert page.status_code == 503
            assert time.monotonic() < deadline, "reads did not recover"
            time.sleep(0.2)
        assert sorted(m["msg_id"] for m in page.json()["messages"]) == sorted(
            [first.msg_id, second.msg_id]
        )
    finally:
        node.close()
        relay.stop()
