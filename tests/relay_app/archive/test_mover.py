"""The archiver's moves: by the operator's Archive and by age, and only those."""

from __future__ import annotations

import errno
import math
import secrets
import sqlite3
import time

import pytest

from relay_app.archive.mover import ArchiverBusy
from relay_app.archive.restore import restore_op
from relay_app.store_inbox import Audit, SetStatuses
from relay_app.stores.sqlite import SqliteStore
from tests.relay_app.archive.tiers import DAY_S, T_OLD, Tier, row


def test_archived_messages_move_to_a_segment_and_nothing_else_moves(tier: Tier) -> None:
    rows = [row(T_OLD + i) for i in range(30)]
    tier.put(rows)
    chosen = [r.msg_id for r in rows[::3]]
    tier.mark_archived(*chosen)
    run = tier.archiver(after_days=90).run_once()
    assert (run.moved, run.segments) == (10, 1)
    assert set(tier.archived_ids()) == set(chosen)
    assert tier.hot_ids() == [r.msg_id for r in rows if r.msg_id not in chosen]
    assert tier.segment_files() == tier.recorded_files() != set()
    archived = tier.store.get_message(chosen[0])
    assert archived is not None
    assert (archived["msg_id"], archived["status"]) == (chosen[0], "archived")


def test_messages_received_before_the_age_limit_move_and_younger_ones_stay(tier: Tier) -> None:
    old = [row(T_OLD + i) for i in range(5)]
    young = [row(T_OLD + i) for i in range(5)]  # reported as long ago, received within the limit
    tier.put(old, received_at=time.time() - 91 * DAY_S)
    tier.put(young, received_at=time.time() - 89 * DAY_S)
    run = tier.archiver(after_days=90).run_once()
    assert run.moved == 5
    assert set(tier.archived_ids()) == {r.msg_id for r in old}
    assert tier.hot_ids() == [r.msg_id for r in young]
    for r in old:  # moved for its age, it is archived from then on
        found = tier.store.get_message(r.msg_id)
        assert found is not None
        assert found["status"] == "archived"


def test_the_archivers_clock_decides_what_is_old(tier: Tier) -> None:
    rows = [row(time.time()) for _ in range(4)]
    tier.put(rows)
    assert tier.archiver(after_days=1).run_once().moved == 0
    later = tier.archiver(after_days=1, clock=lambda: time.time() + 2 * DAY_S)
    assert later.run_once().moved == 4
    assert tier.hot_ids() == []


def test_age_archiving_off_moves_only_what_the_operator_archived(tier: Tier) -> None:
    rows = [row(T_OLD + i) for i in range(6)]
    tier.put(rows, received_at=T_OLD)
    tier.mark_archived(rows[0].msg_id)
    run = tier.archiver(after_days=0).run_once()
    assert run.moved == 1
    assert tier.hot_ids() == [r.msg_id for r in rows[1:]]


def test_a_run_on_an_empty_store_moves_nothing_and_writes_no_segment(tier: Tier) -> None:
    run = tier.archiver(after_days=1, clock=lambda: time.time() + 1000 * DAY_S).run_once()
    assert (run.moved, run.segments, run.orphans_removed) == (0, 0, 0)
    assert tier.segment_files() == set()
    assert tier.reader().total() == 0


def test_a_large_move_is_cut_into_segments_of_the_given_size(tier: Tier) -> None:
    rows = [row(T_OLD + i) for i in range(25)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows))
    run = tier.archiver(segment_rows=10).run_once()
    assert (run.moved, run.segments) == (25, 3)
    assert sorted(s.rows for s in tier.archive.manifest().segments) == [5, 10, 10]
    assert sorted(tier.archived_ids()) == sorted(r.msg_id for r in rows)
    assert tier.hot_ids() == []


def test_a_second_archiver_at_once_is_told_the_first_is_busy(tier: Tier) -> None:
    rows = [row(T_OLD + i) for i in range(3)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows))
    refused: list[Exception] = []

    def second(step: str) -> None:
        if step == "written":
            with pytest.raises(ArchiverBusy) as caught:
                tier.archiver().run_once()
            refused.append(caught.value)

    assert tier.archiver(on_step=second).run_once().moved == 3
    assert len(refused) == 1
    assert tier.segment_files() == tier.recorded_files()  # its file was not swept as an orphan
    assert sorted(tier.archived_ids()) == sorted(r.msg_id for r in rows)


