"""The query half of `bench postgres`: one corpus on both engines, the inbox timed on each.

The corpus is `bench query`'s (its generator and its cache in .bench-cache/query-<N>/),
moved into a new PostgreSQL database by the relay's own migration tool
(`relay_app.stores.migrate`: unnest inserts of 5,000 rows a transaction, each row's search
vector computed as the relay computes it), then VACUUM ANALYZE, as autovacuum would
leave a settled database. The views are `bench query`'s: its first page, its filters and
its searches (common words, a rare one, a phrase, a prefix with an exclusion). Each is
read through `InboxReader.page`, which is `store.inbox.page` with the inbox's own query
and budgets, in this process (no HTTP, no template), on PostgreSQL and then on SQLite.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bench.query import FILTERS, INBOX, SEARCHES, _cached
from bench.tools.stats import percentile
from relay_app.inbox.filters import parse_view
from relay_app.inbox.reader import InboxReader
from relay_app.store_inbox import InboxStore
from relay_app.stores.migrate import migrate_corpus, open_source, open_target
from relay_app.stores.postgres import PostgresStore
from relay_app.stores.sqlite import SqliteStore

GROUPS = (("inbox", INBOX), ("filter", FILTERS), ("search", SEARCHES))
CHUNK_ROWS = 5000


def copy_corpus(cache_dir: Path, count: int, dsn: str) -> tuple[Path, dict[str, Any]]:
    """`bench query`'s SQLite corpus of `count` (cached), copied into the database `dsn`."""
    data_dir = _cached(cache_dir, count)
    source, target = open_source(data_dir), open_target(dsn)
    try:
        began = time.perf_counter()
        report = migrate_corpus(source, target, chunk_rows=CHUNK_ROWS)
        copied = time.perf_counter() - began
        target.execute("VACUUM ANALYZE")
        settled = time.perf_counter() - began - copied
    finally:
        source.close()
        target.close()
    if report.differences:
        raise SystemExit(f"bench: the copy differs: {report.differences}")
    print(f"copied {count} messages into PostgreSQL in {copied:.0f} s, VACUUM ANALYZE "
          f"{settled:.0f} s", flush=True)  # fmt: skip
    return data_dir, {"corpus_copy_s": round(copied, 1),
                      "corpus_copy_msgs_per_s": round(count / copied)}  # fmt: skip


def time_views(store: InboxStore, runs: int, label: str) -> dict[str, float]:
    """p50 and p99 (ms) of each group of views over `runs` reads of each view."""
    reader = InboxReader(store)
    figures: dict[str, float] = {}
    for name, urls in GROUPS:
        samples: list[float] = []
        for url in urls:
            read = _reading(reader, url)
            for _ in range(3):
                read()
            mine = [read() for _ in range(runs)]
            samples += mine
            print(f"{label:6} {name:6} {url[:56]:56} median {percentile(mine, 50):7.2f} ms "
                  f"p99 {percentile(mine, 99):7.2f} ms", flush=True)  # fmt: skip
        figures[f"{label}_{name}_p50_ms"] = round(percentile(samples, 50), 2)
        figures[f"{label}_{name}_p99_ms"] = round(percentile(samples, 99), 2)
    return figures


def _reading(reader: InboxReader, url: str) -> Callable[[], float]:
    """A function reading the page of `url`'s view once; it returns the time in ms."""
    view = parse_view(dict(parse_qsl(urlsplit(url).query)))

    def read() -> float:
        began = time.perf_counter()
        reader.page(view)
        return (time.perf_counter() - began) * 1000

    return read


def both_engines(dsn: str, data_dir: Path, runs: int) -> dict[str, Any]:
    """The views timed on PostgreSQL, then on SQLite over the same corpus."""
    pg = PostgresStore(dsn)
    try:
        figures = time_views(pg.inbox, runs, "pg")
    finally:
        pg.close()
    lite = SqliteStore(data_dir)
    try:
        figures.update(time_views(lite.inbox, runs, "sqlite"))
    finally:
        lite.close()
    return figures
