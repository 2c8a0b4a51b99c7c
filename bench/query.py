"""The /messages inbox at scale: first page, filtered pages and searches over 1,000,000 messages.

    python -m bench query [--quick] [--messages N] [--runs R] [--cache-dir DIR]

Fills a relay database once (cached in .bench-cache/query-<N>/, reused while the schema
version matches), then times each request inside the relay's WSGI app (routing, session,
SQL, template: everything but the network), p50 and p99.
The node API's pages (GET /query/messages: each filter, a time window, a cursor's next
page) are timed the same way, as node-a. Then, beside Datasette serving the same
database file (bench/tools/datasette.py), the same views timed at the client over HTTP
on both: the relay's pages and Datasette's JSON API with the equivalent filters and
`_search` (--no-datasette skips this part). An older cached database is brought to the
current schema by the store's migrations (timed) and analyzed again, not refilled.
Last line: {"inbox_p99_ms", "filter_p99_ms", "search_p99_ms", "datasette_filter_p99_ms",
"datasette_search_p99_ms", "relay_client_filter_p99_ms", "api_p99_ms", ...}; the targets
are <= 50, and the relay at least as fast as Datasette on each.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.tools.stats import percentile

CACHE_DIR = Path(".bench-cache")
FULL = 1_000_000
QUICK = 50_000
ROLES = ("recruiter", "coder", "reasoner", "synthesizer", "commander")
NODES = ("Gillsystems-Main", "Gillsystems-Laptop", "Gillsystems-Deck", "node-4", "node-5", "node-6")
PRIORITIES = (("low", 15), ("normal", 65), ("high", 15), ("critical", 5))
STATUSES = (("archived", 40), ("acknowledged", 40), ("unread", 20))
INSERT = (
    "INSERT INTO messages (msg_id, timestamp, task_id, sender, recipient, role, content,"
    " node_id, agent_id, priority, status, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
INBOX = ("/messages",)
FILTERS = (
    "/messages?role=coder",
    "/messages?agent=agent-07&range=7d",
    "/messages?priority=critical&status=unread",
)
API = (
    "/query/messages?limit=100",
    "/query/messages?agent=agent-07&limit=100",
    "/query/messages?role=coder&limit=100",
    "/query/messages?node=node-4&limit=100",
    "/query/messages?priority=critical&limit=100",
    "/query/messages?status=unread&limit=100",
    "/query/messages?task=task-42&limit=100",
    "/query/messages?agent=agent-07&order=asc&limit=100",
)
SEARCHES = (
    "/messages?q=quote",
    "/messages?q=zephyr",
    "/messages?q=%22contact+form%22",
    "/messages?q=timeo*+-retry&role=recruiter",
    "/messages?q=AND+%22+-+e-mail",
)


def _words(rng: random.Random, count: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(count)]


def _content(rng: random.Random, vocabulary: list[str], i: int) -> Any:
    text = " ".join(rng.choices(vocabulary, k=rng.randint(8, 30)))
    kind = rng.random()
    if kind < 0.4:
        return {"kind": "lead", "company": f"Company {i % 9973}", "score": round(rng.random(), 2),
                "summary": f"HOT lead asked for a quote, contact form {text}"}  # fmt: skip
    if kind < 0.6:
        error = f"TimeoutError after {rng.randint(1, 60)} s"
        return {"kind": "error", "error": error, "retry": True, "detail": text}
    return {"kind": "task_complete", "task": f"task-{i % 5000}", "notes": text}


def fill(path_dir: Path, count: int) -> Path:
    """Create the database with `count` messages and a complete full-text index."""
    from relay_app.stores.sqlite import SqliteStore
    from relay_app.stores.sqlite_fts import index_pending
    from runtime.core.envelope import encode_content, new_msg_id

    store = SqliteStore(path_dir, synchronous="OFF")
    store.close()
    rng = random.Random(20240501)
    vocabulary = _words(rng, 5000)
    agents = [(f"agent-{n:02d}", ROLES[n % len(ROLES)], NODES[n % len(NODES)]) for n in range(40)]
    start = time.time() - 60 * 86400
    step = 60 * 86400 / count
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    began = time.perf_counter()
    for chunk in range(0, count, 10_000):
        rows = []
        for i in range(chunk, min(count, chunk + 10_000)):
            agent, role, node = rng.choice(agents)
            ts = start + i * step - (rng.random() * 3600 if rng.random() < 0.01 else 0)
            content = encode_content(_content(rng, vocabulary, i))
            priority, status = _weighted(rng, PRIORITIES), _weighted(rng, STATUSES)
            task = f"task-{rng.randint(1, 5000)}"
            rows.append((new_msg_id(ts), ts, task, agent, None, role, content, node, agent,
                         priority, status, ts + 0.05))  # fmt: skip
        conn.execute("BEGIN")
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")
    while index_pending(conn, 20_000):
        pass
    conn.execute("ANALYZE")
    conn.close()
    print(f"filled {count} messages in {time.perf_counter() - began:.0f} s", flush=True)
    return store.path


def _weighted(rng: random.Random, choices: Sequence[tuple[str, int]]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _cached(cache_dir: Path, count: int) -> Path:
    """The cached database, brought to the current schema by the store's own migrations."""
    from relay_app.stores.sqlite import SqliteStore
    from relay_app.stores.sqlite_schema import MIGRATIONS

    data_dir = cache_dir / f"query-{count}"
    db = data_dir / "messages" / "cluster_messages.db"
    if db.exists():
        version = sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0]
        if version == len(MIGRATIONS):
            return data_dir
        if version < len(MIGRATIONS):
            began = time.perf_counter()
            SqliteStore(data_dir).close()
            took = time.perf_counter() - began
            conn = sqlite3.connect(db)
            conn.execute("ANALYZE")  # as the fill does: new indexes get their statistics
            conn.close()
            print(f"migrated the cached database {version} -> {len(MIGRATIONS)} in {took:.1f} s",
                  flush=True)  # fmt: skip
            return data_dir
        print("cached database has a newer schema; refilling", flush=True)
        for leftover in db.parent.iterdir():
            leftover.unlink()
    fill(data_dir, count)
    return data_dir


