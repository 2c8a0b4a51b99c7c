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

from bench.tools.relay_http import NODE, Client, node_headers, operator_client, start_relay_on
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


def queries(url: str, msg_ids: list[str], newest: float, runs: int) -> dict[str, Any]:
    """Node API and inbox queries at the client, p50 and p99 of each group."""
    since = newest - 3600
    api = [
        "/query/messages?limit=100",
        "/query/messages?agent=agent-07&limit=100",
        "/query/messages?task=task-123&limit=100",
        *(f"/query/messages/{m}" for m in msg_ids),
    ]
    groups = {
        "api": api,
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
            client = node if name in ("api", "since") else operator
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
    slowest = max(medians, key=lambda path: medians[path])
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


def measure_at(
    data_dir: Path, work: Path, size: int, quick: bool, timeline: Timeline
) -> dict[str, Any]:
    """Serve the database from a relay process and measure ingest and queries."""
    count, msg_ids, newest = stored(data_dir)
    relay = start_relay_on(data_dir, work / label(size))
    try:
        found: dict[str, Any] = {"stored_before": count}
        found |= queries(relay.url, msg_ids, newest, 10 if quick else 30)
        found |= ingest(relay.url, 100 if quick else 300, 6 if quick else 20, count, timeline)
    finally:
        relay.terminate()
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Grow the corpus size by size; the last line is one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench scaling")
    parser.add_argument("--quick", action="store_true", help="10k and 100k only, fewer samples")
    parser.add_argument("--sizes", help="comma-separated corpus sizes (default 10k,100k,1M)")
    args = parser.parse_args(argv)
    default = "10000,100000" if args.quick else "10000,100000,1000000"
    sizes = sorted(int(s) for s in (args.sizes or default).split(","))
    rng = random.Random(20240601)
    timeline = Timeline(int(sizes[-1] * 1.05))  # room for the posted rows after the last fill
    result: dict[str, Any] = {"sizes": sizes, "at": {}, "fill": "store writer, not HTTP"}
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        data_dir = Path(tmp) / "relay"
        for size in sizes:
            have = stored(data_dir)[0] if (data_dir / "messages").exists() else 0
            fill_s = fill(data_dir, have, size, rng, timeline) if size > have else 0.0
            measured = measure_at(data_dir, Path(tmp), size, args.quick, timeline)
            at = {"fill_s": round(fill_s, 1), **measured}
            result["at"][label(size)] = at
            print(f"{label(size):>4}: {json.dumps(at)}", flush=True)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return 0
