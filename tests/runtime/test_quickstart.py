"""`make run`'s quickstart: relay and nodes start on 127.0.0.1, reports flow, Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench._cluster import free_port

REPO = Path(__file__).resolve().parents[2]


def test_the_quickstart_shows_reports_arriving_and_stops_cleanly(tmp_path: Path) -> None:
    relay_port, node_port = free_port(), free_port()
    env = {
        **os.environ,
        "COMMANDER_RELAY_PORT": str(relay_port),
        "COMMANDER_NODE_PORT": str(node_port),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.quickstart",
            "--config",
            str(REPO / "config"),
            "--interval",
            "0.2",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        unread = 0
        while time.monotonic() < deadline and unread < 5:
            time.sleep(0.5)
            try:
                answer = requests.get(f"http://127.0.0.1:{relay_port}/api/unread_count", timeout=2)
                unread = answer.json()["unread"]
            except requests.RequestException:
                continue
        assert unread >= 5, "demo reports did not reach the relay"
        metrics = requests.get(f"http://127.0.0.1:{node_port}/metrics", timeout=5).text
        assert "cache_bytes_used" in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "Inbox:" in output
    assert "stopped relay (exit 0)" in output
    assert output.count("(exit 0)") == 3, output
    assert (tmp_path / "data" / "quickstart" / "secrets" / "operator-password.txt").exists()
