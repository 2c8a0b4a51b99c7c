"""The relay on PostgreSQL beside SQLite, in one run (issue 15, "Benchmark").

    python -m bench postgres [--quick] [--messages N] [--runs R] [--cache-dir DIR]

On one throwaway PostgreSQL server with durable settings (fsync, full_page_writes and
synchronous_commit on: an ack means on disk, as with the relay's SQLite at
synchronous=FULL), all on 127.0.0.1:
1. ingest over HTTP into a relay process on PostgreSQL (`--store URL`), then the same
   into a relay on SQLite (the floor): single POST /sync/message one at a time (p50,
   p99), then gzip batches of 500 from 2 connections (msgs/s) (bench/_postgres_ingest.py);
2. the inbox at 1M messages (100k with --quick): `bench query`'s corpus copied into
   PostgreSQL by the relay's migration tool, its views' p50 and p99 on both engines
   (bench/_postgres_corpus.py);
3. batch ingest from 4 connections into 1 relay, then spread over 2 relays on one
   PostgreSQL, alternately on new databases; after each run every acknowledged msg_id
   is looked up: `lost` (acked, not stored) and `duplicates` (rows past one per msg_id)
   add up every run of the benchmark, SQLite's included.
Last line: one JSON object (pg_single_p99_ms, pg_batch_msgs_per_s, sqlite_batch_msgs_per_s,
pg_inbox_p99_ms, pg_search_p99_ms, two_relay_batch_msgs_per_s, lost, duplicates, ...).
Targets: single p99 <= 5 ms, inbox and search p99 <= 50 ms, lost = duplicates = 0.
The parts' modules start with an underscore, so `python -m bench` lists no part as a
benchmark of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import psycopg

from bench import _postgres_corpus as corpus
from bench import _postgres_ingest as ingest
from bench.query import CACHE_DIR
from bench.tools.report import Figure, row
from runtime.core.config import RelaySettings
from tests.support.postgres import PostgresMissing, ThrowawayPostgres

FULL, QUICK = 1_000_000, 100_000
SHOWN = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_level",
         "shared_buffers")  # fmt: skip
B = "postgres"
FIGURES = (
    Figure(B, "pg_single_p99_ms", "PostgreSQL relay insert p99, POST /sync/message, ms", "≤ 5",
           lambda v: v <= 5, "sqlite_single_p99_ms", "SQLite relay, same requests"),
    Figure(B, "pg_single_p50_ms", "PostgreSQL relay insert p50, ms", "", None,
           "sqlite_single_p50_ms", "SQLite relay, same requests"),
    Figure(B, "pg_batch_msgs_per_s", "PostgreSQL batch ingest (500 a batch, 2 conns), msgs/s",
           "", None, "sqlite_batch_msgs_per_s", "SQLite relay, same batches"),
    Figure(B, "pg_inbox_p99_ms", "PostgreSQL inbox first page p99, ms", "≤ 50",
           lambda v: v <= 50, "sqlite_inbox_p99_ms", "SQLite, same corpus and view"),
    Figure(B, "pg_filter_p99_ms", "PostgreSQL inbox filtered pages p99, ms", "≤ 50",
           lambda v: v <= 50, "sqlite_filter_p99_ms", "SQLite, same corpus and views"),
    Figure(B, "pg_search_p99_ms", "PostgreSQL inbox search p99, ms", "≤ 50",
           lambda v: v <= 50, "sqlite_search_p99_ms", "SQLite, same corpus and searches"),
    Figure(B, "two_relay_batch_msgs_per_s", "2 relays on one PostgreSQL, batch msgs/s", "", None,
           "one_relay_batch_msgs_per_s", "1 relay, same writers"),
    Figure(B, "lost", "Acknowledged messages not stored (every run)", "0", lambda v: v <= 0),
    Figure(B, "duplicates", "Rows past one per msg_id (every run)", "0", lambda v: v <= 0),
)  # fmt: skip


def main(argv: list[str]) -> int:
    """Run the three parts on one durable server; the last line is one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench postgres")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK} messages, fewer runs")
    parser.add_argument("--messages", type=int, help=f"corpus size (default {FULL})")
    parser.add_argument("--runs", type=int, help="timed reads per view (default 50; quick 15)")
    parser.add_argument("--singles", type=int, help="timed single POSTs (default 3000; quick 500)")
    parser.add_argument("--batches", type=int, help="timed batches a run (default 60; quick 20)")
    parser.add_argument("--rounds", type=int, help="1-vs-2-relay rounds (default 3; quick 1)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    args = parser.parse_args(argv)
    quick = args.quick
    sizes = {"messages": args.messages or (QUICK if quick else FULL),
             "runs": args.runs or (15 if quick else 50),
             "singles": args.singles or (500 if quick else 3000),
             "batches": args.batches or (20 if quick else 60),
             "rounds": args.rounds or (1 if quick else 3)}  # fmt: skip
    try:
        server = ThrowawayPostgres(durable=True)
    except PostgresMissing as exc:
        raise SystemExit(f"bench: {exc} (`make postgres-deps`)") from exc
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-postgres-") as tmp:
            figures = run(server, Path(tmp), args.cache_dir, sizes)
    finally:
        server.stop()
    print("\n".join(summary(figures)), flush=True)
    return 0


def summary(figures: dict[str, Any]) -> list[str]:
    """Each figure beside its floor or peer and its target, then the JSON object."""
    lines = ["figure | measured | target | beside (floor or peer) | ratio | status"]
    lines += [" | ".join(row(fig, {B: figures})[0][1:]) for fig in FIGURES]
    return [*lines, json.dumps(figures)]


def run(
    server: ThrowawayPostgres, work: Path, cache_dir: Path, sizes: dict[str, int]
) -> dict[str, Any]:
    """The three parts on `server`, working in `work`; `sizes` as main picks them."""
    figures: dict[str, Any] = {**sizes, "settings": _settings(server.dsn)}
    print(f"settings: {figures['settings']}", flush=True)
    runs: list[dict[str, Any]] = []
    for label, store in (("pg", server.create_database()), ("sqlite", ingest.SQLITE)):
        found = ingest.engine_ingest(work / label, store, sizes["singles"],
                                              sizes["batches"])  # fmt: skip
        print(f"{label} ingest: {found}", flush=True)
        runs.append(found)
        figures.update({f"{label}_{k}": v for k, v in found.items() if k.endswith(("_s", "_ms"))})
    dsn = server.create_database()
    data_dir, built = corpus.copy_corpus(cache_dir, sizes["messages"], dsn)
    figures.update(built)
    figures.update(corpus.both_engines(dsn, data_dir, sizes["runs"]))
    cluster = ingest.cluster_rates(work / "cluster", server.create_database,
                                            sizes["batches"], 4, sizes["rounds"])  # fmt: skip
    figures.update(cluster)
    figures["lost"] = sum(r["lost"] for r in runs) + cluster["cluster_lost"]
    figures["duplicates"] = sum(r["duplicates"] for r in runs) + cluster["cluster_duplicates"]
    figures["failed"] = sum(r["failed"] for r in runs) + cluster["cluster_failed"]
    figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return figures


def _settings(dsn: str) -> str:
    """The server's durability settings and the relay's SQLite synchronous mode."""
    with psycopg.connect(dsn) as conn:
        shown = [f"{n}={conn.execute(f'SHOW {n}').fetchone()[0]}" for n in SHOWN]  # type: ignore[index]
    sqlite_sync = next(f.default for f in fields(RelaySettings) if f.name == "synchronous")
    return f"PostgreSQL {', '.join(shown)}; SQLite WAL, synchronous={sqlite_sync}"
