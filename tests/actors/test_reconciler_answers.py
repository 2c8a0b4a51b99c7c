"""The reconciler against a relay that answers nonsense: it records a failed comparison,
stays up, and compares again when the relay answers right."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from actors import reconciler as reconciler_module
from actors.board import AgentBoard
from actors.cache import CacheActor
from actors.messages import MarkSynced, Reconcile, Write
from actors.outbox import OutboxActor
from actors.reconciler import ReconcilerActor, RefillRoute
from runtime.core.backoff import Backoff
from runtime.core.digest import bucket_of
from runtime.core.envelope import MessageEnvelope
from runtime.core.relay_client import RelayTarget
from runtime.core.sync_state import SyncState

HEALTH = {"status": "ok", "generation": "00000000000000aa", "instance": "i1"}
BAD_DIGESTS: list[Any] = [
    b"not json",
    {"digests": "x", "next_since": None},
    {"digests": [[1, 2]], "next_since": None},
    {"digests": [[1, 2, "zz"]], "next_since": None},
    {"next_since": None},
    [],
    {"digests": [[1, 2, "00000000000000ff"]], "next_since": "later"},
]


class FakeRelay:
    """/healthz answers HEALTH; /sync/digests answers `self.digests` (bytes or JSON)."""

    def __init__(self) -> None:
        self.digests: Any = {"digests": [], "next_since": None}
        self.status = 200
        self.pages = 0
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = HEALTH if self.path == "/healthz" else relay.digests
                if self.path.startswith("/sync/ids"):  # new ids on every page, for ever
                    relay.pages += 1
                    ids = [f"x{relay.pages:06d}-{i:03d}" for i in range(20)]
                    body = {"ids": ids, "next": ids[-1]}
                data = body if isinstance(body, bytes) else orjson.dumps(body)
                status = 200 if self.path == "/healthz" else relay.status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    fake = FakeRelay()
    yield fake
    fake.stop()


def test_nonsense_from_the_relay_fails_a_comparison_and_nothing_else(
    tmp_path: Path, relay: FakeRelay
) -> None:
    cache = CacheActor.start(tmp_path / "messages.db", agent_id="a1", max_bytes=10**8)
    outbox = OutboxActor.start(
        tmp_path / "outbox.db", agent_id="a1", node_id="n1", cache=cache, target=None,
        backoff=Backoff(0.01, 0.01), sync_state=SyncState(),
    )  # fmt: skip
    board = AgentBoard()
    target = RelayTarget(relay.url, "n1", "token", 2.0)
    reconciler = ReconcilerActor.start(
        routes={"a1": RefillRoute(cache, outbox, board)},
        target=target, window_s=86400.0, interval_s=3600.0,
    )  # fmt: skip
    try:
        env = MessageEnvelope.new(agent_id="a1", node_id="n1", content={"x": 1})
        cache.ask(Write(env))
        cache.ask(MarkSynced((env.msg_id,)))
        for answer in BAD_DIGESTS:
            relay.digests = answer
            reconciler.ask(Reconcile("test"))
            assert board.refill().state == "failed", answer
        relay.digests, relay.status = {"error": "no"}, 403
        reconciler.ask(Reconcile("test"))
        assert board.refill().state == "failed"
        assert "403" in board.refill().last_error
        relay.status = 200
        relay.digests = {"digests": [], "next_since": None}
        reconciler.ask(Reconcile("test"))
        refill = board.refill()
        assert (refill.state, refill.passes) == ("idle", 1)
    finally:
        reconciler.stop()
        outbox.stop()
        cache.stop()


def test_a_relay_listing_ids_without_end_is_cut_off(
    tmp_path: Path, relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_HOUR_IDS ids for one hour the comparison stops: the node's memory holds."""
    monkeypatch.setattr(reconciler_module, "MAX_HOUR_IDS", 100)
    cache = CacheActor.start(tmp_path / "messages.db", agent_id="a1", max_bytes=10**8)
    outbox = OutboxActor.start(
        tmp_path / "outbox.db", agent_id="a1", node_id="n1", cache=cache, target=None,
        backoff=Backoff(0.01, 0.01), sync_state=SyncState(),
    )  # fmt: skip
    board = AgentBoard()
    reconciler = ReconcilerActor.start(
        routes={"a1": RefillRoute(cache, outbox, board)},
        target=RelayTarget(relay.url, "n1", "token", 2.0), window_s=86400.0, interval_s=3600.0,
    )  # fmt: skip
    try:
        env = MessageEnvelope.new(agent_id="a1", node_id="n1", content={"x": 1})
        cache.ask(Write(env))
        cache.ask(MarkSynced((env.msg_id,)))
        hour = bucket_of(env.timestamp)
        relay.digests = {"digests": [[hour, 5, "00000000000000ff"]], "next_since": None}
        reconciler.ask(Reconcile("test"))
        assert board.refill().state == "failed"
        assert "over 100 ids" in board.refill().last_error
        assert relay.pages == 6
    finally:
        reconciler.stop()
        outbox.stop()
        cache.stop()
