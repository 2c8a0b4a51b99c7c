"""A move and a frame hold a bounded amount of content, whatever the messages' sizes."""

from __future__ import annotations

from relay_app.archive.reader import ArchiveReader
from relay_app.archive.segment import FRAME_BYTES, SegmentIndex
from tests.relay_app.archive.tiers import T_OLD, Tier, row

BIG = "x" * (300 * 1024)  # a 300 KiB text: four of them pass a frame's byte bound


def test_a_frame_is_cut_once_its_lines_pass_the_byte_bound(tier: Tier) -> None:
    rows = [row(T_OLD + i, content={"t": BIG}) for i in range(10)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows))
    assert tier.archiver().run_once().moved == 10
    (record,) = tier.archive.manifest().segments
    frames = SegmentIndex.decode(record.index).frames
    assert [f.rows for f in frames] == [4, 4, 2]
    assert all(f.length < FRAME_BYTES for f in frames)
    found = ArchiveReader(tier.archive, tier.directory).lookup(rows[9].msg_id)
    assert found is not None
    assert found[1]["content"] == {"t": BIG}


def test_a_move_is_cut_once_its_content_passes_the_byte_bound(tier: Tier) -> None:
    rows = [row(T_OLD + i, content={"t": BIG}) for i in range(10)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows))
    batch = tier.archive.candidates(None, 1000, max_bytes=1024 * 1024)
    assert len(batch) == 4  # the row that passes the bound is the last one taken
    assert len(tier.archive.candidates(None, 1000, max_bytes=1)) == 1
    run = tier.archiver(segment_rows=1000).run_once()
    assert (run.moved, run.segments) == (10, 1)  # 3 MiB: under a move's bound
