"""A live relay and a live node as separate OS processes on 127.0.0.1, for the contract tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from relay_app.inbox.sessions import COOKIE
from relay_app.passwords import hash_password
from runtime.core.token_files import agent_hashes_path, token_sha256, write_sha256_table
from tests.support import (
    TOKENS,
    Daemon,
    cluster,
    free_port,
    start_node,
    start_relay,
    write_config_dir,
)

NODE = "node-a"
AGENT = "a1"
OPERATOR_PASSWORD = "contract-test-password"
NODE_HEADERS = {"X-Commander-Node": NODE, "Authorization": f"Bearer {TOKENS[NODE]}"}
# The same credentials per security scheme of the relay's document.
NODE_AUTH = {"nodeId": {"api_key": NODE}, "nodeToken": {"bearer": TOKENS[NODE]}}
# a1's token for the node's loopback TCP door (runtime.node.doors).
AGENT_TOKEN = "contract-token-of-a1"
AGENT_HEADERS = {"Authorization": f"Bearer {AGENT_TOKEN}"}


@dataclass
class Live:
    """The running processes and where they write their logs."""

    relay: Daemon
    node: Daemon
    relay_log: Path
    node_log: Path
    config_dir: Path


def write_cluster(root: Path) -> Path:
    """Config for two nodes and the relay, with an operator password for the inbox."""
    config_dir = write_config_dir(root / "config", cluster(root / "relay"))
    with (config_dir / "relay.yaml").open("a") as yaml_file:
        yaml_file.write(f"  operator_password_hash: '{hash_password(OPERATOR_PASSWORD)}'\n")
    write_sha256_table(agent_hashes_path(config_dir), {AGENT: token_sha256(AGENT_TOKEN)})
    return config_dir


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """`commander-relay serve` and `commander-node` (node-a) as processes, stopped at the end."""
    root = tmp_path_factory.mktemp("contract")
    config_dir = write_cluster(root)
    relay_log, node_log = root / "relay.log", root / "node.log"
    relay = start_relay(config_dir, root / "relay", free_port(), relay_log)
    try:
        node = start_node(config_dir, NODE, root / NODE, relay.url, node_log)
    except BaseException:
        relay.kill()
        raise
    yield Live(relay, node, relay_log, node_log, config_dir)
    node.terminate()
    relay.terminate()


def operator_session(relay_url: str) -> str:
    """Log in to the inbox; return the session cookie's value."""
    with requests.Session() as session:
        response = session.post(
            relay_url + "/messages/login",
            data={"user": "operator", "password": OPERATOR_PASSWORD, "next": "/messages"},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 303, response.text
        return str(session.cookies[COOKIE])


def operator_cookie(relay_url: str) -> str:
    """Log in to the inbox; return the `Cookie` header value of the session."""
    return f"{COOKIE}={operator_session(relay_url)}"