def test_a_row_changed_while_its_segment_was_written_moves_nothing(tier: Tier) -> None:
    rows = [row(T_OLD + i) for i in range(4)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows))

    def operator_restores_one(step: str) -> None:
        if step == "verified":
            op = SetStatuses((rows[0].msg_id,), "acknowledged", ("archived",))
            tier.writer.write([op], time.time())

    run = tier.archiver(on_step=operator_restores_one).run_once()
    assert (run.moved, run.raced) == (0, 1)
    assert tier.hot_ids() == [r.msg_id for r in rows]
    assert tier.archived_ids() == []
    assert tier.segment_files() == set()  # the unrecorded segment was removed
    # The next run moves the three still archived.
    assert tier.archiver().run_once().moved == 3
    assert tier.hot_ids() == [rows[0].msg_id]


def test_the_hot_file_gives_back_the_space_moved_messages_held(tier: Tier) -> None:
    rows = [row(T_OLD + i, content={"text": secrets.token_hex(2000)}) for i in range(300)]
    tier.put(rows)
    before = pages(tier)
    tier.mark_archived(*(r.msg_id for r in rows[:250]))
    assert tier.archiver().run_once().moved == 250
    after = pages(tier)
    assert after < before / 2, (before, after)
    assert tier.archive.free_pages() < 100


def pages(tier: Tier) -> int:
    """The hot file's size in pages, as of its last commit (WAL included)."""
    path = tier.data_dir / "messages" / "cluster_messages.db"
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()


def test_a_disk_error_while_writing_a_segment_keeps_every_row_hot(tier: Tier) -> None:
    rows = [row(T_OLD + i) for i in range(5)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows))

    def disk_full(step: str) -> None:
        if step == "frame":
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        tier.archiver(on_step=disk_full).run_once()
    assert tier.hot_ids() == [r.msg_id for r in rows]
    assert [n for n in tier.segment_files() if not n.endswith(".tmp")] == []
    run = tier.archiver().run_once()
    assert (run.orphans_removed, run.moved) == (1, 5)
    assert tier.segment_files() == tier.recorded_files()


def test_an_archive_directory_that_cannot_be_made_keeps_every_row_hot(tier: Tier) -> None:
    rows = [row(T_OLD + i) for i in range(3)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows))
    tier.directory.write_text("not a directory")
    with pytest.raises(FileExistsError):
        tier.archiver().run_once()
    assert tier.hot_ids() == [r.msg_id for r in rows]
    assert tier.store.get_message(rows[0].msg_id) is not None


def test_the_sweep_removes_only_stray_segment_files(tier: Tier) -> None:
    rows = [row(T_OLD + i) for i in range(3)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows))
    tier.directory.mkdir(parents=True)
    (tier.directory / "stray.jsonl.zst").write_bytes(b"half a segment")
    (tier.directory / "20200101T000000Z-0.jsonl.zst.tmp").write_bytes(b"")
    (tier.directory / "README").write_text("the operator's notes")
    (tier.directory / "old.tmp").mkdir()  # an operator's directory, not the archiver's
    run = tier.archiver().run_once()
    assert (run.orphans_removed, run.moved) == (2, 3)
    assert tier.segment_files() == tier.recorded_files() | {"README", "old.tmp"}


def test_refill_digests_count_moved_messages_as_before_the_move(tier: Tier) -> None:
    """A moved or restored message is still the relay's: digests kept in memory and read
    from the table are the same before the move, after it, and after a restore."""
    rows = [row(time.time() - 7200 + i * 300) for i in range(20)]
    tier.put(rows)
    first = rows[0]

    def digests() -> dict[int, tuple[int, int]]:
        page = tier.store.refill.digests(first.agent_id, first.node_id, 0.0, math.inf, 10**6)
        return {b: d.key() for b, d in page.digests.items()}

    def from_table() -> dict[int, tuple[int, int]]:
        hot = tier.store.hot
        assert isinstance(hot, SqliteStore)
        page = hot.refill._scan(first.agent_id, first.node_id, 0.0, math.inf, 10**6)
        return {b: d.key() for b, d in page.digests.items()}

    before = digests()  # the relay keeps these hours from here on
    tier.mark_archived(*(r.msg_id for r in rows[::2]))
    assert tier.archiver(after_days=90).run_once().moved == 10
    assert digests() == from_table() == before
    op = restore_op(tier.store, [rows[0].msg_id, rows[2].msg_id], Audit("restore", "op", 0.0))
    assert op is not None
    tier.writer.write([op], time.time())
    assert digests() == from_table() == before
    moved = tier.store.refill.ids(first.agent_id, first.node_id, 0.0, math.inf, "", 100)
    assert moved == sorted(r.msg_id for r in rows)
