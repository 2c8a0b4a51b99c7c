"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """Leave no actor thread running between tests."""
    yield
    pykka.ActorRegistry.stop_all()
