"""Less said to strangers: /metrics behind a token, a terse /healthz, one 401 for any bad token."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from relay_app.auth import UNAUTHORIZED
from relay_app.metrics_auth import is_loopback, presented_token, warn_if_metrics_open
from relay_app.refusals import RefusalLog
from runtime.core.config import RelaySettings
from runtime.core.token_files import token_sha256
from tests.relay_app.helpers import NODE_A, TOKENS, message, relay_daemon, write_config
from tests.support import Daemon

METRICS_TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Daemon]:
    """A relay process whose /metrics needs METRICS_TOKEN."""
    config = write_config(tmp_path / "config")
    with config.open("a") as out:
        out.write(f'  metrics_token_sha256: "{token_sha256(METRICS_TOKEN)}"\n')
    with relay_daemon(config, tmp_path) as daemon:
        yield daemon


def get(relay: Daemon, path: str, **kwargs: object) -> requests.Response:
    """GET `path` from the relay."""
    return requests.get(relay.url + path, timeout=10, **kwargs)  # type: ignore[arg-type]


def test_metrics_answer_only_the_metrics_token_as_bearer_or_basic_password(relay: Daemon) -> None:
    for headers in ({}, {"Authorization": "Bearer guess"}, {"Authorization": "Basic !!"}):
        refused = get(relay, "/metrics", headers=headers)
        assert refused.status_code == 401
        challenges = refused.headers["WWW-Authenticate"]
        assert "Bearer" in challenges
        assert "Basic" in challenges
        assert "commander_relay" not in refused.text
    assert get(relay, "/metrics", auth=("prometheus", "guess")).status_code == 401
    bearer = get(relay, "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert bearer.status_code == 200
    assert "commander_relay_free_disk_bytes" in bearer.text
    basic = get(relay, "/metrics", auth=("prometheus", METRICS_TOKEN))
    assert basic.status_code == 200
    assert "commander_relay_free_disk_bytes" in basic.text
    node = {"X-Commander-Node": NODE_A, "Authorization": f"Bearer {TOKENS[NODE_A]}"}
    assert get(relay, "/metrics", headers=node).status_code == 401  # a node token is not it


def test_healthz_is_terse_to_strangers_and_full_with_a_node_or_the_metrics_token(
    relay: Daemon,
) -> None:
    for headers in ({}, {"X-Commander-Node": NODE_A, "Authorization": "Bearer guess"}):
        stranger = get(relay, "/healthz", headers=headers)
        assert stranger.status_code == 200
        assert stranger.json() == {"status": "ok"}
    node = {"X-Commander-Node": NODE_A, "Authorization": f"Bearer {TOKENS[NODE_A]}"}
    for headers in (node, {"Authorization": f"Bearer {METRICS_TOKEN}"}):
        full = get(relay, "/healthz", headers=headers).json()
        assert full["status"] == "ok"
        assert full["writes_accepted"] is True
        assert isinstance(full["free_bytes"], int)


def test_every_failed_node_token_gets_the_same_401_and_the_log_tells_them_apart(
    relay: Daemon,
) -> None:
    body = message().to_wire()
    attempts = {
        "no node header": {"Authorization": f"Bearer {TOKENS[NODE_A]}"},
        "unknown node": {"X-Commander-Node": "node-zz", "Authorization": "Bearer x"},
        "wrong token": {"X-Commander-Node": NODE_A, "Authorization": "Bearer guess"},
        "no token": {"X-Commander-Node": NODE_A},
        "huge node id": {"X-Commander-Node": "n" * 4000, "Authorization": "Bearer x"},
    }
    answers = {
        name: requests.post(relay.url + "/sync/message", json=body, headers=h, timeout=10)
        for name, h in attempts.items()
    }
    assert {a.status_code for a in answers.values()} == {401}
    assert {a.content for a in answers.values()} == {b'{"error":"%s"}' % UNAUTHORIZED.encode()}
    log = relay.log_path.read_text()
    assert "node request from 127.0.0.1 refused (401): no X-Commander-Node header" in log
    assert "a node with no token on this relay, node 'node-zz'" in log
    assert "a wrong token, node 'node-a'" in log
    assert "n" * 300 not in log  # cut: a client does not choose how much the relay logs


def test_refusals_beyond_the_burst_are_counted_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = RefusalLog(logging.getLogger("test.refusals"), burst=2, window=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "test.refusals"):
        assert [log.warning("refused %d", i) for i in range(5)] == [True, True, False, False, False]
        now[0] = 10.0
        assert log.warning("refused %d", 5)
    assert [r.getMessage() for r in caplog.records] == [
        "refused 0",
        "refused 1",
        "refused 5 (3 more refusals not logged)",
    ]


def test_metrics_token_writes_a_token_and_prints_the_line_for_relay_yaml(tmp_path: Path) -> None:
    token_file = tmp_path / "secrets" / "metrics.token"

    def run(*flags: str) -> str:
        args = [sys.executable, "-m", "relay_app.cli", "metrics-token", "--token-file"]
        done = subprocess.run(
            [*args, str(token_file), *flags], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    line = run()
    token = token_file.read_text()
    assert line == f'metrics_token_sha256: "{token_sha256(token)}"'
    assert token_file.stat().st_mode & 0o077 == 0
    assert run() == line  # kept: the line again for the token already handed to Prometheus
    assert run("--force") != line


def test_the_relay_warns_when_metrics_are_open_beyond_loopback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert presented_token("Basic " + "cDp0b2s=") == "tok"  # p:tok
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0")] == [
        True,
        True,
        True,
        False,
    ]
    with caplog.at_level(logging.WARNING):
        assert warn_if_metrics_open(RelaySettings(), "0.0.0.0")
        assert not warn_if_metrics_open(RelaySettings(), "127.0.0.1")
        guarded = RelaySettings(metrics_token_sha256=token_sha256("t"))
        assert not warn_if_metrics_open(guarded, "0.0.0.0")
    assert "/metrics is open" in caplog.text
