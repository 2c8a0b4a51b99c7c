"""`commander-relay export`: hot and archived messages, every field as the API showed it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from relay_app.archive.restore import restore_op
from relay_app.cli import main
from relay_app.store_inbox import Audit
from tests.relay_app.archive.tiers import T_OLD, Tier, envelope
from tests.relay_app.helpers import batch
from tests.support import REPO

# Content that a careless round trip would change: floats, big integers, unicode, nesting.
CONTENTS = [
    {"text": "plain"},
    {"x": 0.1, "y": 1e-7, "z": -0.0, "big": 2**53 + 1, "neg": -(2**62)},
    {"text": '日本語 émoji 🦘 \u2028 quotes " and \\ backslash'},
    {"nested": {"list": [1, [2, [3, {"deep": None}]]], "flag": True}},
    {},
]


def seed(relay: Tier) -> dict[str, dict[str, Any]]:
    """30 messages with every optional field; 15 moved, one of them restored, 2 archived
    and hot. Returns each as GET /query/messages/<msg_id> showed it before the move."""
    envs = [
        envelope(T_OLD + i, agent=f"agent-{1 + i % 2}", content=CONTENTS[i % len(CONTENTS)],
                 task_id=f"task-{i % 4}", recipient=f"agent-{i % 3}", role="coder",
                 priority=("low", "normal", "high")[i % 3])
        for i in range(30)
    ]  # fmt: skip
    node = relay.node()
    assert node.send_batch(batch(envs, "seed")).status_code == 200
    ids = [e.msg_id for e in envs]
    relay.mark_archived(*ids[::2], ids[1], ids[3])
    shown = {m: node.get(f"/query/messages/{m}").json() for m in ids}
    assert relay.archiver().run_once().moved == 17
    relay.mark_archived(ids[1], ids[3])  # hot, archived: already marked before
    op = restore_op(relay.store, [ids[4]], Audit("restore", "operator", time.time()))
    assert op is not None
    relay.writer.write([op], time.time())
    shown[ids[4]] = relay.lookup(ids[4])  # back acknowledged
    relay.mark_archived(ids[1], ids[3])
    return shown


def export(relay: Tier, out: Path, *args: str) -> None:
    """Run `commander-relay export` on the relay's data directory (beside the live relay)."""
    argv = ["export", "--data-dir", str(relay.data_dir), "--out", str(out), *args]
    assert main(argv) == 0


def ndjson(path: Path) -> list[dict[str, Any]]:
    """The rows of an NDJSON export."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def parquet(path: Path) -> list[dict[str, Any]]:
    """The rows of a Parquet export, content parsed."""
    rows = pq.read_table(path).to_pylist()
    return [{**r, "content": orjson.loads(r["content"])} for r in rows]


@pytest.mark.parametrize(("fmt", "read"), [("ndjson", ndjson), ("parquet", parquet)])
def test_an_export_holds_every_message_once_with_every_field_as_shown(
    archive_relay: Tier, tmp_path: Path, fmt: str, read: Any
) -> None:
    shown = seed(archive_relay)
    out = tmp_path / f"export.{fmt}"
    export(archive_relay, out, "--format", fmt)
    rows = read(out)
    assert sorted(r["msg_id"] for r in rows) == sorted(shown)
    for exported in rows:
        assert exported == shown[exported["msg_id"]]


def test_an_export_of_a_window_holds_just_its_messages(archive_relay: Tier, tmp_path: Path) -> None:
    shown = seed(archive_relay)
    out = tmp_path / "window.ndjson"
    export(archive_relay, out, "--since", "2020-09-13T12:26:45", "--until", str(T_OLD + 15))
    wanted = {m for m, f in shown.items() if T_OLD + 5 <= f["timestamp"] < T_OLD + 15}
    assert sorted(r["msg_id"] for r in ndjson(out)) == sorted(wanted)
    assert len(wanted) == 10


def test_an_export_whose_window_ends_before_it_starts_is_empty(
    archive_relay: Tier, tmp_path: Path
) -> None:
    seed(archive_relay)
    out = tmp_path / "none.ndjson"
    export(archive_relay, out, "--since", str(T_OLD + 20), "--until", str(T_OLD + 10))
    assert out.read_bytes() == b""
    api = archive_relay.node().query(archived="include", since=T_OLD + 20, until=T_OLD + 10)
    assert api["messages"] == []


def test_an_export_of_an_empty_store_is_empty(tier: Tier, tmp_path: Path) -> None:
    for fmt in ("ndjson", "parquet"):
        out = tmp_path / f"empty.{fmt}"
        assert main(["export", "--data-dir", str(tier.data_dir), "--out", str(out),
                     "--format", fmt]) == 0  # fmt: skip
        rows = ndjson(out) if fmt == "ndjson" else parquet(out)
        assert rows == []


@pytest.mark.parametrize(
    "when", ["yesterday", "", "2020-13-45", "nan", "inf", "-Infinity", "1e999"]
)
def test_an_export_with_a_time_it_cannot_read_stops_before_writing(
    tier: Tier, tmp_path: Path, when: str
) -> None:
    out = tmp_path / "never.ndjson"
    with pytest.raises(SystemExit) as stopped:
        main(["export", "--data-dir", str(tier.data_dir), "--since", when, "--out", str(out)])
    assert stopped.value.code == 2
    assert not out.exists()


def test_a_parquet_export_streams_through_a_pipe(archive_relay: Tier, tmp_path: Path) -> None:
    shown = seed(archive_relay)
    args = [sys.executable, "-m", "relay_app.cli", "export", "--format", "parquet",
            "--data-dir", str(archive_relay.data_dir)]  # fmt: skip
    # stdout is a pipe, which cannot seek: as in `commander-relay export ... | duckdb`.
    done = subprocess.run(args, cwd=REPO, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    (tmp_path / "piped.parquet").write_bytes(done.stdout)
    rows = parquet(tmp_path / "piped.parquet")
    assert sorted(r["msg_id"] for r in rows) == sorted(shown)
    assert b"30 messages" in done.stderr
