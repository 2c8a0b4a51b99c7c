"""The issue's first case on a real `commander-node` process: a message nested 254 levels
deep was accepted (201), then crashed the outbox on every restart until the process gave
up. Now the door refuses it, and the node and its other agents go on, across a restart."""

from __future__ import annotations

from pathlib import Path

import requests

from runtime.node.client import NodeClient
from runtime.node.unix_http import BASE_URL, unix_session
from tests.runtime.test_daemon import start_node

DEEP_254 = b'{"content": ' + b"[" * 254 + b"1" + b"]" * 254 + b"}"


def test_a_254_level_message_is_refused_and_the_node_and_other_agents_go_on(
    tmp_path: Path,
) -> None:
    node = start_node(tmp_path)
    json_body = {"Content-Type": "application/json"}
    a1_socket = unix_session(node.sockets.removeprefix("unix:") + "/a1.sock")
    answer = a1_socket.post(f"{BASE_URL}/agents/a1/messages", data=DEEP_254, headers=json_body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith("content: nesting deeper than 64 levels (at [0]")
    other = NodeClient(node.sockets, "a2")
    assert other.write({"report": "still writing"})
    mine = NodeClient(node.sockets, "a1")
    assert mine.write({"report": "a1 too"})
    assert mine.status()["cache"]["message_count"] == 1  # the refused message left nothing
    for client in (other, mine):
        client.close()
    assert node.terminate() == 0
    again = start_node(tmp_path)
    assert requests.get(f"{again.url}/healthz", timeout=10).json()["status"] == "ok"
    client = NodeClient(again.sockets, "a1")
    assert client.write({"after": "restart"})
    client.close()
    assert again.terminate() == 0
