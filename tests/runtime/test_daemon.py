"""commander-node as a real process: loopback endpoint, SIGTERM, restart, bad input."""

from __future__ import annotations

import contextlib
import json
import socket
import textwrap
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from runtime.node.client import NodeClient
from runtime.node.unix_http import BASE_URL, unix_session
from tests.support import Daemon

NODE = "node-a"


def write_config(root: Path) -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "relay.yaml").write_text(
        textwrap.dedent(
            """\
            nodes:
              - id: "htpc"
                host: "127.0.0.1"
                port: 9
                role: "storage"
              - id: "node-a"
                host: "127.0.0.1"
                port: 9
            """
        )
    )
    for agent in ("a1", "a2"):
        (root / "agents" / f"{agent}.yaml").write_text(
            f'agent_id: "{agent}"\nrole: "coder"\nnode_id: "{NODE}"\n'
            "cache:\n  max_bytes: 10000000\n"
        )
    return root


def start_node(tmp_path: Path, env: dict[str, str] | None = None) -> Daemon:
    config = tmp_path / "config"
    if not config.exists():
        write_config(config)
    args = [
        "-m",
        "runtime.node.daemon",
        "--config",
        str(config),
        "--node-id",
        NODE,
        "--data-dir",
        str(tmp_path / "data"),
        "--listen",
        "127.0.0.1:0",
    ]
    return Daemon(args, tmp_path / "node.log", env=env)


def test_a_write_survives_sigterm_and_a_restart(tmp_path: Path) -> None:
    node = start_node(tmp_path)
    client = NodeClient(node.sockets, "a1")
    msg_id = client.write({"report": "done"}, task_id="t9")
    assert client.read(msg_id) is not None
    assert [m.msg_id for m in client.query(task_id="t9")] == [msg_id]
    client.close()
    assert node.terminate() == 0
    again = start_node(tmp_path)
    client = NodeClient(again.sockets, "a1")
    found = client.read(msg_id)
    assert found is not None
    assert found.content == {"report": "done"}
    assert client.status()["cache"]["message_count"] == 1
    client.close()
    assert again.terminate() == 0


def test_bad_requests_get_clear_4xx_and_the_node_stays_up(tmp_path: Path) -> None:
    node = start_node(tmp_path)
    admin = unix_session(node.sockets.removeprefix("unix:") + "/node.sock")
    cases = [
        ("post", "/agents/a1/messages", b"{not json", 400, "not valid JSON"),
        ("post", "/agents/a1/messages", b"[1,2]", 400, "content"),
        (
            "post",
            "/agents/a1/messages",
            json.dumps({"content": 1, "priority": "x"}).encode(),
            400,
            "priority",
        ),
        (
            "post",
            "/agents/a1/messages",
            json.dumps({"content": 1, "msg_id": "../x"}).encode(),
            400,
            "msg_id",
        ),
        ("post", "/agents/ghost/messages", b'{"content": 1}', 404, "not configured"),
        ("get", "/agents/a1/messages?since=yesterday", b"", 400, "since"),
        ("get", "/agents/a1/messages/nope", b"", 404, "no message"),
        ("post", "/agents/a1/messages", b"x" * (5 * 1024 * 1024), 413, "the limit is"),
    ]
    for method, path, body, status, text in cases:
        json_body = {"Content-Type": "application/json"}
        response = admin.request(method, BASE_URL + path, data=body, headers=json_body, timeout=10)
        assert response.status_code == status, (path, response.text)
        assert text in response.json()["error"]
    assert requests.get(node.url + "/healthz", timeout=5).json()["status"] == "ok"
    assert node.terminate() == 0


def test_metrics_expose_the_fixed_names_with_their_labels(tmp_path: Path) -> None:
    node = start_node(tmp_path)
    NodeClient(node.sockets, "a1").write("hello")
    text = requests.get(node.url + "/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("cache_bytes_used", "outbox_queue_depth"):
        labels = {tuple(sorted(s.labels)) for s in families[name].samples}
        assert labels == {("agent", "node")}, name
        assert {s.labels["agent"] for s in families[name].samples} == {"a1", "a2"}
    assert families["sync_lag_seconds"].samples[0].labels == {"node": NODE}
    assert families["sync_lag_seconds"].samples[0].value > 0  # no relay: the message waits
    assert families["sync_failures"].type == "counter"
    assert "commander_write_latency_seconds" in families
    assert node.terminate() == 0


@pytest.mark.parametrize("bad", ["--node-id=ghost", "--config=/nonexistent"])
def test_a_bad_start_exits_2_with_a_message(tmp_path: Path, bad: str) -> None:
    import subprocess
    import sys

    write_config(tmp_path / "config")
    args = [
        sys.executable,
        "-m",
        "runtime.node.daemon",
        "--config",
        str(tmp_path / "config"),
        "--node-id",
        NODE,
        "--data-dir",
        str(tmp_path / "d"),
        bad,
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_the_daemon_tells_systemd_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        node = start_node(tmp_path, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
        seen = [sock.recv(4096).decode() for _ in range(3)]
        assert "READY=1" in seen
        assert "WATCHDOG=1" in seen
        assert node.terminate() == 0
        rest = []
        with contextlib.suppress(TimeoutError):
            while "STOPPING=1" not in rest:
                rest.append(sock.recv(4096).decode())
        assert "STOPPING=1" in rest
