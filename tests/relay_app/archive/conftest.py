"""Fixtures of the archive tests: a SQLite store with its archive in tmp_path, and a relay.

`tier` is the store a relay would hold (`with_archive` over SQLite), its own writer and
archivers on its data directory: what `commander-relay archive` does beside a relay.
`archive_relay` is a real relay on 127.0.0.1 with the inbox, whose store is the same kind
of tiered store; archivers run beside it on a writer of their own, as the CLI does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relay_app.server import RelayServer
from tests.relay_app.archive.tiers import Tier, relay_config
from tests.relay_app.conftest import RelayFactory


@pytest.fixture
def tier(tmp_path: Path) -> Iterator[Tier]:
    """A fresh SQLite store with its archive under tmp_path/relay."""
    opened = Tier.open(tmp_path / "relay")
    yield opened
    opened.close()


@pytest.fixture
def archive_relay(relay_factory: RelayFactory, data_dir: Path) -> Iterator[Tier]:
    """A relay with the inbox (operator login) and a tier beside it on its data directory."""
    server: RelayServer = relay_factory(relay_config(data_dir))
    beside = Tier.beside(server)
    yield beside
    beside.close()
