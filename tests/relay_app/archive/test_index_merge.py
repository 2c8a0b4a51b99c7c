"""After a run, the hot full-text index is merged whole: what moved rows left is gone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from relay_app.inbox.search import parse_search
from relay_app.store_inbox import InboxQuery, ReadBudget
from tests.relay_app.archive.tiers import T_OLD, Tier, row

BUDGET = ReadBudget(rows=100, count_cap=10_000, rows_s=30.0, count_s=30.0)


def index_bytes(data_dir: Path) -> int:
    """The full-text index's stored bytes, read-only."""
    path = data_dir / "messages" / "cluster_messages.db"
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT SUM(LENGTH(block)) FROM messages_fts_data").fetchone()[0])
    finally:
        conn.close()


def test_a_run_leaves_the_full_text_index_merged_and_sound(tier: Tier) -> None:
    old = [row(T_OLD + i, content={"t": f"quote number{i} common"}) for i in range(1500)]
    new = [row(T_OLD + 5000 + i, content={"t": f"quote fresh{i}"}) for i in range(300)]
    tier.put(old, received_at=T_OLD)
    tier.put(new)
    tier.index_all()
    full = index_bytes(tier.data_dir)
    run = tier.archiver(after_days=90, segment_rows=500).run_once()
    assert run.moved == 1500
    assert index_bytes(tier.data_dir) < full / 2  # the moved rows' entries are merged away
    assert tier.archiver().merge_index() == 0  # nothing left to merge
    conn = sqlite3.connect(tier.data_dir / "messages" / "cluster_messages.db")
    try:
        conn.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 0)")
    finally:
        conn.close()
    hot = tier.store.inbox.page(InboxQuery(search=parse_search("quote")), BUDGET)
    assert {r.msg_id for r in hot.rows} == {r.msg_id for r in new[-100:]}
