"""Metric label values come from fixed sets: what a client invents never grows /metrics."""

from __future__ import annotations

import http.client
import random
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from relay_app.metrics import METHODS, OTHER_METHOD, method_of, status_of
from relay_app.server import RelayServer
from tests.support import cluster

# Each request: a method the app does not serve and a path nobody has seen, under these
# templates. The front refuses a method HTTP parsers do not know (the "Z..." ones); the
# others reach the app, and its metrics.
TEMPLATES = ("/query/messages/{}", "/files/{}", "/messages/m/{}", "/{}", "/api/{}/x")
ODD_METHODS = (
    "PROPFIND",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "SEARCH",
    "PURGE",
    "REPORT",
    "MERGE",
    "NOTIFY",
    "SUBSCRIBE",
    "LINK",
    "UNLINK",
    "ACL",
    "TRACE",
)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayServer]:
    server = RelayServer(cluster(tmp_path / "relay"), host="127.0.0.1", port=0).start()
    yield server
    server.stop()


def _token(rng: random.Random, size: int) -> str:
    return "".join(rng.choices(string.ascii_uppercase + string.digits, k=size))


def _send_random(url: str, count: int, rng: random.Random) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for i in range(count):
            method = rng.choice(ODD_METHODS) if i % 4 else "Z" + _token(rng, 10)
            path = TEMPLATES[i % len(TEMPLATES)].format(_token(rng, 12))
            conn.request(method, path)
            response = conn.getresponse()
            response.read()
            assert response.status < 500
            if response.will_close:
                conn.close()
    finally:
        conn.close()


def _samples(url: str) -> tuple[int, int]:
    """(sample lines, bytes) of the relay's /metrics."""
    text = requests.get(url + "/metrics", timeout=30).text
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return len(lines), len(text)


def test_two_thousand_requests_with_random_methods_and_paths_keep_metrics_the_same_size(
    relay: RelayServer,
) -> None:
    rng = random.Random(10)
    _send_random(relay.url, 50, rng)
    lines_before, size_before = _samples(relay.url)
    _send_random(relay.url, 2000, rng)
    lines_after, size_after = _samples(relay.url)
    assert lines_after == lines_before
    # Only counter values grow, by a few digits each.
    assert size_after - size_before < 400
    text = requests.get(relay.url + "/metrics", timeout=30).text
    assert 'method="OTHER"' in text
    assert 'method="Z' not in text


def test_only_standard_methods_and_real_statuses_become_label_values() -> None:
    assert {method_of(m) for m in METHODS} == METHODS
    assert method_of("get") == OTHER_METHOD
    assert method_of("PROPFIND") == OTHER_METHOD
    assert status_of(404) == "404"
    assert status_of(1000) == status_of(42) == "other"
