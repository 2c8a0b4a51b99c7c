"""The corpora of `bench archive`: bench query's realistic one, made half due, and random words.

Realistic: `bench query`'s corpus (its generator and its cache, .bench-cache/query-<N>/):
leads, errors and task reports from 40 agents on 6 nodes over 60 days, their text drawn
from a vocabulary of 5,000 random words, 40% of the messages archived by the operator.
Copied once into .bench-cache/archive-<N>/ and changed there so that about half of it
is due: the operator's Archive is undone in the newer half but for one message in
SLICE (so a slice is archived by action, the older half by age), and the file is
rebuilt by VACUUM in incremental auto-vacuum, as the relay creates a new file (a file
made before the archive existed keeps its mode and never shrinks; see docs/ARCHIVE.md).

Pessimistic: the same fields and shapes, but every word of every text drawn afresh
from random letters (3 to 9 of a-z), so no word repeats between messages. Written by the
archiver's own segment writer (`write_segment`, 5,000 rows a segment as a move writes
them) without a database: only the compression figures are taken from it.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.query import ROLES, _cached
from relay_app.archive.export import COLUMNS, chunks
from relay_app.archive.mover import SEGMENT_ROWS
from relay_app.archive.segment import write_segment
from relay_app.store_archive import Candidate
from relay_app.store_search import content_text
from relay_app.stores.sqlite_schema import MIGRATIONS
from runtime.core.envelope import new_msg_id

SLICE = 5  # one in SLICE of the newer half's operator-archived messages stays archived
DB = Path("messages") / "cluster_messages.db"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
UNDO_ARCHIVE = (
    "UPDATE messages SET status = 'acknowledged'"
    " WHERE status = 'archived' AND received_at >= ? AND id % ? != 0"
)


def realistic_base(cache_dir: Path, count: int) -> tuple[Path, float]:
    """The half-due copy of bench query's corpus (built once), and its age cutoff."""
    base = cache_dir / f"archive-{count}"
    meta = base / "corpus.json"
    if meta.exists():
        found = json.loads(meta.read_text())
        if found.get("schema") == len(MIGRATIONS):
            return base, float(found["cutoff"])
    source = _cached(cache_dir, count) / DB
    building = cache_dir / f"archive-{count}.building"
    shutil.rmtree(building, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    (building / DB).parent.mkdir(parents=True)
    began = time.perf_counter()
    shutil.copyfile(source, building / DB)
    cutoff = _make_half_due(building / DB, count)
    (building / "corpus.json").write_text(json.dumps({"schema": len(MIGRATIONS),
                                                      "cutoff": cutoff}))  # fmt: skip
    building.rename(base)
    print(f"built the half-due corpus of {count} in {time.perf_counter() - began:.0f} s",
          flush=True)  # fmt: skip
    return base, cutoff


def _make_half_due(db: Path, count: int) -> float:
    """Undo most Archive actions in the newer half; rebuild in incremental auto-vacuum."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        cutoff = float(conn.execute("SELECT received_at FROM messages ORDER BY received_at"
                                    " LIMIT 1 OFFSET ?", (count // 2,)).fetchone()[0])  # fmt: skip
        conn.execute("BEGIN")
        conn.execute(UNDO_ARCHIVE, (cutoff, SLICE))
        conn.execute("COMMIT")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return cutoff


def due_and_hot_ids(db: Path, cutoff: float, count: int, seed: int) -> tuple[list[str], list[str]]:
    """`count` msg_ids the archiver will move and `count` it will leave hot, at random."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT msg_id, status = 'archived' OR received_at < ? FROM messages", (cutoff,)
        ).fetchall()
    finally:
        conn.close()
    rng = random.Random(seed)
    due = [m for m, d in rows if d]
    hot = [m for m, d in rows if not d]
    return rng.sample(due, min(count, len(due))), rng.sample(hot, min(count, len(hot)))


def pessimistic(count: int) -> dict[str, Any]:
    """Compression of `count` random-word messages by the archiver's segment writer."""
    rng = random.Random(20261201)
    raw = archive = index = 0
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-archive-random-") as tmp:
        for n, chunk in enumerate(chunks(_random_rows(rng, count), SEGMENT_ROWS)):
            raw += sum(len(orjson.dumps({k: c.message[k] for k in COLUMNS})) + 1 for c in chunk)
            written = write_segment(Path(tmp), f"random-{n}", chunk)
            archive += written.size
            index += len(written.index.encode())
            (Path(tmp) / f"random-{n}.jsonl.zst").unlink()
    took = time.perf_counter() - began
    print(f"pessimistic corpus: {count} messages written in {took:.0f} s", flush=True)
    return {"random_messages": count, "random_raw_ndjson_bytes": raw,
            "random_segment_bytes": archive, "random_index_bytes": index,
            "random_archive_bytes": archive + index,
            "random_archive_ratio": round((archive + index) / raw, 4)}  # fmt: skip


def _random_rows(rng: random.Random, count: int) -> Iterator[Candidate]:
    """Rows shaped as bench query's, every word of their text fresh random letters."""
    start = time.time() - 60 * 86400
    step = 60 * 86400 / max(count, 1)
    for i in range(count):
        ts = start + i * step
        words = " ".join("".join(rng.choices(LETTERS, k=rng.randint(3, 9)))
                         for _ in range(rng.randint(8, 30)))  # fmt: skip
        content = _random_content(rng, i, words)
        agent = rng.randrange(40)
        message = {"msg_id": new_msg_id(ts), "timestamp": ts, "agent_id": f"agent-{agent:02d}",
                   "node_id": f"node-{agent % 6}", "task_id": f"task-{rng.randint(1, 5000)}",
                   "sender": f"agent-{agent:02d}", "recipient": None, "role": ROLES[agent % 5],
                   "priority": rng.choice(("low", "normal", "high", "critical")),
                   "content": orjson.Fragment(orjson.dumps(content)),
                   "received_at": ts + 0.05, "status": "archived", "id": i + 1}  # fmt: skip
        yield Candidate(message, content_text(content))


def _random_content(rng: random.Random, i: int, words: str) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.4:
        return {"kind": "lead", "company": f"Company {i % 9973}", "score": round(rng.random(), 2),
                "summary": words}  # fmt: skip
    if kind < 0.6:
        return {"kind": "error", "error": f"Error {rng.randint(1, 60)}", "detail": words}
    return {"kind": "task_complete", "task": f"task-{i % 5000}", "notes": words}
