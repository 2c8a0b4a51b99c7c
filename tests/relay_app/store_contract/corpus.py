"""Messages for the store contract, with the times, fields and content a test chooses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay_app.store import MessageRow, MessageStore, StoreMessages, StoreWriter
from relay_app.store_inbox import ReadBudget
from relay_app.validate import message_row
from runtime.core.envelope import MessageEnvelope

T0 = 1_800_000_000.0  # report times count from here
NODE_A = "node-a"
NODE_B = "node-b"


def row(
    ts: float = T0,
    *,
    node: str = NODE_A,
    agent: str = "agent-1",
    content: Any = None,
    **fields: Any,
) -> MessageRow:
    """One valid message row as the door makes it, reported at `ts`."""
    env = MessageEnvelope.new(
        agent_id=agent,
        node_id=node,
        content={"text": "hello"} if content is None else content,
        clock=lambda: ts,
        **fields,
    )
    return message_row(env.to_wire(), node)


def rows(count: int, start: float = T0, step: float = 1.0, **fields: Any) -> list[MessageRow]:
    """`count` rows reported `step` seconds apart from `start`."""
    return [row(start + i * step, **fields) for i in range(count)]


def put(writer: StoreWriter, messages: Sequence[MessageRow], at: float = T0) -> int:
    """Store messages in one write; how many were new."""
    return writer.write([StoreMessages(messages[0].node_id, tuple(messages))], at)[0].inserted


def index_all(store: MessageStore, writer: StoreWriter) -> None:
    """Bring the full-text index up to date, as the inbox's indexer does."""
    while (chunk := store.inbox.unindexed(1000)) is not None:
        writer.write([chunk.entries()], T0)


def budget(rows: int = 50, cap: int = 1000) -> ReadBudget:
    """A budget no test runs into: only the rows and the count's cap bound a read."""
    return ReadBudget(rows=rows, count_cap=cap, rows_s=30.0, count_s=30.0)
