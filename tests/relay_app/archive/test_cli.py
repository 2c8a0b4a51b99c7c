"""The archiver beside a running relay: as `commander-relay archive`, and under ingest."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from relay_app.archive.mover import Archiver
from relay_app.cli import main
from tests.relay_app.archive.tiers import T_OLD, Tier, envelope, row
from tests.relay_app.helpers import batch
from tests.support import REPO


def archive_command(relay: Tier) -> subprocess.CompletedProcess[str]:
    """`commander-relay archive --after-days 0` on the relay's data directory, as a process."""
    args = [sys.executable, "-m", "relay_app.cli", "archive", "--after-days", "0",
            "--data-dir", str(relay.data_dir)]  # fmt: skip
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def test_the_archive_command_moves_what_a_live_relay_then_finds_in_the_archive(
    archive_relay: Tier, capsys: pytest.CaptureFixture[str]
) -> None:
    envs = [envelope(T_OLD + i) for i in range(6)]
    node = archive_relay.node()
    assert node.send_batch(batch(envs, "seed")).status_code == 200
    assert node.query(archived="include")["total"] == 6  # the relay has read its manifest
    archive_relay.mark_archived(*(e.msg_id for e in envs[:4]))
    with Archiver.lock_for(archive_relay.directory, wait=False):
        # flock excludes another open of the lock file in this process too
        assert main(["archive", "--data-dir", str(archive_relay.data_dir)]) == 1
    assert "another archiver" in capsys.readouterr().err
    assert archive_relay.archive.manifest().segments == ()
    done = archive_command(archive_relay)
    assert done.returncode == 0, done.stderr
    assert "4 messages in 1 segments" in done.stdout
    assert archive_relay.hot_ids() == [e.msg_id for e in envs[4:]]
    walked = node.query(archived="include")
    assert sorted(m["msg_id"] for m in walked["messages"]) == sorted(e.msg_id for e in envs)
    assert node.get(f"/query/messages/{envs[0].msg_id}").json()["status"] == "archived"


def test_ingest_goes_on_while_the_archiver_moves(archive_relay: Tier) -> None:
    node = archive_relay.node()
    old = [envelope(T_OLD + i) for i in range(200)]
    assert node.send_batch(batch(old, "old")).status_code == 200
    archive_relay.mark_archived(*(e.msg_id for e in old))
    sent: list[int] = []
    failures: list[str] = []

    def sender() -> None:
        client = archive_relay.node()
        for i in range(60):
            response = client.send(envelope(T_OLD + 1000 + i))
            (sent if response.status_code == 200 else failures).append(response.status_code)

    def between_steps(step: str) -> None:
        time.sleep(0.01)  # room for the relay's writer between the archiver's steps

    thread = threading.Thread(target=sender)
    thread.start()
    run = archive_relay.archiver(segment_rows=20, on_step=between_steps).run_once()
    thread.join(timeout=60)
    assert (run.moved, failures, len(sent)) == (200, [], 60)
    places = archive_relay.places()
    assert len(places) == 260
    assert set(places.values()) == {1}


@pytest.mark.parametrize("command", ["archive", "export"])
def test_a_data_directory_without_a_relay_is_refused_not_created(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = tmp_path / "typo" / "relay"
    assert main([command, "--data-dir", str(nowhere)]) == 2
    assert "no relay database" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("days", ["-1", "nan", "inf", "36501", "ninety"])
def test_an_age_limit_outside_the_configs_rule_is_refused(tier: Tier, days: str) -> None:
    rows = [row(T_OLD)]
    tier.put(rows, received_at=T_OLD)
    with pytest.raises(SystemExit) as stopped:
        main(["archive", "--data-dir", str(tier.data_dir), "--after-days", days])
    assert stopped.value.code == 2
    assert tier.hot_ids() == [rows[0].msg_id]


def test_an_age_limit_of_zero_turns_age_archiving_off(tier: Tier) -> None:
    rows = [row(T_OLD + i) for i in range(3)]
    tier.put(rows, received_at=T_OLD)
    tier.mark_archived(rows[0].msg_id)
    assert main(["archive", "--data-dir", str(tier.data_dir), "--after-days", "0"]) == 0
    assert tier.hot_ids() == [r.msg_id for r in rows[1:]]
    assert main(["archive", "--data-dir", str(tier.data_dir), "--after-days", "90"]) == 0
    assert tier.hot_ids() == []
