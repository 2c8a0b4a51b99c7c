"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

from tests.relay_app.helpers import relay_daemon, write_config
from tests.support import Daemon


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """Leave no actor thread running between tests."""
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def relay_process(tmp_path: Path) -> Iterator[Daemon]:
    """`commander-relay serve` as its own process on 127.0.0.1, stopped after the test."""
    with relay_daemon(write_config(tmp_path / "config"), tmp_path) as daemon:
        yield daemon
