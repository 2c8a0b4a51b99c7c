"""`make run`'s quickstart: relay and nodes start on 127.0.0.1, reports flow, Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from runtime.quickstart.run import node_port, refusal_reasons
from tests.runtime.quickstart_procs import QUICKSTART, quickstart, quickstart_env


def test_the_quickstart_shows_reports_arriving_and_stops_cleanly(tmp_path: Path) -> None:
    env, (relay_port, first_node, _) = quickstart_env()
    # On a failure on the way, quickstart() still stops it and every daemon it started.
    with quickstart(
        tmp_path, env, "--interval", "0.2",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as proc:  # fmt: skip
        unread = _wait_for_unread(f"http://127.0.0.1:{relay_port}", proc, at_least=5)
        health = _health(relay_port)  # while the relay still answers
        metrics = requests.get(f"http://127.0.0.1:{first_node}/metrics", timeout=5).text
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    story = output + _logs(tmp_path / "data" / "quickstart") + health
    assert unread >= 5, f"demo reports did not reach the relay:\n{story}"
    assert "cache_bytes_used" in metrics
    assert proc.returncode == 0, story
    assert "Inbox:" in output
    assert "stopped relay (exit 0)" in output
    assert output.count("(exit 0)") == 3, story
    assert (tmp_path / "data" / "quickstart" / "secrets" / "operator-password.txt").exists()


def test_the_quickstart_names_a_port_that_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "COMMANDER_RELAY_PORT": str(port)}
        done = subprocess.run(
            QUICKSTART,
            check=False,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"127.0.0.1:{port} is taken" in done.stderr
    assert "COMMANDER_RELAY_PORT" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [("COMMANDER_NODE_PORTS", "abc"), ("COMMANDER_RELAY_PORT", "70000"),
     ("COMMANDER_MIN_FREE_BYTES", "-1"), ("COMMANDER_NODE_PORTS", "9002,")],
)  # fmt: skip
def test_a_bad_variable_is_named_in_one_line(tmp_path: Path, variable: str, value: str) -> None:
    done = subprocess.run(
        QUICKSTART,
        check=False,
        cwd=tmp_path,
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.startswith(f"{variable}={value!r}: expected integers"), done.stderr
    assert "Traceback" not in done.stderr


def test_nodes_past_the_listed_ports_take_the_next_ones() -> None:
    assert [node_port(k) for k in range(4)] == [8002, 8003, 8004, 8005]


def test_the_progress_line_says_why_the_relay_refuses_writes() -> None:
    assert refusal_reasons({"writes_accepted": True, "refusing": None}) == []
    low = {"refusing": "disk_floor", "free_bytes": 40 * 2**20, "min_free_bytes": 64 * 2**20}
    assert refusal_reasons(low) == [
        "RELAY REFUSES WRITES: 40 MB free on its disk, below the floor of 64 MB"
        " (COMMANDER_MIN_FREE_BYTES)"
    ]
    writer_down = {"refusing": "writer_stopped", "free_bytes": 2**40, "min_free_bytes": 1}
    assert "store writer is stopped" in refusal_reasons(writer_down)[0]
    full = {"refusing": "database_full", "database_full": True}
    assert refusal_reasons(full) == ["RELAY REFUSES WRITES: its database is full"]


def _wait_for_unread(relay_url: str, proc: subprocess.Popen[str], at_least: int) -> int:
    """Poll the relay's unread count until it reaches `at_least`, the quickstart exits, or 60 s."""
    deadline = time.monotonic() + 60
    unread = 0
    while time.monotonic() < deadline and unread < at_least and proc.poll() is None:
        time.sleep(0.5)
        try:
            unread = requests.get(f"{relay_url}/api/unread_count", timeout=2).json()["unread"]
        except requests.RequestException:
            continue
    return unread


def _health(port: int) -> str:
    """The relay's /healthz, if it still answers (free disk, writes accepted)."""
    try:
        return "\n--- healthz\n" + requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).text
    except requests.RequestException:
        return ""


def _logs(root: Path) -> str:
    """Every daemon log of the quickstart, for a failure message that explains itself."""
    logs = sorted(root.glob("*.log"))
    return "".join(f"\n--- {log.name}\n{log.read_text()[-4000:]}" for log in logs)
