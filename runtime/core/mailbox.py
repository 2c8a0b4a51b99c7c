"""Batching from a pykka inbox: the group commit of the cache, the ingest and the uploader."""

from __future__ import annotations

from typing import Any

import pykka

Waiting = tuple[Any, "pykka.Future[Any] | None"]


def take_waiting(actor: pykka.Actor, kinds: type | tuple[type, ...], limit: int) -> list[Waiting]:
    """Take up to `limit` messages of `kinds` waiting at the head of the inbox, leaving the rest.

    pykka 4's ThreadingActor inbox is a queue.Queue of Envelope(message, reply_to) and the
    actor's thread is its only consumer, so peeking at the head under the queue's mutex and
    then taking that same envelope is race-free. Stopping at the first message of another
    kind (a stop request, a proxy call) leaves it, and all behind it, in order. The caller
    must answer every reply_to it takes: pykka no longer knows about them.
    """
    inbox: Any = actor.actor_inbox
    taken: list[Waiting] = []
    while len(taken) < limit:
        with inbox.mutex:
            if not inbox.queue or not isinstance(inbox.queue[0].message, kinds):
                break
        envelope = inbox.get_nowait()
        taken.append((envelope.message, envelope.reply_to))
    return taken
