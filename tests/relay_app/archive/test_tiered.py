"""The tiered store's merged reads: pages of hot and archived rows under one cursor."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest

from relay_app.store import MessageQuery
from tests.relay_app.archive.tiers import T_OLD, Tier, row


def walk_all(tier: Tier, limit: int, descending: bool) -> list[str]:
    """Every msg_id of GET /query/messages?archived=include walked by its cursor."""
    query = MessageQuery(limit=limit, archived=True, descending=descending)
    ids: list[str] = []
    while True:
        page = tier.store.query_messages(query)
        ids += [m["msg_id"] for m in page.messages]
        if not page.has_more or page.last_id is None:
            return ids
        query = replace(query, after_id=page.last_id, after_ts=page.last_ts)


@pytest.mark.parametrize("descending", [True, False])
def test_a_walk_misses_no_hot_row_when_large_contents_cut_its_pages(
    tier: Tier, descending: bool
) -> None:
    # Six hot messages of 0.9 MB in a row: a hot page stops at 4 MiB of content, after
    # five, while the archive's rows of the same page reach past the sixth; the merged
    # page must stop there too, or the sixth is never listed.
    big = [row(T_OLD + 50 + i, content={"blob": secrets.token_hex(450_000)}) for i in range(6)]
    small = [row(T_OLD + j, content={"n": j}) for j in range(106) if not 50 <= j < 56]
    tier.put(big)
    tier.put(small)
    tier.mark_archived(*(r.msg_id for r in small))
    assert tier.archiver().run_once().moved == len(small)
    ranked = sorted(big + small, key=lambda r: r.timestamp, reverse=descending)
    assert walk_all(tier, 20, descending) == [r.msg_id for r in ranked]
