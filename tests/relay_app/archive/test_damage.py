"""A damaged segment is detected, named in /healthz and /metrics, answers 503 rather than
"not found", and never costs a hot row."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from relay_app.archive.segment import SegmentDamaged, SegmentIndex, segment_path
from relay_app.cli import main
from tests.relay_app.archive.tiers import T_OLD, Tier, envelope, row
from tests.relay_app.helpers import batch
from tests.support import REPO

DAMAGED_METRIC = re.compile(r"^commander_relay_archive_damaged_segments (\S+)$", re.M)


def two_segments(relay: Tier) -> tuple[list[str], list[str]]:
    """Twelve messages sent, ten moved in two segments; the msg_ids of each segment."""
    envs = [envelope(T_OLD + i, content={"n": i}) for i in range(12)]
    assert relay.node().send_batch(batch(envs, "seed")).status_code == 200
    relay.mark_archived(*(e.msg_id for e in envs[:10]))
    assert relay.archiver(segment_rows=5).run_once().segments == 2
    first, second = relay.archive.manifest().segments
    located = relay.archive.locate(tuple(e.msg_id for e in envs[:10]))
    return (
        [m for m, (s, _) in located.items() if s == first.id],
        [m for m, (s, _) in located.items() if s == second.id],
    )


def segment_file(tier: Tier, number: int) -> Path:
    """The file of the manifest's segment `number`."""
    return segment_path(tier.directory, tier.archive.manifest().segments[number].name)


def flip_a_byte_inside_its_frame(path: Path, tier: Tier, number: int) -> None:
    """Alter one byte in the middle of the segment's first frame (its size unchanged)."""
    record = tier.archive.manifest().segments[number]
    frame = SegmentIndex.decode(record.index).frames[0]
    data = bytearray(path.read_bytes())
    data[frame.offset + frame.length // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def health(relay: Tier) -> list[str]:
    """The damaged segments /healthz names to a node."""
    body = relay.node().get("/healthz").json()
    return list(body["archive_damaged_segments"])


def damaged_metric(relay: Tier) -> float:
    """commander_relay_archive_damaged_segments as /metrics shows it."""
    text = requests.get(f"{relay.url}/metrics", timeout=10).text
    found = DAMAGED_METRIC.search(text)
    assert found is not None, text
    return float(found.group(1))


def test_a_truncated_segment_is_named_in_healthz_and_metrics(archive_relay: Tier) -> None:
    first, second = two_segments(archive_relay)
    node = archive_relay.node()
    assert node.get(f"/query/messages/{first[0]}").status_code == 200  # the archive is read
    assert (health(archive_relay), damaged_metric(archive_relay)) == ([], 0)
    path = segment_file(archive_relay, 1)
    path.write_bytes(path.read_bytes()[:-7])
    assert health(archive_relay) == [path.name.removesuffix(".jsonl.zst")]
    assert damaged_metric(archive_relay) == 1
    outsider = requests.get(f"{archive_relay.url}/healthz", timeout=10).json()
    assert outsider == {"status": "ok"}  # segment names only to insiders
    assert node.get(f"/query/messages/{second[0]}").status_code == 503
    assert node.get(f"/query/messages/{first[0]}").status_code == 200  # the other one reads
    listed = node.query(archived="include", limit=100)
    assert {m["msg_id"] for m in listed["messages"]} >= set(first)


def test_a_flipped_byte_makes_a_lookup_answer_503_never_404(archive_relay: Tier) -> None:
    first, second = two_segments(archive_relay)
    path = segment_file(archive_relay, 0)
    flip_a_byte_inside_its_frame(path, archive_relay, 0)
    node = archive_relay.node()
    for msg_id in first:
        response = node.get(f"/query/messages/{msg_id}")
        assert response.status_code == 503, response.text
    assert node.get(f"/query/messages/{second[0]}").status_code == 200
    assert health(archive_relay) == [path.name.removesuffix(".jsonl.zst")]
    assert damaged_metric(archive_relay) == 1


def test_archive_verify_exits_non_zero_and_names_a_damaged_segment(
    archive_relay: Tier, capsys: pytest.CaptureFixture[str]
) -> None:
    two_segments(archive_relay)
    where = ["--data-dir", str(archive_relay.data_dir)]
    assert main(["archive", "--verify", *where]) == 0  # in this process: the sound case
    assert "0 damaged segments" in capsys.readouterr().out
    path = segment_file(archive_relay, 1)
    flip_a_byte_inside_its_frame(path, archive_relay, 1)
    args = [sys.executable, "-m", "relay_app.cli", "archive", "--verify", *where]
    damaged = subprocess.run(args, cwd=REPO, capture_output=True, timeout=60, check=False)
    assert damaged.returncode == 1, damaged.stdout.decode()
    assert path.name.removesuffix(".jsonl.zst").encode() in damaged.stderr
    assert b"1 damaged segments" in damaged.stdout


def test_a_segment_damaged_before_it_is_verified_never_costs_a_hot_row(tier: Tier) -> None:
    rows = [row(T_OLD + i) for i in range(8)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows))

    def disk_flips_a_byte(step: str) -> None:
        if step == "written":
            (path,) = tier.directory.glob("*.jsonl.zst")
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))

    with pytest.raises(SegmentDamaged):
        tier.archiver(on_step=disk_flips_a_byte).run_once()
    assert tier.hot_ids() == [r.msg_id for r in rows]
    assert tier.archive.manifest().segments == ()
    assert tier.store.get_message(rows[0].msg_id) is not None
    run = tier.archiver().run_once()  # the disk is sound again
    assert (run.orphans_removed, run.moved) == (1, 8)
    assert tier.segment_files() == tier.recorded_files()


def test_a_segment_cut_short_before_it_is_verified_never_costs_a_hot_row(tier: Tier) -> None:
    rows = [row(T_OLD + i) for i in range(8)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows))

    def disk_loses_the_tail(step: str) -> None:
        if step == "written":
            (path,) = tier.directory.glob("*.jsonl.zst")
            path.write_bytes(path.read_bytes()[:-3])

    with pytest.raises(SegmentDamaged):
        tier.archiver(on_step=disk_loses_the_tail).run_once()
    assert tier.hot_ids() == [r.msg_id for r in rows]
    assert tier.archived_ids() == []


def test_a_missing_segment_is_named_and_its_messages_answer_503(archive_relay: Tier) -> None:
    first, _ = two_segments(archive_relay)
    path = segment_file(archive_relay, 0)
    path.unlink()
    archive_relay.mark_archived(archive_relay.hot_ids()[0])  # a new generation: reread
    assert archive_relay.archiver().run_once().moved == 1
    assert path.name.removesuffix(".jsonl.zst") in health(archive_relay)
    response = archive_relay.node().get(f"/query/messages/{first[0]}")
    assert response.status_code == 503, response.text


def test_restore_from_a_damaged_segment_changes_nothing_and_says_so(archive_relay: Tier) -> None:
    first, _ = two_segments(archive_relay)
    flip_a_byte_inside_its_frame(segment_file(archive_relay, 0), archive_relay, 0)
    session, csrf = archive_relay.operator()
    response = session.post(
        f"{archive_relay.url}/messages/actions",
        data={"csrf": csrf, "action": "restore", "msg_id": first[0]},
        timeout=10,
    )
    assert response.status_code == 200
    assert "Nothing changed" in response.text
    assert first[0] not in archive_relay.hot_ids()
    assert archive_relay.node().get(f"/query/messages/{first[0]}").status_code == 503
