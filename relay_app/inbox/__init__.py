"""The /messages inbox the relay serves to operators (see `relay_app.inbox.routes`).

`install_inbox(app, store, config, ingest, gate=...)` adds its routes to the relay's Bottle
app and starts its writer; `app.close()` (Bottle closes plugins) stops it again, and
`inbox_of(app)` finds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import bottle

from relay_app.diskspace import SpaceGate
from relay_app.inbox.routes import routes
from relay_app.inbox.service import Inbox
from relay_app.ingest import Ingest
from relay_app.store import MessageStore
from runtime.core.config import ClusterConfig

CONFIG_KEY = "commander.inbox"
STATUS_PATH = "/sync/status"


class InboxPlugin:
    """A Bottle plugin so `app.close()` stops the inbox; it also hears node reports.

    The store keeps only each node's last report: after a report is stored, the inbox
    adds it to its bounded lag history, so node sparklines fill whether or not a page
    is open.
    """

    name = "commander-inbox"
    api = 2

    def __init__(self, inbox: Inbox) -> None:
        """Hold the running inbox."""
        self.inbox = inbox

    def apply(self, callback: Callable[..., Any], route: Any) -> Callable[..., Any]:
        """Leave every route as it is, except that a stored node report is observed."""
        if (route.method, route.rule) != ("POST", STATUS_PATH):
            return callback
        history = self.inbox.lag_history

        def observed(*args: Any, **kwargs: Any) -> Any:
            result = callback(*args, **kwargs)
            status = getattr(result, "status_code", None) or bottle.response.status_code
            if status == 200:
                history.observe(self.inbox.store.node_statuses())
            return result

        return observed

    def close(self) -> None:
        """Stop the inbox's writer and close its connections."""
        self.inbox.close()


def install_inbox(
    app: bottle.Bottle,
    store: MessageStore,
    config: ClusterConfig,
    ingest: Ingest,
    *,
    gate: SpaceGate,
    clock: Callable[[], float] = time.time,
) -> Inbox:
    """Add the inbox to `app` (once) and return the running `Inbox`."""
    existing = app.config.get(CONFIG_KEY)
    if isinstance(existing, Inbox):
        return existing
    inbox = Inbox(store, config, ingest, gate=gate, clock=clock)
    app.config[CONFIG_KEY] = inbox
    app.install(InboxPlugin(inbox))
    for method, path, handler in routes(inbox):
        app.route(path, method, handler)
    return inbox


def inbox_of(app: bottle.Bottle) -> Inbox:
    """The `Inbox` that `install_inbox` (called by `create_app`) added to `app`."""
    inbox = app.config.get(CONFIG_KEY)
    if not isinstance(inbox, Inbox):
        raise LookupError("this app has no inbox: build it with relay_app.app.create_app")
    return inbox
