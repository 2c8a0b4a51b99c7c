"""How ingest and queries cost as the corpus grows: 10k, 100k and 1M stored messages.

    python -m bench scaling [--quick] [--sizes 10000,100000,1000000]

One relay database grows from size to size. Filling is not timed through HTTP (a million
POSTs would take the whole run): rows go in through the store's own write path, the
same `SqliteWriter.write` the IngestActor calls (executemany into every index, triggers
included, synchronous FULL), 5,000 rows a transaction, and the full-text index is brought
up to date with the SQLite store's own `index_pending`. No ANALYZE is run, since the relay
never runs one: query plans are the ones production gets.

At each size a relay process serves the database and, from one keep-alive client:
- ingest: single POST /sync/message latency (p50, p99) and the rate of gzip batches of 500
  to POST /sync/messages from two connections;
- node API queries (GET /query/messages: newest page, by agent, by task; GET
  /query/messages/<msg_id>), p50 and p99;
- incremental sync (fewer runs): GET /query/messages?since= an hour before the newest
  message, and since just after it (the poll of a node when nothing is new);
- the inbox (/messages: first page, a filter, a search), p50 and p99.
Every row, filled or posted, gets its timestamp from one timeline over 60 days in id
order (as rows arrive in production), so "since an hour ago" means the newest rows.
The quick mode stops at 100k. Last line: {"sizes": [...], "at": {"10k": {...}, ...}}.

With `--hot N` the store keeps at most N messages hot: after each fill, the rows past
the newest N are archived (status set as the inbox's Archive sets it) and moved into
segments by `commander-relay archive` as its own process (timed, `archive_s`), so a size
counts messages stored in all, hot plus archive. Then a msg_id lookup of archived rows
joins the node API group. `--sizes 1000000,10000000 --hot 1000000` is issue 16's 10M.
The relay takes messages of any agent from its node (`--allow-any-agent`): the posted
agents belong to no topology.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench._archive_run import relay_command
from bench.archive import start_relay
from bench.tools.relay_http import NODE, Client, node_headers, operator_client
from bench.tools.stats import percentile
from relay_app.store import MessageRow, StoreMessages
from runtime.core.envelope import MessageEnvelope, encode_content, new_msg_id

CHUNK = 5000
BATCH = 500
ROLES = ("recruiter", "coder", "reasoner", "synthesizer", "commander")
NODES = ("Gillsystems-Main", "Gillsystems-Laptop", "Gillsystems-Deck", "node-4", "node-5")
PHRASES = ("asked for a quote via the contact form", "TimeoutError after 30 s, will retry")
SPAN_S = 60 * 86400
SINCE_RUNS = 5  # these may scan the whole table: few runs


class Timeline:
    """Timestamps in row order: row n of `last` rows sits at now - 60 days + n steps."""

    def __init__(self, last: int) -> None:
        self.step = SPAN_S / last
        self.start = time.time() - SPAN_S

    def at(self, row: int) -> float:
        """The timestamp of the row-th row stored."""
        return self.start + row * self.step


def label(size: int) -> str:
    """10000 -> '10k', 1000000 -> '1m'."""
    return f"{size // 1_000_000}m" if size >= 1_000_000 else f"{size // 1000}k"


def rows(
    rng: random.Random, start: int, count: int, words: list[str], timeline: Timeline
) -> Iterator[MessageRow]:
    """Realistic rows: 40 agents over 5 roles and 5 nodes, 5,000 tasks, 60 days of time."""
    for i in range(start, start + count):
        agent = i * 7919 % 40
        ts = timeline.at(i)
        text = " ".join(rng.choices(words, k=rng.randint(8, 30)))
        content = {"kind": "report", "seq": i, "summary": f"{rng.choice(PHRASES)} {text}"}
        yield MessageRow(
            new_msg_id(ts), ts, f"task-{rng.randint(1, 5000)}", f"agent-{agent:02d}", None,
            ROLES[agent % 5], encode_content(content), NODES[agent % 5], f"agent-{agent:02d}",
            rng.choices(("low", "normal", "high", "critical"), (15, 65, 15, 5))[0],
        )  # fmt: skip


def fill(data_dir: Path, have: int, want: int, rng: random.Random, timeline: Timeline) -> float:
    """Add rows through the store's own writer until `want` are stored; return the seconds."""
    from relay_app.stores.sqlite import SqliteStore
    from relay_app.stores.sqlite_fts import index_pending
    from runtime.core.sqlite import connect

    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9)))
             for _ in range(5000)]  # fmt: skip
    store = SqliteStore(data_dir)
    writer = store.open_writer()
    start = time.perf_counter()
    try:
        for first in range(have, want, CHUNK):
            chunk = tuple(rows(rng, first, min(CHUNK, want - first), words, timeline))
            writer.write([StoreMessages(node_id=NODE, rows=chunk)], time.time())
        conn = connect(store.path)
        while index_pending(conn, 20_000):
            pass
        conn.close()
    finally:
        writer.close()
        store.close()
    return time.perf_counter() - start


