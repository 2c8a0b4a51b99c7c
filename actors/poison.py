"""Stored messages that a later stage cannot process: how they are recognised.

A message that reached the cache under an older rule (or through a bug) may
fail today's envelope rule, or its wire form may not serialise. Such a message
is set aside with a reason instead of being retried, so it never crashes an
actor and never holds the agent's other messages back.
"""

from __future__ import annotations

from collections.abc import Iterable

from runtime.core.envelope import MessageEnvelope
from runtime.core.errors import InvalidMessage

# A reason is stored and shown; bound it so a hostile value cannot bloat a row or a page.
MAX_REASON = 300


def poison_reason(envelope: MessageEnvelope) -> str | None:
    """Why this message can never be sent as it is, or None when it can.

    The rule serialises the content and checks every other field's type, so what it
    passes always serialises as a whole: no second encoding to find out.
    """
    try:
        envelope.validate()
    except InvalidMessage as exc:
        return cut(f"refused by the envelope rule: {exc}")
    except (TypeError, ValueError) as exc:  # a value no JSON decoder could have made
        return cut(f"cannot be serialised: {exc}")
    return None


def screen(
    envelopes: Iterable[MessageEnvelope],
) -> tuple[list[MessageEnvelope], list[tuple[str, str]]]:
    """Split messages into those that can be sent and (msg_id, reason) of those that cannot."""
    good: list[MessageEnvelope] = []
    bad: list[tuple[str, str]] = []
    for env in envelopes:
        reason = poison_reason(env)
        if reason is None:
            good.append(env)
        else:
            bad.append((env.msg_id, reason))
    return good, bad


def cut(reason: str) -> str:
    """A reason short enough to store and show."""
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"
