"""`bench postgres` at a tiny size: every code path runs, every figure is reported, none lost.

The benchmark's own server is durable; here the session's throwaway server (fsync off)
serves, since only the code paths are under test, not the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import postgres
from bench.tools import report
from tests.support.postgres import ThrowawayPostgres

KEYS = {"pg_single_p99_ms", "pg_batch_msgs_per_s", "sqlite_batch_msgs_per_s", "pg_inbox_p99_ms",
        "pg_search_p99_ms", "two_relay_batch_msgs_per_s", "lost", "duplicates",
        "one_relay_batch_msgs_per_s", "pg_single_p50_ms", "sqlite_search_p99_ms"}  # fmt: skip
TINY = {"messages": 200, "runs": 2, "singles": 10, "batches": 1, "rounds": 1}


def test_a_tiny_run_reports_every_figure_and_loses_nothing(
    postgres_server: ThrowawayPostgres, tmp_path: Path
) -> None:
    figures = postgres.run(postgres_server, tmp_path / "work", tmp_path / "cache", TINY)
    lines = postgres.summary(figures)
    last = json.loads(lines[-1])
    assert last.keys() >= KEYS
    assert last["lost"] == last["duplicates"] == last["failed"] == 0
    assert last["cluster_lost"] == 0
    assert all(isinstance(last[key], int | float) for key in KEYS)
    assert any(line.startswith("PostgreSQL inbox search p99") for line in lines)


def test_the_results_page_embeds_the_hand_written_note_after_the_footprint() -> None:
    embedded = report.analyses()
    footprint = embedded.index("## The storage host's footprint")
    assert embedded.index("## The relay on PostgreSQL beside SQLite (`bench postgres`)") > footprint
