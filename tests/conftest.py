"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

from bench._procs import Daemon
from tests.relay_app.helpers import write_config


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """Leave no actor thread running between tests."""
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def relay_process(tmp_path: Path) -> Iterator[Daemon]:
    """`commander-relay serve` as its own process on 127.0.0.1, stopped after the test."""
    config = write_config(tmp_path / "config")
    args = ["-m", "relay_app.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
            "--port", "0", "--data-dir", str(tmp_path / "data")]  # fmt: skip
    daemon = Daemon(args, tmp_path / "relay.log")
    try:
        yield daemon
    finally:
        assert daemon.terminate() == 0
