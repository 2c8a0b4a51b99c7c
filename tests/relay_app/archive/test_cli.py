"""`commander-relay archive` as its own process beside a running relay."""

from __future__ import annotations

import subprocess
import sys

from relay_app.archive.mover import Archiver
from tests.relay_app.archive.tiers import T_OLD, Tier, envelope
from tests.relay_app.helpers import batch
from tests.support import REPO


def archive_command(relay: Tier) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "relay_app.cli", "archive", "--after-days", "0",
            "--data-dir", str(relay.data_dir)]  # fmt: skip
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def test_the_archive_command_moves_what_a_live_relay_then_finds_in_the_archive(
    archive_relay: Tier,
) -> None:
    envs = [envelope(T_OLD + i) for i in range(6)]
    node = archive_relay.node()
    assert node.send_batch(batch(envs, "seed")).status_code == 200
    assert node.query(archived="include")["total"] == 6  # the relay has read its manifest
    archive_relay.mark_archived(*(e.msg_id for e in envs[:4]))
    with Archiver.lock_for(archive_relay.directory, wait=False):
        busy = archive_command(archive_relay)
    assert busy.returncode == 1, busy.stdout
    assert "another archiver" in busy.stderr
    assert archive_relay.archive.manifest().segments == ()
    done = archive_command(archive_relay)
    assert done.returncode == 0, done.stderr
    assert "4 messages in 1 segments" in done.stdout
    assert archive_relay.hot_ids() == [e.msg_id for e in envs[4:]]
    walked = node.query(archived="include")
    assert sorted(m["msg_id"] for m in walked["messages"]) == sorted(e.msg_id for e in envs)
    assert node.get(f"/query/messages/{envs[0].msg_id}").json()["status"] == "archived"
