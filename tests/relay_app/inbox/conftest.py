"""Fixtures of the inbox tests: a relay with the inbox, and a headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.relay_app.helpers import PG_STORES
from tests.relay_app.inbox.browser import Browser, require_browser
from tests.relay_app.inbox.harness import Relay, start_relay


@pytest.fixture
def inbox_relay(data_dir: Path) -> Iterator[Relay]:
    """A relay with the inbox, stopped after the test (on PostgreSQL in a module whose
    STORE_ENGINES names it: tests/relay_app/conftest.py)."""
    relay = start_relay(data_dir, store=PG_STORES.get(data_dir, "sqlite"))
    yield relay
    relay.stop()


@pytest.fixture(scope="session")
def _chromium() -> Iterator[Browser]:
    require_browser()
    browser = Browser()
    yield browser
    browser.quit()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the item, so fixtures can see a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def browser(request: pytest.FixtureRequest, _chromium: Browser) -> Iterator[Browser]:
    """The session's Chromium, clean; a screenshot is saved if the test fails."""
    _chromium.reset()
    yield _chromium
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        path = _chromium.screenshot(request.node.name)
        print(f"screenshot of the failure: {path}")
