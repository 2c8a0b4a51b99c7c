"""Every node request carries its own token: none or wrong is 401, writing as another is 403."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from relay_app.auth import token_sha256
from relay_app.server import RelayServer
from tests.relay_app.conftest import RelayFactory
from tests.relay_app.helpers import (
    NODE_A,
    NODE_B,
    TOKENS,
    NodeClient,
    batch,
    make_config,
    message,
    row_counts,
    with_relay,
)

# Every test that starts a relay runs on both engines (tests/relay_app/conftest.py).
STORE_ENGINES = ("sqlite", "postgres")

ENDPOINTS = [
    ("POST", "/sync/message"),
    ("POST", "/sync/messages"),
    ("POST", "/sync/status"),
    ("POST", "/sync/files"),
    ("GET", "/query/messages"),
    ("GET", "/query/messages/some-id"),
    ("GET", "/query/status"),
    ("GET", "/files/some-id"),
]

BAD_CREDENTIALS = {
    "no headers": {},
    "no node header": {"Authorization": f"Bearer {TOKENS[NODE_A]}"},
    "no token": {"X-Commander-Node": NODE_A},
    "basic scheme": {"X-Commander-Node": NODE_A, "Authorization": f"Basic {TOKENS[NODE_A]}"},
    "empty bearer": {"X-Commander-Node": NODE_A, "Authorization": "Bearer "},
    "wrong token": {"X-Commander-Node": NODE_A, "Authorization": "Bearer guess"},
    "another node's token": {
        "X-Commander-Node": NODE_A,
        "Authorization": f"Bearer {TOKENS[NODE_B]}",
    },
    "unknown node": {"X-Commander-Node": "node-z", "Authorization": "Bearer whatever"},
}


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_missing_or_wrong_credentials_get_401_and_store_nothing(
    relay: RelayServer, data_dir: Path, method: str, path: str, credentials: dict[str, str]
) -> None:
    before = row_counts(data_dir)
    body = message().to_wire() if method == "POST" else None
    response = requests.request(
        method, relay.url + path, json=body, headers=credentials, timeout=10
    )
    assert response.status_code == 401
    assert response.json()["error"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert row_counts(data_dir) == before


def test_a_node_writing_a_message_as_another_node_gets_403(
    node_a: NodeClient, data_dir: Path
) -> None:
    response = node_a.send(message(node_id=NODE_B))
    assert response.status_code == 403
    assert NODE_B in response.json()["error"]
    assert row_counts(data_dir)["messages"] == 0


@pytest.mark.parametrize("where", ["batch node_id", "one message's node_id"])
def test_a_node_writing_a_batch_as_another_node_gets_403_and_nothing_is_stored(
    node_a: NodeClient, data_dir: Path, where: str
) -> None:
    if where == "batch node_id":
        body = batch([message(node_id=NODE_B)], "foreign", node_id=NODE_B)
    else:
        body = batch([message(), message(node_id=NODE_B), message()], "mixed")
    response = node_a.send_batch(body)
    assert response.status_code == 403
    assert row_counts(data_dir)["messages"] == 0
    assert row_counts(data_dir)["batches"] == 0


def test_a_node_reporting_status_for_another_node_gets_403(
    node_a: NodeClient, data_dir: Path
) -> None:
    response = node_a.post("/sync/status", json={"node_id": NODE_B, "agents": []})
    assert response.status_code == 403
    assert row_counts(data_dir)["node_status"] == 0


def test_every_node_reads_the_whole_cluster(node_a: NodeClient, node_b: NodeClient) -> None:
    env = message(node_id=NODE_B)
    assert node_b.send(env).status_code == 200
    assert node_a.get(f"/query/messages/{env.msg_id}").json()["node_id"] == NODE_B


def test_a_node_added_to_the_hashes_file_is_accepted_without_a_restart(
    relay_factory: RelayFactory, data_dir: Path, tmp_path: Path
) -> None:
    hashes = tmp_path / "node-token-hashes.yaml"
    hashes.write_text(f"{NODE_A}: {token_sha256('rotated-token-a')}\n")
    # Relative to the config directory (tmp_path), as relay.yaml would say it.
    relay = relay_factory(with_relay(make_config(data_dir), token_hashes_file=hashes.name))
    rotated = NodeClient(relay.url, NODE_A, token="rotated-token-a")
    newcomer = NodeClient(relay.url, "node-c", token="token-of-node-c")
    try:
        # The file wins over relay.yaml for node-a: only the rotated token works now.
        assert rotated.query()["total"] == 0
        assert NodeClient(relay.url, NODE_A).get("/query/messages").status_code == 401
        assert newcomer.get("/query/messages").status_code == 401
        hashes.write_text(
            f"{NODE_A}: {token_sha256('rotated-token-a')}\n"
            f"node-c: {token_sha256('token-of-node-c')}\n"
        )
        os.utime(hashes, (time.time() + 5, time.time() + 5))  # a new mtime, whatever the clock
        assert newcomer.send(message(node_id="node-c")).status_code == 200
    finally:
        rotated.close()
        newcomer.close()


def test_a_broken_hashes_file_keeps_the_tokens_already_known(
    relay_factory: RelayFactory, data_dir: Path, tmp_path: Path
) -> None:
    hashes = tmp_path / "hashes.yaml"
    hashes.write_text(f"node-c: {token_sha256('token-c')}\n")
    relay = relay_factory(with_relay(make_config(data_dir), token_hashes_file=str(hashes)))
    client = NodeClient(relay.url, "node-c", token="token-c")
    try:
        assert client.get("/query/status").status_code == 200
        hashes.write_text("node-c: [not, a, hash\n")
        os.utime(hashes, (time.time() + 5, time.time() + 5))
        assert client.get("/query/status").status_code == 200
    finally:
        client.close()


def test_a_rejected_upload_is_drained_so_the_connection_stays_usable(
    relay: RelayServer,
) -> None:
    session = requests.Session()
    try:
        response = session.post(
            relay.url + "/sync/files",
            files={"file": ("big.bin", b"x" * (2 * 1024 * 1024))},
            data={"agent_id": "agent-1"},
            timeout=10,
        )
        assert response.status_code == 401
        assert session.get(relay.url + "/healthz", timeout=10).status_code == 200
    finally:
        session.close()


def test_a_token_rotated_within_one_mtime_tick_takes_effect_at_once(
    relay_factory: RelayFactory, data_dir: Path, tmp_path: Path
) -> None:
    # `add-node --force` replaces the file with one of the same size; two runs within the
    # file system's timestamp granularity leave the same mtime. The old token must stop.
    hashes = tmp_path / "hashes.yaml"
    hashes.write_text(f"node-c: {token_sha256('stolen-token-c')}\n")
    stamp = hashes.stat().st_mtime_ns
    relay = relay_factory(with_relay(make_config(data_dir), token_hashes_file=str(hashes)))
    stolen = NodeClient(relay.url, "node-c", token="stolen-token-c")
    try:
        assert stolen.get("/query/status").status_code == 200
        rotated = tmp_path / "hashes.yaml.new"
        rotated.write_text(f"node-c: {token_sha256('fresh0-token-c')}\n")
        os.utime(rotated, ns=(stamp, stamp))
        rotated.replace(hashes)
        assert stolen.get("/query/status").status_code == 401
    finally:
        stolen.close()
