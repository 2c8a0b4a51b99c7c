"""Agents belong to nodes: a node's token writes only for the agents the topology gives it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from relay_app.errors import Forbidden
from relay_app.owners import AgentOwners
from runtime.core.config import load_config
from runtime.core.token_files import token_sha256 as sha
from tests.relay_app.helpers import (
    NODE_A,
    TOKENS,
    NodeClient,
    batch,
    message,
    row_counts,
    write_config,
)
from tests.support import Daemon, wait_for

NOTHING = {"messages": 0, "batches": 0, "node_status": 0, "files": 0, "files_on_disk": 0}


@pytest.fixture
def node_a(relay_process: Daemon) -> Iterator[NodeClient]:
    """node-a talking to a relay process whose topology gives it agent-1 and agent-2."""
    client = NodeClient(relay_process.url, NODE_A)
    yield client
    client.close()


def status(*agents: str) -> dict[str, object]:
    """A /sync/status body of node-a naming `agents`."""
    return {"node_id": NODE_A, "sent_at": 1.0, "agents": [{"agent_id": a} for a in agents]}


def upload(client: NodeClient, agent_id: str) -> requests.Response:
    """POST /sync/files for `agent_id`."""
    return client.post(
        "/sync/files",
        data={"agent_id": agent_id},
        files={"file": ("r.bin", b"x" * 1000, "application/octet-stream")},
    )


@pytest.mark.parametrize(
    ("agent_id", "said"),
    [("agent-b1", "an agent of node 'node-b'"), ("ghost", "the relay's topology does not name")],
)
def test_a_node_cannot_write_for_another_nodes_agent_or_one_that_exists_nowhere(
    relay_process: Daemon, node_a: NodeClient, tmp_path: Path, agent_id: str, said: str
) -> None:
    own = message()
    refused = [
        node_a.send(message(agent_id=agent_id)),
        node_a.send_batch(batch([own, message(agent_id=agent_id)], "batch-1")),
        node_a.post("/sync/status", json=status("agent-1", agent_id)),
        upload(node_a, agent_id),
    ]
    for response in refused:
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert repr(agent_id) in error
        assert said in error
        assert "node 'node-a'" in error
    assert "messages[1].agent_id" in refused[1].json()["error"]
    assert row_counts(tmp_path / "data") == NOTHING  # not even the batch's own message

    log = relay_process.log_path.read_text()
    assert f"node 'node-a' refused (403): writes for agent {agent_id!r}" in log
    assert node_a.send(own).status_code == 200
    assert node_a.post("/sync/status", json=status("agent-1", "agent-2")).status_code == 200
    assert upload(node_a, "agent-2").status_code == 200


def relay_without_config(tmp_path: Path, *flags: str) -> Daemon:
    """`commander-relay serve` on its embedded defaults, node-a's token from a hashes file."""
    hashes = tmp_path / "hashes.yaml"
    hashes.write_text(yaml.safe_dump({NODE_A: sha(TOKENS[NODE_A])}))
    args = ["-m", "relay_app.cli", "serve", "--host", "127.0.0.1", "--port", "0",
            "--data-dir", str(tmp_path / "data"), "--token-hashes-file", str(hashes),
            *flags]  # fmt: skip
    return Daemon(args, tmp_path / "relay.log")


def test_on_its_embedded_defaults_the_relay_refuses_every_agent_and_says_so(
    tmp_path: Path,
) -> None:
    relay = relay_without_config(tmp_path)
    client = NodeClient(relay.url, NODE_A)
    try:
        assert client.send(message()).status_code == 403
    finally:
        client.close()
        assert relay.terminate() == 0
    assert "no agent files" in (tmp_path / "relay.log").read_text()


def test_the_open_mode_is_asked_for_by_a_flag_and_logged(tmp_path: Path) -> None:
    relay = relay_without_config(tmp_path, "--allow-any-agent")
    client = NodeClient(relay.url, NODE_A)
    try:
        assert client.send(message(agent_id="anyone")).status_code == 200
    finally:
        client.close()
        assert relay.terminate() == 0
    assert "--allow-any-agent: any node with a token" in (tmp_path / "relay.log").read_text()


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def agent_file(root: Path, agent_id: str, node_id: str) -> None:
    """Write agents/<agent_id>.yaml."""
    text = f'agent_id: "{agent_id}"\nrole: "coder"\nnode_id: "{node_id}"\n'
    (root / "agents" / f"{agent_id}.yaml").write_text(text)


def test_the_owner_table_follows_the_agent_files_and_keeps_itself_through_a_bad_deploy(
    tmp_path: Path,
) -> None:
    root = write_config(tmp_path / "config").parent
    clock = Clock()
    owners = AgentOwners(load_config(root), clock=clock)

    def owner_after(seconds: float, agent_id: str) -> str | None:
        clock.now += seconds
        return owners.owner(agent_id)

    agent_file(root, "agent-3", NODE_A)
    assert owner_after(0.5, "agent-3") is None  # looked at no more than once a second...
    owners.check(NODE_A, "agent-3", "message.agent_id")  # ...and before refusing anyone

    agent_file(root, "agent-3", "node-b")
    assert owner_after(1.0, "agent-3") == "node-b"  # moved: node-a's token is refused now
    with pytest.raises(Forbidden, match="an agent of node 'node-b'"):
        owners.check(NODE_A, "agent-3", "message.agent_id")

    (root / "agents" / "agent-1.yaml").write_text("agent_id: [unfinished")
    assert owner_after(1.0, "agent-1") == NODE_A  # a file that does not parse: table kept
    (root / "agents" / "agent-1.yaml").unlink()
    assert owner_after(1.0, "agent-1") is None
    for path in (root / "agents").glob("*.yaml"):
        path.unlink()
    assert owner_after(1.0, "agent-2") == NODE_A  # an emptied directory: table kept


def test_the_relay_accepts_an_agent_added_while_it_runs(
    relay_process: Daemon, node_a: NodeClient, tmp_path: Path
) -> None:
    assert node_a.send(message(agent_id="agent-new")).status_code == 403
    agent_file(tmp_path / "config", "agent-new", NODE_A)
    wait_for(
        lambda: node_a.send(message(agent_id="agent-new")).status_code == 200,
        what=f"agent-new accepted (see {relay_process.log_path})",
    )


def test_a_strangers_flood_of_bad_tokens_does_not_hide_a_nodes_403_from_the_log(
    relay_process: Daemon, node_a: NodeClient
) -> None:
    stranger = NodeClient(relay_process.url, NODE_A, token="guessed")
    try:
        for _ in range(60):  # past the refusal log's budget of one window
            assert stranger.get("/query/status").status_code == 401
    finally:
        stranger.close()
    assert node_a.send(message(agent_id="agent-b1")).status_code == 403
    log = relay_process.log_path.read_text()
    assert "node 'node-a' refused (403): writes for agent 'agent-b1'" in log
