"""GET /sync/mail: a node's long poll for the messages addressed to its agents.

`?for=<recipient>&for=...` names the node's agents (and their roles), `after` the last
row id it holds, `wait` how long to wait for new mail (at most MAX_WAIT seconds). The
answer is `{"messages": [...], "cursor": <row id of the last one>}`, oldest first. Each
recipient must be one of the node's own agents or their roles (relay_app.owners): a node
token never reads another node's agents' mail (403 naming the recipient).

While there is nothing new the request is parked (runtime.core.park): the HTTP front awaits
its bell on the event loop, so a waiting node holds no worker thread. Each poll has its
own bell in the MailRoom, rung only by a commit of messages to one of its recipients,
so a message wakes the polls it concerns, not every node's.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import bottle

from relay_app.errors import BadRequest, Forbidden
from relay_app.http import json_response
from relay_app.store import MessageStore
from runtime.core.http_query import decoded_query
from runtime.core.park import Bell, long_poll

MAX_WAIT = 30.0
MAX_RECIPIENTS = 200
MAX_MAIL = 500
DEFAULT_MAIL = 100
MAX_RECIPIENT_CHARS = 256


class MailRoom:
    """recipient -> the bells of the polls waiting for its mail (weakly: a finished poll's
    bell is dropped with it)."""

    def __init__(self) -> None:
        """Nobody waiting."""
        self._lock = threading.Lock()
        self._waiting: dict[str, weakref.WeakSet[Bell]] = {}

    def bell_for(self, recipients: Sequence[str]) -> Bell:
        """A new bell, rung by any later commit of mail to one of `recipients`."""
        bell = Bell()
        with self._lock:
            for recipient in recipients:
                self._waiting.setdefault(recipient, weakref.WeakSet()).add(bell)
        return bell

    def ring(self, recipients: Iterable[str]) -> None:
        """After a commit of mail to `recipients`: wake the polls waiting for them."""
        bells: set[Bell] = set()
        with self._lock:
            for recipient in recipients:
                waiting = self._waiting.get(recipient)
                if waiting is not None:
                    bells.update(waiting)
                    if not waiting:
                        del self._waiting[recipient]
        for bell in bells:
            bell.ring()


def mail_request(params: Mapping[str, Sequence[str]]) -> tuple[tuple[str, ...], int, float, int]:
    """(recipients, after, wait, limit) from the query string; BadRequest naming the key."""
    recipients = tuple(dict.fromkeys(params.get("for") or ()))
    if not recipients or len(recipients) > MAX_RECIPIENTS:
        raise BadRequest(f"for: expected 1-{MAX_RECIPIENTS} recipients")
    for value in recipients:
        if not value or len(value) > MAX_RECIPIENT_CHARS or "\x00" in value:
            raise BadRequest(f"for: expected 1-{MAX_RECIPIENT_CHARS} characters and no NUL")
    after = _number(params, "after", 0, 2**62)
    wait = _number(params, "wait", 0, MAX_WAIT)
    limit = _number(params, "limit", DEFAULT_MAIL, MAX_MAIL) or DEFAULT_MAIL
    return recipients, int(after), float(wait), int(limit)


def _number(params: Mapping[str, Sequence[str]], name: str, default: float, top: float) -> float:
    values = params.get(name) or ()
    if not values:
        return default
    raw = values[0]
    if len(values) > 1 or not raw.isascii() or len(raw) > 20:
        raise BadRequest(f"{name}: expected one number from 0 to {top:g}")
    try:
        value = float(raw) if name == "wait" else int(raw)
    except ValueError:
        raise BadRequest(f"{name}: expected one number from 0 to {top:g}") from None
    if not 0 <= value <= top:
        raise BadRequest(f"{name}: expected one number from 0 to {top:g}")
    return value


def sync_mail(
    node_id: str, store: MessageStore, room: MailRoom, may_receive: Any
) -> bottle.HTTPResponse | bytes:
    """Answer (or park) one node's long poll; see the module docstring."""
    recipients, after, wait, limit = mail_request(decoded_query(bottle.request).dict)
    for recipient in recipients:
        if not may_receive(node_id, recipient):
            raise Forbidden(
                f"for: {recipient!r} is neither an agent of node {node_id!r} nor its role;"
                " a node receives only its own agents' mail"
            )
    environ = bottle.request.environ
    bell = room.bell_for(recipients)  # before the first look: a commit after it rings
    page = long_poll(
        environ, bell, wait, lambda: store.mail_after(recipients, after, limit), _empty
    )
    if page is None:
        return b""  # parked: the front asks again once the bell rings
    cursor = page[-1][0] if page else after
    return json_response({"messages": [message for _, message in page], "cursor": cursor})


def _empty(page: list[tuple[int, dict[str, Any]]]) -> bool:
    return not page
