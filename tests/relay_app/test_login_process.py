"""Inbox logins against a real `commander-relay serve` process: memory, metrics, and the
operator password file."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from relay_app.passwords import hash_password
from tests.relay_app.helpers import write_config
from tests.support import REPO, Daemon, rss_mb

PASSWORD = "a long operator passphrase"
HASH = hash_password(PASSWORD)
LOGINS = 64
CLIENTS = 16
WARM_UP = 2


def relay_yaml(root: Path, **relay: object) -> Path:
    """write_config's relay.yaml with more relay keys."""
    path = write_config(root)
    doc = yaml.safe_load(path.read_text())
    doc["relay"].update(relay)
    path.write_text(yaml.safe_dump(doc))
    return path


def serve_args(config: Path, data: Path) -> list[str]:
    """`commander-relay serve` on any free port of 127.0.0.1."""
    return ["-m", "relay_app.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
            "--port", "0", "--data-dir", str(data)]  # fmt: skip


@pytest.fixture
def proxied_relay(tmp_path: Path) -> Iterator[Daemon]:
    """A relay process whose hash sits in a file beside relay.yaml and which trusts 127.0.0.1
    as a proxy (so one test client can log in from many addresses)."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "operator.hash").write_text(f"\n  {HASH}  \n")
    config = relay_yaml(
        tmp_path / "config", operator_password_file="operator.hash", trusted_proxies=["127.0.0.1"]
    )
    daemon = Daemon(serve_args(config, tmp_path / "data"), tmp_path / "relay.log")
    try:
        yield daemon
    finally:
        assert daemon.terminate() == 0


def login(url: str, password: str, address: str) -> requests.Response:
    """One login attempt as from `address`, retried after Retry-After while refused."""
    while True:
        answer = requests.post(
            url + "/messages/login",
            data={"user": "operator", "password": password},
            headers={"X-Forwarded-For": address},
            allow_redirects=False,
            timeout=30,
        )
        if answer.status_code not in (429, 503):
            return answer
        time.sleep(float(answer.headers["Retry-After"]))


def test_memory_stays_flat_over_many_failed_logins_taken_by_many_workers(
    proxied_relay: Daemon,
) -> None:
    url = proxied_relay.url
    # The second hash gives the verifier thread its one scrypt buffer (16 MiB, kept in its
    # arena for good; glibc mmaps the first and then raises its mmap threshold): what is
    # measured is what LOGINS more, taken by many workers at once, add to that.
    for i in range(WARM_UP):
        assert login(url, "warm-up guess", f"198.51.100.{250 + i}").status_code == 401
    before = rss_mb(proxied_relay.proc.pid)
    statuses: list[int] = []

    def guesser(first: int) -> None:
        # Each attempt from its own address: none is held back by the per-address backoff,
        # so every one of the 100 really hashes (paced only by the global budget).
        for i in range(first, LOGINS, CLIENTS):
            statuses.append(login(url, f"guess {i}", f"198.51.100.{i + 1}").status_code)

    threads = [threading.Thread(target=guesser, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    after = rss_mb(proxied_relay.proc.pid)
    assert statuses == [401] * LOGINS
    print(f"relay RSS {before:.1f} MB -> {after:.1f} MB over {LOGINS} failed logins")
    assert after - before < 20, f"RSS {before:.0f} MB -> {after:.0f} MB"
    metrics = requests.get(url + "/metrics", timeout=10).text
    assert f'commander_relay_logins_total{{outcome="failure"}} {LOGINS + WARM_UP}.0' in metrics
    assert login(url, PASSWORD, "198.51.100.200").status_code == 303  # the file's hash works
    metrics = requests.get(url + "/metrics", timeout=10).text
    assert 'commander_relay_logins_total{outcome="success"} 1.0' in metrics
    log = proxied_relay.log_path.read_text()
    assert log.count("inbox login failed: user 'operator' from 198.51.100.") == LOGINS + WARM_UP
    assert "guess" not in log


def start_and_fail(tmp_path: Path, **relay: object) -> str:
    """Start a relay with these relay keys, expecting it to refuse; return its stderr."""
    config = relay_yaml(tmp_path / "config", **relay)
    done = subprocess.run(
        [sys.executable, *serve_args(config, tmp_path / "data")],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "configuration problem" in done.stderr
    assert HASH not in done.stderr
    return done.stderr


def test_a_missing_password_file_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    stderr = start_and_fail(tmp_path, operator_password_file="secrets/operator.hash")
    assert str(tmp_path / "config" / "secrets" / "operator.hash") in stderr
    assert "No such file" in stderr


def test_a_password_file_without_a_hash_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "operator.hash").write_text("my password in clear\n")
    stderr = start_and_fail(tmp_path, operator_password_file="operator.hash")
    assert "commander-relay hash-password" in stderr
    assert "my password" not in stderr


def test_an_unreadable_password_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "config" / "operator.hash").mkdir(parents=True)  # a directory: unreadable
    stderr = start_and_fail(tmp_path, operator_password_file="operator.hash")
    assert "operator_password_file" in stderr


def test_a_password_file_and_a_hash_in_relay_yaml_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "operator.hash").write_text(HASH)
    stderr = start_and_fail(
        tmp_path, operator_password_file="operator.hash", operator_password_hash=HASH
    )
    assert "only one of operator_password_file and operator_password_hash" in stderr
