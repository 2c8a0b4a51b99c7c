"""The processes of `bench archive`: the archiver and the exports as `commander-relay`
commands, a writer posting to the relay meanwhile, and the sizes on disk.

Each command runs as its own process, so its peak memory (VmHWM) is its own.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.tools.relay_http import NODE, Client, node_headers
from runtime.core.envelope import MessageEnvelope
from tests.support import REPO
from tests.support.proc_stats import status_kb

POST_GAP_S = 0.02  # one single POST every 20 ms: a steady trickle, not a load
HWM_EVERY_S = 0.05


@dataclass(frozen=True)
class Command:
    """One finished command: its output, wall time and peak resident memory."""

    out: str
    seconds: float
    rss_mb: float


def relay_command(*args: str) -> Command:
    """Run `commander-relay <args>` as a process; SystemExit with its output if it fails."""
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "relay_app.cli", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    peak: list[int] = [0]
    watcher = threading.Thread(target=_watch_hwm, args=(proc.pid, peak), daemon=True)
    watcher.start()
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read().decode(errors="replace")
    watcher.join(10)
    code = proc.wait()
    seconds = time.perf_counter() - began
    if code != 0:
        command = " ".join(args)
        raise SystemExit(f"bench: commander-relay {command} exited {code}:\n{out}")
    return Command(out, seconds, peak[0] / 1024)


def _watch_hwm(pid: int, peak: list[int]) -> None:
    """Keep the process's VmHWM (peak resident kB) in peak[0] until it exits.

    Read from /proc rather than from wait4's ru_maxrss: Linux carries the parent's
    resident size at fork into the child's ru_maxrss across exec, which would report
    this benchmark's own memory. VmHWM belongs to the process's own address space.
    """
    while True:
        try:
            peak[0] = max(peak[0], status_kb(pid, "VmHWM"))
        except (OSError, KeyError):
            return  # gone, or a zombie (no memory lines left)
        time.sleep(HWM_EVERY_S)


@dataclass
class Poster:
    """Single POST /sync/message to the relay every POST_GAP_S, in a thread, timed."""

    url: str
    first: int = 0
    latencies: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Poster:
        """Start posting."""
        self._thread = threading.Thread(target=self._run, name="poster", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Poster:
        """Stop posting and wait for the last request."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        return self

    def _run(self) -> None:
        client = Client(self.url, {**node_headers(), "Content-Type": "application/json"})
        n = self.first
        try:
            while not self._stop.wait(POST_GAP_S):
                body = orjson.dumps(_wire(n))
                began = time.perf_counter()
                status, _, answer = client.request("POST", "/sync/message", body)
                self.latencies.append((time.perf_counter() - began) * 1000)
                if status != 200:
                    self.failed.append(f"{status}: {answer[:120]!r}")
                n += 1
        except OSError as exc:
            self.failed.append(repr(exc))
        finally:
            client.close()


def post_for(url: str, first: int, count: int) -> Poster:
    """`count` single POSTs at the poster's pace, from `first` (the baseline)."""
    poster = Poster(url, first).start()
    deadline = time.monotonic() + count * POST_GAP_S * 4 + 30
    while len(poster.latencies) < count and time.monotonic() < deadline:
        time.sleep(POST_GAP_S)
    return poster.stop()


def _wire(i: int) -> dict[str, Any]:
    env = MessageEnvelope.new(
        agent_id=f"agent-{i % 40:02d}", node_id=NODE, role="recruiter", task_id=f"task-{i % 50}",
        content={"kind": "report", "seq": i, "text": f"posted while archiving {i} " * 4},
    )  # fmt: skip
    return env.to_wire()


def sizes(data_dir: Path) -> dict[str, int]:
    """The hot file (after a checkpoint), the segments, their indexes, archived_ids."""
    db = data_dir / "messages" / "cluster_messages.db"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        index, segments, rows = conn.execute(
            "SELECT COALESCE(SUM(LENGTH(frame_index)), 0), COUNT(*), COALESCE(SUM(rows), 0)"
            " FROM archive_segments"
        ).fetchone()
        ids_bytes = conn.execute(
            "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = 'archived_ids'"
        ).fetchone()[0]
        located = conn.execute("SELECT COUNT(*) FROM archived_ids").fetchone()[0]
        hot = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    files = sum(p.stat().st_size for p in (data_dir / "archive").glob("*.jsonl.zst"))
    return {"hot_bytes": hot_bytes(data_dir), "hot_free_bytes": free * page, "hot_rows": hot,
            "segment_bytes": files, "index_bytes": index, "segments": segments,
            "archived": rows, "archived_ids_located": located,
            "archived_ids_bytes": ids_bytes}  # fmt: skip


def hot_bytes(data_dir: Path) -> int:
    """The hot database file and its WAL, bytes."""
    db = data_dir / "messages" / "cluster_messages.db"
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def scan_export(path: Path, words: dict[str, str]) -> dict[str, Any]:
    """Count an NDJSON export's lines and bytes, all and archived, and the archived lines
    holding each word of `words` (a substring of the lowercased line: approximate)."""
    lines = raw = archived = archived_bytes = 0
    holding = dict.fromkeys(words, 0)
    with path.open("rb") as f:
        for line in f:
            lines += 1
            raw += len(line)
            if orjson.loads(line)["status"] != "archived":
                continue
            archived += 1
            archived_bytes += len(line)
            lowered = line.lower()
            for name, word in words.items():
                holding[name] += word.encode() in lowered
    return {"exported": lines, "raw_ndjson_bytes": raw, "archived_exported": archived,
            "archived_raw_ndjson_bytes": archived_bytes, "word_counts": holding}  # fmt: skip


def vacuumed_bytes(data_dir: Path, work: Path) -> int:
    """What the hot file would be after a full VACUUM (VACUUM INTO a copy): the floor of
    the hot file's size after a move."""
    db = data_dir / "messages" / "cluster_messages.db"
    copy = work / "vacuumed.db"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("VACUUM INTO ?", (str(copy),))
    finally:
        conn.close()
    size = copy.stat().st_size
    copy.unlink()
    return size
