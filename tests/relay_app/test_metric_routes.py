"""The relay metrics' route labels name the routes the relay really serves, one label each."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import bottle
import pytest

from relay_app.app import create_app
from relay_app.ingest import Ingest
from relay_app.metrics import route_of
from relay_app.stores.sqlite import SqliteStore
from tests.relay_app.helpers import make_config

PARAMETER = re.compile(r"<[^>]+>")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[bottle.Bottle]:
    """The relay's app (node API and inbox) over SQLite in tmp_path."""
    store = SqliteStore(tmp_path)
    ingest = Ingest.start(store)
    app = create_app(store, make_config(tmp_path), ingest=ingest)
    yield app
    app.close()
    ingest.stop()
    store.close()


def expected_label(rule: str) -> str:
    """A route's label: its path, or the fixed part before its first parameter and "*"."""
    found = PARAMETER.search(rule)
    return rule if found is None else rule[: found.start()] + "*"


def test_every_route_of_the_app_has_its_own_label(app: bottle.Bottle) -> None:
    rules = {route.rule for route in app.routes}
    assert "/messages/login" in rules  # the inbox's routes are part of the app
    for rule in rules:
        path = PARAMETER.sub("x-1", rule)
        assert route_of(path) == expected_label(rule), rule


def test_the_inbox_login_logout_and_static_files_are_labelled_under_messages() -> None:
    assert route_of("/messages/login") == "/messages/login"
    assert route_of("/messages/logout") == "/messages/logout"
    assert route_of("/messages/static/inbox.js") == "/messages/static/*"
    # No route answers these: they must not read as if one did.
    assert route_of("/login") == route_of("/logout") == route_of("/static/inbox.js") == "other"