def _wire(i: int, ts: float) -> dict[str, Any]:
    env = MessageEnvelope.new(
        agent_id=f"agent-{i % 40:02d}", node_id=NODE, role="recruiter", task_id=f"task-{i % 5000}",
        content={"kind": "report", "seq": i, "summary": f"{PHRASES[i % 2]} lorem ipsum " * 3},
        clock=lambda: ts,
    )  # fmt: skip
    return env.to_wire()


def ingest(
    url: str, singles: int, batches: int, first: int, timeline: Timeline
) -> dict[str, float]:
    """Single-message latency, then the rate of gzip batches of 500 from two connections."""
    client = Client(url, {**node_headers(), "Content-Type": "application/json"})
    samples = []
    for i in range(singles + 20):
        body = orjson.dumps(_wire(i, timeline.at(first + i)))
        start = time.perf_counter()
        status, _, answer = client.request("POST", "/sync/message", body)
        if status != 200:
            raise RuntimeError(f"POST /sync/message answered {status}: {answer[:200]!r}")
        if i >= 20:
            samples.append((time.perf_counter() - start) * 1000)
    client.close()
    bodies = [
        gzip.compress(orjson.dumps({"batch_id": new_msg_id(), "node_id": NODE,
                                    "messages": [_wire(n, timeline.at(n)) for n in range(
                                        first + singles + 20 + b * BATCH,
                                        first + singles + 20 + (b + 1) * BATCH)]}), 1)
        for b in range(batches)
    ]  # fmt: skip
    start = time.perf_counter()
    threads = [threading.Thread(target=_send, args=(url, bodies[k::2])) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = batches * BATCH / (time.perf_counter() - start)
    return {
        "single_p50_ms": round(percentile(samples, 50), 2),
        "single_p99_ms": round(percentile(samples, 99), 2),
        "batch_msgs_per_s": round(rate),
    }


def _send(url: str, bodies: list[bytes]) -> None:
    client = Client(url, {**node_headers(), "Content-Type": "application/json"})
    for body in bodies:
        status, _, answer = client.request(
            "POST", "/sync/messages", body, {"Content-Encoding": "gzip"}
        )
        if status != 200:
            raise RuntimeError(f"POST /sync/messages answered {status}: {answer[:200]!r}")
    client.close()


def queries(
    url: str, msg_ids: list[str], newest: float, runs: int, archived: Sequence[str] = ()
) -> dict[str, Any]:
    """Node API and inbox queries at the client, p50 and p99 of each group."""
    since = newest - 3600
    api = [
        "/query/messages?limit=100",
        "/query/messages?agent=agent-07&limit=100",
        "/query/messages?task=task-123&limit=100",
        *(f"/query/messages/{m}" for m in msg_ids),
    ]
    if archived:
        api_archived = [f"/query/messages/{m}" for m in archived]
    groups = {
        "api": api,
        **({"archived_lookup": api_archived} if archived else {}),
        "since": [
            f"/query/messages?since={since:.3f}&limit=100",
            f"/query/messages?since={newest + 1:.3f}&limit=100",
        ],
        "inbox": ["/messages", "/messages?role=coder", "/messages?agent=agent-07&range=7d"],
        "search": ["/messages?q=quote", "/messages?q=%22contact+form%22&role=recruiter"],
    }
    node, operator = Client(url, node_headers()), operator_client(url)
    out: dict[str, Any] = {}
    medians: dict[str, float] = {}
    try:
        for name, paths in groups.items():
            client = node if name in ("api", "since", "archived_lookup") else operator
            n = SINCE_RUNS if name == "since" else runs
            per_path = {path: client.time_gets([path], n, warm=1) for path in paths}
            samples = [ms for each in per_path.values() for ms in each]
            out[f"{name}_p50_ms"] = round(percentile(samples, 50), 2)
            out[f"{name}_p99_ms"] = round(percentile(samples, 99), 2)
            for path, each in per_path.items():
                medians[path] = percentile(each, 50)
    finally:
        node.close()
        operator.close()
    hot = [path for path in medians if path not in groups.get("archived_lookup", [])]
    slowest = max(hot, key=lambda path: medians[path])
    out["slowest"] = f"{slowest} p50 {medians[slowest]:.2f} ms"
    return out


def stored(data_dir: Path) -> tuple[int, list[str], float]:
    """How many rows the database holds, a few msg_ids spread over it, the newest timestamp."""
    import sqlite3

    db = data_dir / "messages" / "cluster_messages.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        count, top, newest = conn.execute(
            "SELECT COUNT(*), MAX(id), MAX(timestamp) FROM messages"
        ).fetchone()
        picks = [max(1, top * k // 5) for k in range(1, 5)]
        ids = [conn.execute("SELECT msg_id FROM messages WHERE id >= ? LIMIT 1", (p,)).fetchone()[0]
               for p in picks]  # fmt: skip
    finally:
        conn.close()
    return int(count), ids, float(newest)


def archive_all_but(data_dir: Path, keep: int) -> dict[str, Any]:
    """Archive every hot row but the newest `keep` and move them by `commander-relay
    archive`; return the seconds the move took and a few archived msg_ids."""
    import sqlite3

    db = data_dir / "messages" / "cluster_messages.db"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]
        hot = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        first = conn.execute("SELECT id FROM messages ORDER BY id DESC LIMIT 1 OFFSET ?",
                             (keep,)).fetchone()  # fmt: skip
        if hot <= keep or first is None:
            return {}
        began = time.perf_counter()
        conn.execute("UPDATE messages SET status = 'archived' WHERE id <= ?", (first[0],))
        marked = time.perf_counter() - began
        picks = [conn.execute("SELECT msg_id FROM messages WHERE id >= ? LIMIT 1",
                              (max(1, first[0] * k // 5),)).fetchone()[0]
                 for k in range(1, 5)]  # fmt: skip
    finally:
        conn.close()
    done = relay_command("archive", "--data-dir", str(data_dir), "--after-days", "0")
    print(f"{done.out.strip()} (top id {top})", flush=True)
    return {"archived_ids": picks, "mark_s": round(marked, 1), "archive_s": round(done.seconds, 1),
            "archiver_rss_mb": round(done.rss_mb, 1)}  # fmt: skip


def measure_at(
    data_dir: Path, work: Path, size: int, quick: bool, timeline: Timeline, hot: int | None = None
) -> dict[str, Any]:
    """Serve the database from a relay process and measure ingest and queries."""
    moved = archive_all_but(data_dir, hot) if hot is not None else {}
    archived = moved.pop("archived_ids", [])
    count, msg_ids, newest = stored(data_dir)
    relay = start_relay(data_dir, work / label(size))
    try:
        found: dict[str, Any] = {"stored_before": count, **moved}
        if hot is not None:
            found["stored_in_all"] = _stored_in_all(data_dir)
        found |= queries(relay.url, msg_ids, newest, 10 if quick else 30, archived)
        found |= ingest(relay.url, 100 if quick else 300, 6 if quick else 20, count, timeline)
    finally:
        relay.terminate()
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Grow the corpus size by size; the last line is one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench scaling")
    parser.add_argument("--quick", action="store_true", help="10k and 100k only, fewer samples")
    parser.add_argument("--sizes", help="comma-separated corpus sizes (default 10k,100k,1M)")
    parser.add_argument("--hot", type=int, help="keep at most this many hot; archive the rest")
    args = parser.parse_args(argv)
    default = "10000,100000" if args.quick else "10000,100000,1000000"
    sizes = sorted(int(s) for s in (args.sizes or default).split(","))
    rng = random.Random(20240601)
    timeline = Timeline(int(sizes[-1] * 1.05))  # room for the posted rows after the last fill
    result: dict[str, Any] = {"sizes": sizes, "at": {}, "fill": "store writer, not HTTP"}
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        data_dir = Path(tmp) / "relay"
        for size in sizes:
            have = _stored_in_all(data_dir)
            fill_s = fill(data_dir, have, size, rng, timeline) if size > have else 0.0
            measured = measure_at(data_dir, Path(tmp), size, args.quick, timeline, args.hot)
            at = {"fill_s": round(fill_s, 1), **measured}
            result["at"][label(size)] = at
            print(f"{label(size):>4}: {json.dumps(at)}", flush=True)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return 0


def _stored_in_all(data_dir: Path) -> int:
    """Messages stored, hot and archived: the largest row id (rows are never deleted but
    by the archive, and the fill and the posts number them in order)."""
    import sqlite3

    db = data_dir / "messages" / "cluster_messages.db"
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0])
    finally:
        conn.close()
