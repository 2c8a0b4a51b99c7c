"""`bench archive` at a tiny size: every code path runs, every figure is reported, none lost.

The figures of so small a corpus mean nothing; what is under test is that the archiver,
the relay, the exports and the pessimistic corpus all run and are all accounted for.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import archive
from bench.tools import archive_corpus as corpus
from bench.tools import report

ARCHIVE_HEADING = "## The long-term tier: archive format and `bench archive` (issue 16)"
KEYS = {"raw_ndjson_bytes", "archive_bytes", "archive_ratio", "hot_bytes_before",
        "hot_bytes_after", "archive_lookup_p99_ms", "archive_search_p99_ms",
        "archive_msgs_per_s", "export_msgs_per_s", "archiver_rss_mb", "relay_rss_mb",
        "hot_lookup_p99_ms", "hot_search_p99_ms", "export_parquet_msgs_per_s",
        "archived_ids_bytes", "random_archive_ratio"}  # fmt: skip


def test_a_tiny_run_reports_every_figure_and_loses_nothing(tmp_path: Path) -> None:
    base, cutoff = corpus.realistic_base(tmp_path / "cache", 600)
    figures = archive.run(base, cutoff, tmp_path / "work", 600, runs=1)
    figures.update(corpus.pessimistic(300))
    lines = archive.summary(figures)
    last = json.loads(lines[-1])
    assert last.keys() >= KEYS
    assert all(isinstance(last[key], int | float) for key in KEYS)
    assert last["lost"] == last["post_failed"] == 0
    assert 300 <= last["archived"] == last["archived_ids_rows"] == last["archived_exported"] < 600
    assert any(line.startswith("Inbox Archived view with a search") for line in lines)


def test_the_results_page_embeds_the_archive_note_after_the_postgres_one() -> None:
    embedded = report.analyses()
    postgres = embedded.index("## The relay on PostgreSQL beside SQLite (`bench postgres`)")
    assert embedded.index(ARCHIVE_HEADING) > postgres
