"""Fast checks of the benchmark entry points: they import, their parsers work, tools hold.

No benchmark runs here (they take minutes); `make bench` runs them. The process helpers
the benchmarks share with the tests are checked in tests/test_support.py.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from bench import __main__ as dispatcher
from bench import soak
from bench.scaling import label
from bench.tools import report
from bench.tools.datasette import datasette_url
from tests.support import RssSampler

BENCHMARKS = dispatcher.available()


def test_every_benchmark_of_the_issue_is_there() -> None:
    expected = {"local_write", "relay_ingest", "visibility", "outbox", "query", "load", "soak",
                "scaling", "sustained", "all"}  # fmt: skip
    assert expected <= set(BENCHMARKS)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_each_benchmark_imports_and_its_parser_answers_help(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = dispatcher.load(name)
    with pytest.raises(SystemExit) as exit_info:
        run(["--help"])
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out


@pytest.mark.parametrize("name", BENCHMARKS)
def test_each_benchmark_refuses_an_unknown_flag(name: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        dispatcher.load(name)(["--no-such-flag"])
    assert exit_info.value.code == 2


def test_all_refuses_an_unknown_benchmark_name() -> None:
    with pytest.raises(SystemExit):
        dispatcher.load("all")(["--only", "nope"])


def test_the_soak_length_comes_from_the_flag_then_quick_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parse = argparse.ArgumentParser()
    parse.add_argument("--quick", action="store_true")
    parse.add_argument("--minutes", type=float)
    monkeypatch.setenv("COMMANDER_SOAK_MINUTES", "7")
    assert soak.minutes_from(parse.parse_args([])) == 7
    assert soak.minutes_from(parse.parse_args(["--quick"])) == 3
    assert soak.minutes_from(parse.parse_args(["--quick", "--minutes", "2"])) == 2
    monkeypatch.delenv("COMMANDER_SOAK_MINUTES")
    assert soak.minutes_from(parse.parse_args([])) == 30


def test_inbox_urls_become_equivalent_datasette_queries() -> None:
    url = datasette_url("/messages?role=coder&range=7d", now=1_000_000.0)
    assert "status__not=archived" in url
    assert "role=coder" in url
    assert f"timestamp__gte={1_000_000.0 - 7 * 86400!r}" in url
    assert "_sort_desc=timestamp" in url
    search = datasette_url("/messages?q=timeo*+-retry&status=unread", now=0.0)
    assert "_searchmode=raw" in search
    assert "_search=%22timeo%22%2A+NOT+%22retry%22" in search
    assert "status=unread" in search
    assert "_sort_desc=id" in search


def test_the_report_marks_met_missed_and_missing_figures() -> None:
    results: dict[str, dict[str, Any]] = {
        "local_write": {"p99_us": 800, "raw_p99_us": 400, "p50_us": 300, "raw_p50_us": 100},
        "outbox": {"outbox_msgs_per_s": 2000, "peer_msgs_per_s": 1000},
        "scaling": {"at": {"10k": {"api_p99_ms": 1.5, "api_slowest": "/query/messages 1 ms"}}},
    }
    runs = {"local_write": {"command": "python -m bench local_write", "exit": 0, "seconds": 3.0}}
    page = report.render(results, runs, quick=True)
    assert "| `local_write` | Local write p99, agent API (ask), µs | 800 | ≤ 1000 |" in page
    assert "| 2.00 | met |" in page  # local write p99 beside its raw floor
    assert "### `local_write` p50_us = 300 (target ratio ≤ 1.5)" in page  # ratio 3 missed
    assert "| `load` | Relay CPU" in page
    assert "not run" in page
    assert "| 10k |" in page
    assert "Quick mode" in page
    assert "| `sustained` | Sustained: relay CPU per stored message, µs |" in page
    # The hand-written analyses follow the generated figures, one heading level down.
    assert "\n## The storage host's footprint\n" in page
    assert "\n### 1. The HTTP front" in page


def test_soak_memory_is_summed_up_per_minute_and_after_warm_up() -> None:
    sampler = RssSampler({})
    sampler.samples = [(t * 5.0, "relay", 1, 40.0 + (t >= 24)) for t in range(36)]
    assert soak.per_minute(sampler, "relay") == [40.0, 40.0, 41.0]
    growth = soak.rss_growth(sampler, "relay", warmup_s=60.0)
    assert growth is not None
    assert growth["growth_mb"] == 1.0
    assert growth["peak_mb"] == 41.0


def test_sizes_are_labelled_in_thousands_and_millions() -> None:
    assert (label(10_000), label(100_000), label(1_000_000)) == ("10k", "100k", "1m")