def _wsgi_getter(data_dir: Path) -> tuple[Callable[[str], tuple[str, float]], Callable[[], None]]:
    """A function timing one GET inside the app, and a function to stop everything."""
    from relay_app.app import create_app
    from relay_app.auth import token_sha256
    from relay_app.inbox import inbox_of
    from relay_app.inbox.sessions import COOKIE
    from relay_app.ingest import Ingest
    from relay_app.passwords import hash_password
    from relay_app.stores.sqlite import SqliteStore
    from runtime.core.config import ClusterConfig, NodeEntry, RelaySettings
    from tests.support import TOKENS

    settings = RelaySettings(data_dir=str(data_dir), min_free_bytes=0,
                             operator_password_hash=hash_password("bench"))  # fmt: skip
    node = NodeEntry("node-a", "127.0.0.1", 9, token_sha256=token_sha256(TOKENS["node-a"]))
    config = ClusterConfig(nodes=(node,), relay=settings, agents=())
    store = SqliteStore(data_dir)
    ingest = Ingest.start(store)
    app = create_app(store, config, ingest=ingest)
    inbox = inbox_of(app)
    session = inbox.logins.attempt("operator", "bench", "127.0.0.1").session
    assert session is not None

    def get(url: str) -> tuple[str, float]:
        path, _, query = url.partition("?")
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
                   "SERVER_NAME": "bench", "SERVER_PORT": "80", "HTTP_HOST": "bench",
                   "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http",
                   "HTTP_COOKIE": f"{COOKIE}={session.token}",
                   "HTTP_X_COMMANDER_NODE": "node-a",
                   "HTTP_AUTHORIZATION": f"Bearer {TOKENS['node-a']}"}  # fmt: skip
        status: list[str] = []
        began = time.perf_counter()
        body = b"".join(app(environ, lambda s, _h, _e=None: status.append(s)))
        elapsed = time.perf_counter() - began
        assert status[0].startswith("200"), (url, status, body[:300])
        return body.decode(), elapsed

    def stop() -> None:
        app.close()
        ingest.stop()
        store.close()

    return get, stop


def _time_all(
    get: Callable[[str], tuple[str, float]], urls: Sequence[str], runs: int
) -> list[float]:
    samples: list[float] = []
    for url in urls:
        for _ in range(3):
            get(url)
        samples.extend(get(url)[1] * 1000 for _ in range(runs))
    return samples


def _api_followers(get: Callable[[str], tuple[str, float]], data_dir: Path) -> tuple[str, ...]:
    """A cursor's next page, and a window of the newest hour with and without a filter."""
    db = data_dir / "messages" / "cluster_messages.db"
    conn = sqlite3.connect(db)
    newest = float(conn.execute("SELECT MAX(timestamp) FROM messages").fetchone()[0])
    conn.close()
    first, _ = get("/query/messages?agent=agent-07&limit=100")
    cursor = json.loads(first)["next"]
    return (
        f"/query/messages?agent=agent-07&limit=100&next={cursor}",
        f"/query/messages?since={newest - 3600:.0f}&limit=100",
        f"/query/messages?agent=agent-07&since={newest - 3600:.0f}&limit=100",
    )


def _beside_datasette(data_dir: Path, runs: int) -> dict[str, Any]:
    """The relay's views over HTTP beside Datasette's JSON API on the same file."""
    import tempfile

    from bench.tools.datasette import compare

    groups = {"inbox": INBOX, "filter": FILTERS, "search": SEARCHES}
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        found = compare(data_dir, Path(tmp), groups, runs)
    found["faster_than_datasette"] = all(
        found[f"relay_client_{n}_p99_ms"] <= found[f"datasette_{n}_p99_ms"] for n in groups
    )
    return found


def main(argv: list[str]) -> int:
    """Fill (once), time, print the figures; the last line is one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench query")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK} messages, fewer runs")
    parser.add_argument("--messages", type=int, help=f"messages to store (default {FULL})")
    parser.add_argument("--runs", type=int, help="timed runs per request (default 50)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    parser.add_argument("--no-datasette", action="store_true", help="skip the Datasette part")
    args = parser.parse_args(argv)
    count = args.messages or (QUICK if args.quick else FULL)
    runs = args.runs or (15 if args.quick else 50)
    data_dir = _cached(args.cache_dir, count)
    get, stop = _wsgi_getter(data_dir)
    try:
        result: dict[str, Any] = {"messages": count, "runs": runs}
        groups = [("inbox", INBOX), ("filter", FILTERS), ("search", SEARCHES),
                  ("api", (*API, *_api_followers(get, data_dir)))]  # fmt: skip
        for name, urls in groups:
            samples = _time_all(get, urls, runs)
            result[f"{name}_p50_ms"] = round(percentile(samples, 50), 2)
            result[f"{name}_p99_ms"] = round(percentile(samples, 99), 2)
            for url in urls:
                one = [get(url)[1] * 1000 for _ in range(5)]
                print(f"{name:7} {url[:60]:60} median {sorted(one)[2]:7.2f} ms", flush=True)
        result["target_ms"] = 50
        result["ok"] = all(result[f"{n}_p99_ms"] <= 50 for n in ("inbox", "filter", "search"))
    finally:
        stop()
    if not args.no_datasette:
        result.update(_beside_datasette(data_dir, runs))
    print(json.dumps(result))
    return 0
