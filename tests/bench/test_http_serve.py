"""The servers `bench http_front` measures start, answer and stop with their worker processes."""

from __future__ import annotations

import http.client
import os
from pathlib import Path

import pytest

from bench.tools import http_serve


@pytest.mark.parametrize("kind", [k for k in http_serve.INSTALLED if k != "front-tls"])
def test_each_installed_server_answers_the_small_app_and_stops_whole(
    kind: str, tmp_path: Path
) -> None:
    proc, port = http_serve.start(kind, "small", tmp_path, None)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/sync/message", body=b'{"a": 1}')
        assert conn.getresponse().status == 201
        conn.close()
    finally:
        http_serve.stop(proc)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no worker process outlived its server


def test_granian_serves_the_relay_app_from_its_worker_process(tmp_path: Path) -> None:
    pytest.importorskip("granian")
    http_serve.write_relay_config(tmp_path / "relay")
    proc, port = http_serve.start("granian", "relay", tmp_path, tmp_path / "relay")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert children, "granian runs the app in a worker process"
    finally:
        http_serve.stop(proc)
