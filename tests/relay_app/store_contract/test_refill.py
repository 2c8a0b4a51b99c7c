"""Refill's reads on every engine: digests as runtime.core.digest defines them, and ids."""

from __future__ import annotations

import math

from relay_app.store import MessageStore, StoreWriter
from relay_app.store_refill import IDS_LIMIT
from runtime.core.digest import BUCKET_SECONDS, digests_of

from .conftest import Engine
from .corpus import NODE_A, NODE_B, T0, put, row, rows


def _mine(store: MessageStore, since: float = 0.0) -> dict[int, tuple[int, int]]:
    page = store.refill.digests("agent-1", NODE_A, since, math.inf, 10**9)
    assert page.next_since is None
    return {b: d.key() for b, d in page.digests.items()}


def test_digests_count_and_hash_an_agents_messages_from_one_node_by_hour(
    store: MessageStore, writer: StoreWriter
) -> None:
    """The relay's digests equal those computed from the ids the test stored."""
    mine = rows(30, step=BUCKET_SECONDS / 7)  # about four hours
    put(writer, mine)
    put(writer, rows(5, agent="agent-2"))
    put(writer, rows(5, node=NODE_B, start=T0 + 1))
    expected = digests_of((r.timestamp, r.msg_id) for r in mine)
    assert _mine(store) == {b: d.key() for b, d in expected.items()}
    later = mine[10].timestamp
    cut = digests_of((r.timestamp, r.msg_id) for r in mine if r.timestamp >= later)
    assert _mine(store, later) == {b: d.key() for b, d in cut.items()}


def test_a_small_row_budget_pages_at_an_hours_edge(
    store: MessageStore, writer: StoreWriter
) -> None:
    """Pages chained by next_since give every hour exactly once."""
    mine = rows(40, step=BUCKET_SECONDS / 5)
    put(writer, mine)
    seen: dict[int, tuple[int, int]] = {}
    since: float | None = 0.0
    for _ in range(50):
        assert since is not None
        page = store.refill.digests("agent-1", NODE_A, since, math.inf, 3)
        assert not set(page.digests) & set(seen)
        seen.update({b: d.key() for b, d in page.digests.items()})
        since = page.next_since
        if since is None:
            break
    expected = digests_of((r.timestamp, r.msg_id) for r in mine)
    assert seen == {b: d.key() for b, d in expected.items()}


def test_ids_list_a_range_in_msg_id_order_and_page_past_after(
    store: MessageStore, writer: StoreWriter
) -> None:
    """[since, until) bounds the range; `after` continues it."""
    mine = rows(20)
    put(writer, mine)
    put(writer, rows(3, node=NODE_B))
    inside = sorted(r.msg_id for r in mine if T0 + 5 <= r.timestamp < T0 + 15)
    assert store.refill.ids("agent-1", NODE_A, T0 + 5, T0 + 15, "", IDS_LIMIT) == inside
    first = store.refill.ids("agent-1", NODE_A, T0 + 5, T0 + 15, "", 4)
    rest = store.refill.ids("agent-1", NODE_A, T0 + 5, T0 + 15, first[-1], IDS_LIMIT)
    assert first + rest == inside


def test_ids_page_in_code_point_order_whatever_the_case(
    store: MessageStore, writer: StoreWriter
) -> None:
    """Mixed-case ids page as Python orders them, so each cursor moves past the last."""
    mine = [row(T0 + i, msg_id=m) for i, m in enumerate(("a1", "B3", "a2", "B4", "9-5", "Z6"))]
    put(writer, mine)
    pages: list[str] = []
    after = ""
    for _ in range(10):
        page = store.refill.ids("agent-1", NODE_A, T0, T0 + 10, after, 2)
        if not page:
            break
        assert page == sorted(page)
        assert page[0] > after
        pages += page
        after = page[-1]
    assert pages == sorted(m.msg_id for m in mine)


def test_the_generation_is_kept_across_a_restart(engine: Engine) -> None:
    """A restart is not a restore: the generation stays."""
    first = engine.open().refill.generation()
    assert first > 0
    assert engine.open().refill.generation() == first


def test_until_ends_the_range(store: MessageStore, writer: StoreWriter) -> None:
    """Digests of [since, until) leave out what is reported at `until` and after."""
    mine = rows(30, step=BUCKET_SECONDS / 7)
    put(writer, mine)
    until = mine[20].timestamp
    page = store.refill.digests("agent-1", NODE_A, mine[3].timestamp, until, 10**9)
    kept = [r for r in mine if mine[3].timestamp <= r.timestamp < until]
    expected = digests_of((r.timestamp, r.msg_id) for r in kept)
    assert {b: d.key() for b, d in page.digests.items()} == {
        b: d.key() for b, d in expected.items()
    }
