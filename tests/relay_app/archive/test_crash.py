"""SIGKILL of the archiver at each step of a move, then a second run: nothing lost, nothing
listed twice, no file the manifest does not name."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relay_app.archive.segment import TMP_SUFFIX
from relay_app.store import MessageQuery
from tests.relay_app.archive import killed_archiver
from tests.relay_app.archive.tiers import DAY_S, T_OLD, Tier, row
from tests.support import REPO

ARCHIVED, AGED, YOUNG = 150, 60, 90  # 210 due: four segments of 50 and one of 10


def seed(tier: Tier) -> tuple[set[str], set[str]]:
    """The corpus; returns the msg_ids due for the archive and those that stay hot."""
    archived = [row(T_OLD + i, content={"n": i}) for i in range(ARCHIVED)]
    aged = [row(T_OLD + i, agent="agent-2") for i in range(AGED)]
    young = [row(T_OLD + i, agent="agent-3") for i in range(YOUNG)]
    tier.put(archived + young)
    tier.put(aged, received_at=time.time() - 100 * DAY_S)
    tier.mark_archived(*(r.msg_id for r in archived))
    return {r.msg_id for r in archived + aged}, {r.msg_id for r in young}


def kill_at(data_dir: Path, step: str, nth: int) -> None:
    """Run the archiver as its own process until it kills itself at the nth `step`."""
    args = [sys.executable, "-m", killed_archiver.__name__, str(data_dir), step, str(nth)]
    done = subprocess.run(args, cwd=REPO, capture_output=True, timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()


def assert_each_message_in_one_place(tier: Tier, every: set[str]) -> None:
    """Hot XOR archived, for every message; a listing of both shows each once."""
    places = tier.places()
    assert set(places) == every
    assert set(places.values()) == {1}
    page = tier.store.query_messages(MessageQuery(limit=1000, archived=True))
    listed = [m["msg_id"] for m in page.messages]
    assert sorted(listed) == sorted(every)
    assert page.total == len(every)


# (step, nth): where the kill lands. A segment has five frames; the second move is the one
# killed, so one segment is recorded before it (and on "recorded", two).
KILLS = [
    ("frame", 1),  # the first frame of the first segment in its temporary file
    ("frame", 7),  # mid-way through the second segment's temporary file
    ("written", 2),  # the second segment renamed into place, not yet read back
    ("verified", 2),  # read back whole, not yet recorded
    ("recorded", 2),  # recorded and its hot rows deleted, space not yet reclaimed
]


@pytest.mark.parametrize(("step", "nth"), KILLS)
def test_an_archiver_killed_at_any_step_loses_nothing_and_the_next_run_finishes(
    tier: Tier, step: str, nth: int
) -> None:
    due, stay = seed(tier)
    kill_at(tier.data_dir, step, nth)
    assert_each_message_in_one_place(tier, due | stay)
    recorded = len(tier.archive.manifest().segments)
    assert recorded == (nth if step == "recorded" else nth // 6 if step == "frame" else nth - 1)
    left_behind = tier.segment_files() - tier.recorded_files()
    assert len(left_behind) == (0 if step == "recorded" else 1)
    assert any(n.endswith(TMP_SUFFIX) for n in left_behind) is (step == "frame")

    again = tier.archiver(after_days=killed_archiver.AFTER_DAYS, segment_rows=50).run_once()
    assert again.orphans_removed == len(left_behind)
    assert again.moved == len(due) - 50 * recorded
    assert_each_message_in_one_place(tier, due | stay)
    assert set(tier.hot_ids()) == stay
    assert set(tier.archived_ids()) == due
    assert tier.segment_files() == tier.recorded_files()
    assert tier.reader().check() == {}


def test_a_killed_archiver_leaves_its_lock_to_the_next_run(tier: Tier) -> None:
    due, stay = seed(tier)
    kill_at(tier.data_dir, "written", 1)
    # flock dies with its process: no stale lock keeps the next run out.
    assert tier.archiver(after_days=killed_archiver.AFTER_DAYS).run_once().moved == len(due)
    assert set(tier.hot_ids()) == stay
