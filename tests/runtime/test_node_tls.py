"""A node process delivers to a relay process over TLS, and sends nothing to one it cannot verify.

The relay's certificate comes from `commander-relay tls`; the node finds the relay and
its CA in relay.yaml (the storage node's https `sync_endpoint`, `relay.ca_file`). With
another CA, the handshake fails before any request: the relay counts no /sync request
and stores nothing, the message waits in the node's outbox, and the node's log and
/status say the certificate did not verify.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from runtime.node.client import NodeAdmin, NodeClient
from tests.delivery.harness import relay_rows
from tests.relay_app.tls_helpers import make_ca, use_tls
from tests.support import REPO, Daemon, cluster, free_port, start_relay, wait_for, write_config_dir

pytestmark = pytest.mark.slow


@dataclass
class TlsRelay:
    """A relay process serving HTTPS, its CA, and the config directory nodes use."""

    relay: Daemon
    config: Path
    ca: Path
    data: Path

    def sync_requests(self) -> float:
        """POSTs to /sync/* the relay has answered, whatever the status."""
        text = requests.get(self.relay.url + "/metrics", timeout=10, verify=self.ca_file).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "commander_relay_requests"
            for sample in family.samples
            if sample.name.endswith("_total") and sample.labels["route"].startswith("/sync")
        )

    @property
    def ca_file(self) -> str:
        return str(self.ca / "ca.pem")


@pytest.fixture
def tls_relay(tmp_path: Path) -> Iterator[TlsRelay]:
    port = free_port()
    config = write_config_dir(tmp_path / "config", cluster(tmp_path / "relay", relay_port=port))
    ca = make_ca(tmp_path / "tls", "127.0.0.1")
    use_tls(config, ca, port=port)
    relay = start_relay(config, tmp_path / "relay", port, tmp_path / "relay.log")
    try:
        yield TlsRelay(relay, config, ca, tmp_path / "relay")
    finally:
        assert relay.terminate() == 0


def start_node(tls: TlsRelay, data: Path, log: Path, *extra: str) -> Daemon:
    """`commander-node` finding the relay and its CA in relay.yaml (no --relay-url)."""
    args = ["-m", "runtime.node.daemon", "--config", str(tls.config), "--node-id", "node-a",
            "--data-dir", str(data), "--probe-interval", "0.2",
            "--shutdown-upload-seconds", "1", *extra]  # fmt: skip
    return Daemon(args, log)


def test_a_node_delivers_to_the_relay_over_tls(tls_relay: TlsRelay, tmp_path: Path) -> None:
    node = start_node(tls_relay, tmp_path / "node", tmp_path / "node.log")
    client = NodeClient(node.sockets, "a1")
    try:
        msg_id = client.write({"text": "over TLS"})
        wait_for(lambda: msg_id in relay_rows(tls_relay.data), timeout=15)
        assert relay_rows(tls_relay.data)[msg_id] == [{"text": "over TLS"}]
    finally:
        client.close()
        assert node.terminate() == 0


def test_a_node_with_another_ca_sends_nothing_and_keeps_the_message(
    tls_relay: TlsRelay, tmp_path: Path
) -> None:
    other = make_ca(tmp_path / "other-ca", "127.0.0.1")
    log = tmp_path / "node.log"
    node = start_node(tls_relay, tmp_path / "node", log, "--relay-ca-file", str(other / "ca.pem"))
    client = NodeClient(node.sockets, "a1")
    try:
        before = tls_relay.sync_requests()
        msg_id = client.write({"text": "must not leave"})
        # The mail poller may say so in the log before a1's uploader has tried: wait for a1.
        wait_for(lambda: "certificate verification failed" in _last_error(node, "a1"), timeout=15)
        assert "certificate verification failed" in log.read_text()
        wait_for(lambda: outbox_depth(node) == 1, timeout=10)
        assert tls_relay.sync_requests() == before
        assert msg_id not in relay_rows(tls_relay.data)
        assert relay_rows(tls_relay.data) == {}
    finally:
        client.close()
        node.terminate()
    assert "ERROR" in log.read_text()  # said as an error, not one more transient warning


def _last_error(node: Daemon, agent_id: str) -> str:
    agents = NodeAdmin(node.sockets).status()["agents"]
    return str(next(a for a in agents if a["agent_id"] == agent_id)["sync"]["last_error"] or "")


def outbox_depth(node: Daemon) -> int:
    agents = NodeAdmin(node.sockets).status()["agents"]
    return sum(a["outbox"]["pending_messages"] for a in agents if a["outbox"])


def node_exit(tls: TlsRelay, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run `commander-node` until it exits (it should, at once); its code and output."""
    command = [sys.executable, "-m", "runtime.node.daemon", "--config", str(tls.config),
               "--node-id", "node-a", "--data-dir", str(tmp_path / "n"), *extra]  # fmt: skip
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_node_whose_ca_file_is_missing_exits_2_saying_which(
    tls_relay: TlsRelay, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    ran = node_exit(tls_relay, tmp_path, "--relay-ca-file", str(missing))
    assert ran.returncode == 2
    assert str(missing) in ran.stderr
    assert "Traceback" not in ran.stderr


def test_a_plain_http_relay_url_to_a_tls_relay_is_refused(
    tls_relay: TlsRelay, tmp_path: Path
) -> None:
    host, port = tls_relay.relay.address
    ran = node_exit(tls_relay, tmp_path, "--relay-url", f"http://{host}:{port}")
    assert ran.returncode == 2
    assert "https://" in ran.stderr


def test_a_node_with_a_stale_plain_http_config_keeps_its_messages_for_a_tls_relay(
    tls_relay: TlsRelay, tmp_path: Path
) -> None:
    # relay.yaml copied to the node before the relay got its certificate: the node speaks
    # plain HTTP to the TLS port, whose 400 text is not the relay judging the messages.
    stale = tmp_path / "stale-config"
    shutil.copytree(tls_relay.config, stale)
    data = yaml.safe_load((stale / "relay.yaml").read_text())
    for key in ("tls_cert_file", "tls_key_file", "ca_file"):
        data["relay"].pop(key)
    for node in data["nodes"]:
        if node.get("sync_endpoint"):
            node["sync_endpoint"] = node["sync_endpoint"].replace("https://", "http://")
    (stale / "relay.yaml").write_text(yaml.safe_dump(data))
    log = tmp_path / "node.log"
    node = start_node(replace(tls_relay, config=stale), tmp_path / "node", log)
    client = NodeClient(node.sockets, "a1")
    try:
        client.write({"text": "kept for when the URL is fixed"})
        wait_for(lambda: "speaks HTTPS" in log.read_text(), timeout=15)
        time.sleep(1.0)  # a few more attempts
        agents = NodeAdmin(node.sockets).status()["agents"]
        outbox = next(a for a in agents if a["agent_id"] == "a1")["outbox"]
        assert (outbox["failed_messages"], outbox["pending_messages"]) == (0, 1)
    finally:
        client.close()
        node.terminate()


def test_a_node_says_when_its_relay_url_sends_the_token_in_clear(tmp_path: Path) -> None:
    config = write_config_dir(tmp_path / "config", cluster(tmp_path / "relay", relay_port=9))
    log = tmp_path / "node.log"
    node = Daemon(
        ["-m", "runtime.node.daemon", "--config", str(config), "--node-id", "node-a",
         "--data-dir", str(tmp_path / "node"), "--relay-url", "http://192.0.2.1:9"],
        log,
    )  # fmt: skip
    try:
        text = log.read_text()
        assert "relay 'http://192.0.2.1:9' is plain HTTP" in text
        assert "in clear" in text
    finally:
        node.terminate()
