"""Telling every relay of messages any relay stored: LISTEN/NOTIFY, held until visible.

The writer queues one notification per committed group (`recipient_parts`, sent by
`relay_app.stores.postgres.ANNOUNCE`); PostgreSQL delivers
it to every listening session once the transaction commits. A relay's `StoredNotifier`
listens on its own connection and calls the store's listeners (parked mail polls, the
inbox's live updates) with the recipients of the new rows, but only once those rows are
below the watermark (`postgres_follow`): woken earlier, a poll would read nothing new
and park again with no second bell coming.

Notifications are a hint: one lost (a broken listening connection, a recipient list cut
to bound memory) delays a poll until its own timeout asks again; polling is the truth.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import NamedTuple

import orjson
import psycopg
from psycopg.rows import TupleRow

from relay_app.store import StoredListener
from relay_app.stores.postgres_follow import visible_horizon

logger = logging.getLogger(__name__)

CHANNEL = "commander_stored"
MAX_PAYLOAD = 8000  # bytes: PostgreSQL refuses a notification of this size or more
MAX_PART = MAX_PAYLOAD - 100  # of one notification's recipient list, leaving room for x
TICK_S = 0.02  # how often held news is checked against the watermark
IDLE_S = 0.5  # how long to wait for news when none is held (also how soon `stop` is seen)
RETRY_S = 1.0  # between attempts to listen again after the connection failed
MAX_HELD = 10_000  # commits held back at once; past it the oldest hints are dropped


class News(NamedTuple):
    """One notification: the storing transaction and the recipients it wrote to."""

    xact: int
    recipients: frozenset[str]


def recipient_parts(recipients: Iterable[str]) -> list[str]:
    """A commit's recipients as JSON arrays, each small enough for one notification.

    Sizes are those of the encoded JSON, escapes included: a part past PostgreSQL's limit
    would fail the commit it belongs to, and every retry of it. The writer sends one
    notification per part, `{"x": <xact>, "r": <part>}`; a commit with no recipient
    still sends one (`[]`), so listeners that want any news (the inbox) hear it.
    """
    found: list[str] = []
    part: list[bytes] = []
    size = 2  # the brackets
    for recipient in sorted(recipients):
        encoded = orjson.dumps(recipient)
        if part and size + len(encoded) + 1 > MAX_PART:
            found.append((b"[" + b",".join(part) + b"]").decode())
            part, size = [], 2
        part.append(encoded)
        size += len(encoded) + 1
    found.append((b"[" + b",".join(part) + b"]").decode())
    return found


def parse(payload: str) -> News | None:
    """A notification's news, or None for one this code did not send."""
    try:
        data = orjson.loads(payload)
        return News(int(data["x"]), frozenset(str(r) for r in data["r"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class StoredNotifier:
    """A thread listening for news on its own connection, calling `listeners` with it."""

    def __init__(self, connect: Callable[[], psycopg.Connection[TupleRow]]) -> None:
        """Not listening until `add` is first called."""
        self._connect = connect
        self._listeners: list[StoredListener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: list[News] = []

    def add(self, listener: StoredListener) -> None:
        """Call `listener` with the recipients of every visible commit of new messages."""
        self._listeners.append(listener)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pg-notify", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop listening: the thread ends within IDLE_S, closing its own connection.

        Not joined: a store closes at once instead of waiting out the listener's wait.
        """
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listen(conn)
            except psycopg.Error as exc:
                logger.warning("listening for stored messages failed (%s); polls still ask", exc)
                self._stop.wait(RETRY_S)

    def _listen(self, conn: psycopg.Connection[TupleRow]) -> None:
        """Gather news, and pass on what has become visible, until stopped."""
        while not self._stop.is_set():
            # Idle: wait long, but come back with the first news. Holding news: look at the
            # watermark again every tick.
            if self._held:
                notes = conn.notifies(timeout=TICK_S)
            else:
                notes = conn.notifies(timeout=IDLE_S, stop_after=1)
            for note in notes:
                news = parse(note.payload)
                if news is not None:
                    self._held.append(news)
            del self._held[:-MAX_HELD]
            if self._held:
                self._pass_on(visible_horizon(conn))

    def _pass_on(self, horizon: int) -> None:
        """Call the listeners once with the recipients of every held commit now visible."""
        ready = [news for news in self._held if news.xact < horizon]
        if not ready:
            return
        self._held = [news for news in self._held if news.xact >= horizon]
        recipients = frozenset().union(*(news.recipients for news in ready))
        for listener in self._listeners:
            try:
                listener(recipients)
            except Exception:  # a listener's bug must not stop the news for the others
                logger.exception("a stored-messages listener failed")
