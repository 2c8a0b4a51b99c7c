"""The node's mail store and `AgentHandle.receive` over it, on real SQLite files."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from runtime.core.envelope import MessageEnvelope
from runtime.node.mail_store import MailStore, mail_path
from runtime.node.node import Node, NodeOptions
from tests.runtime.test_node import NODE, cluster


def _mail(n: int, recipient: str = "a1") -> dict[str, Any]:
    message = MessageEnvelope.new(agent_id="b1", node_id="node-b", content={"n": n})
    return {**message.to_wire(), "recipient": recipient, "received_at": 1.0, "status": "unread"}


def test_mail_and_cursors_survive_a_reopen_and_a_repeat_is_stored_once(tmp_path: Path) -> None:
    store = MailStore(mail_path(tmp_path))
    first = [_mail(0), _mail(1, "coder"), _mail(2, "a2")]
    assert store.store(first, 7) == 3
    assert store.store(first[:1], 8) == 0  # the relay handed one out again
    store.ack("a1", 1)
    store.close()
    again = MailStore(mail_path(tmp_path))
    assert again.relay_cursor() == 8
    assert again.acked("a1") == 1
    assert [m["content"] for _, m in again.after(("a1", "coder"), 1, 10)] == [{"n": 1}]
    again.ack("a1", 0)  # never backwards
    again.ack("a2", 99)  # never past what exists
    assert (again.acked("a1"), again.acked("a2")) == (1, 3)
    again.close()


def test_receive_waits_for_mail_and_the_next_call_acknowledges_the_batch(tmp_path: Path) -> None:
    with Node(cluster("a1"), NODE, NodeOptions(data_dir=str(tmp_path))) as node:
        agent = node.agent("a1")
        assert node.mail is not None
        mail = node.mail
        start = time.monotonic()
        assert agent.receive(timeout=0.2) == []
        assert time.monotonic() - start >= 0.2
        later = threading.Timer(0.2, lambda: mail.store([_mail(1), _mail(2, "coder")], 2))
        later.start()
        got = agent.receive(timeout=5)
        assert [m.content for m in got] == [{"n": 1}, {"n": 2}]  # to its id and its role
        assert time.monotonic() - start < 2.0
        assert mail.acked("a1") == 0
        mail.store([_mail(3)], 3)
        rest = agent.receive(timeout=1)
        assert [m.content for m in rest] == [{"n": 3}]
        assert mail.acked("a1") == 2  # asking again acknowledged the first batch
        agent.ack()
        assert mail.acked("a1") == 3
