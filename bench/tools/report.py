"""docs/PERFORMANCE.md from the last-line JSON of every benchmark.

`FIGURES` says, for each figure: where it comes from, its target, what it was measured
beside (a floor of the machine or a peer, in the same run) and how the ratio reads.
`NOTES` holds, for a figure whose target is missed, where it stands and why (found by
profiling) and what would close it; the page prints a note only while its target is missed.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Results = dict[str, dict[str, Any]]
QUERY_TARGET_MS = 50.0


@dataclass(frozen=True)
class Figure:
    """One row of the table: results[bench][key], its target, and what it stands beside."""

    bench: str
    key: str
    what: str
    target: str = ""
    ok: Callable[[float], bool] | None = None
    beside: str = ""  # a key of the same bench: the floor or the peer
    beside_what: str = ""
    # How the ratio reads: "x/beside" (a cost: lower is better) or "beside/x" (a rate).
    ratio_ok: Callable[[float], bool] | None = None


def _le(limit: float) -> Callable[[float], bool]:
    return lambda v: v <= limit


def _lt(limit: float) -> Callable[[float], bool]:
    return lambda v: v < limit


def _ge(limit: float) -> Callable[[float], bool]:
    return lambda v: v >= limit


FIGURES = (
    Figure("local_write", "p99_us", "Local write p99, agent API (ask), µs", "≤ 1000", _le(1000),
           "raw_p99_us", "raw sqlite3 insert, same pragmas"),
    Figure("local_write", "p50_us", "Local write p50, µs", "ratio ≤ 1.5", None,
           "raw_p50_us", "raw sqlite3 insert, same pragmas", _le(1.5)),
    Figure("local_write", "tell_msgs_per_s", "Local writes told (fire and forget), msgs/s",
           "≥ 20000", _ge(20_000)),
    Figure("local_write", "write_through_p99_us",
           "Local write p99, 5 ms apart, write-through on, µs", "≤ 1000", _le(1000),
           "raw_paced_p99_us", "raw sqlite3 insert, same pragmas and pacing"),
    Figure("local_write", "write_through_p50_us",
           "Local write p50, 5 ms apart, write-through on, µs", "", None,
           "raw_paced_p50_us", "raw sqlite3 insert, same pragmas and pacing"),
    Figure("relay_ingest", "single_p99_ms", "Relay insert p99, POST /sync/message, ms", "≤ 5",
           _le(5), "floor_p99_ms", "bare Bottle JSON endpoint, same server"),
    Figure("relay_ingest", "single_p50_ms", "Relay insert p50, ms", "", None,
           "floor_p50_ms", "bare Bottle JSON endpoint, same server"),
    Figure("relay_ingest", "batch_msgs_per_s", "Relay batch ingest (500 a batch), msgs/s",
           "≥ 20000", _ge(20_000), "raw_msgs_per_s", "raw sqlite3 executemany, same rows"),
    Figure("visibility", "visible_p99_ms", "Write to visible on the relay, p99, ms", "≤ 10",
           _le(10), "http_floor_p99_ms", "GET /healthz round trip, same relay"),
    Figure("visibility", "visible_p50_ms", "Write to visible, p50, ms", "", None,
           "http_floor_p50_ms", "GET /healthz round trip, same relay"),
    Figure("visibility", "drain_msgs_per_s", "Backlog drain after an outage, msgs/s", "≥ 10000",
           _ge(10_000)),
    Figure("outbox", "outbox_msgs_per_s", "Outbox enqueue → send → ack, msgs/s", "ratio ≥ 1",
           None, "peer_msgs_per_s", "persist-queue SQLiteAckQueue, same durability and relay",
           _ge(1)),
    Figure("query", "inbox_p99_ms", "Inbox first page at 1M, p99 at the server, ms", "≤ 50",
           _le(50)),
    Figure("query", "filter_p99_ms", "Inbox filtered pages at 1M, p99 at the server, ms", "≤ 50",
           _le(50)),
    Figure("query", "search_p99_ms", "Inbox search at 1M, p99 at the server, ms", "≤ 50",
           _le(50)),
    Figure("query", "relay_client_filter_p99_ms", "Filtered pages at 1M, p99 at the client, ms",
           "ratio ≤ 1", None, "datasette_filter_p99_ms", "Datasette, same file, equivalent filter",
           _le(1)),
    Figure("query", "relay_client_search_p99_ms", "Search at 1M, p99 at the client, ms",
           "ratio ≤ 1", None, "datasette_search_p99_ms", "Datasette, same file, `_search`",
           _le(1)),
    Figure("query", "relay_client_inbox_p99_ms", "Inbox first page at 1M, p99 at the client, ms",
           "", None, "datasette_inbox_p99_ms", "Datasette, same file, same filter"),
    Figure("load", "relay_cpu_pct", "Relay CPU under sustained sync (50 msgs/s), % of a core",
           "≤ 3", _le(3), "relay_idle_cpu_pct", "the same relay idle, before the load"),
    Figure("load", "relay_rss_mb", "Relay peak RSS under sustained sync, MB", "< 50", _lt(50),
           "relay_idle_rss_mb", "the same relay idle, before the load"),
    Figure("load", "cpu_us_per_msg", "Relay CPU per stored message at 50 msgs/s, µs", "≤ 600",
           _le(600)),
    Figure("load", "visible_p99_ms", "Visibility p99 under load, ms", "≤ 10", _le(10)),
    Figure("sustained", "msgs_per_s", "Sustained: messages written a second (1,000 asked)"),
    Figure("sustained", "cpu_us_per_msg", "Sustained: relay CPU per stored message, µs", "≤ 250",
           _le(250)),
    Figure("sustained", "requests_per_msg", "Sustained: requests per message"),
    Figure("sustained", "visible_p99_ms", "Sustained: visibility p99, ms", "≤ 10", _le(10)),
    Figure("sustained", "relay_rss_mb", "Sustained: relay peak RSS, MB", "< 50", _lt(50)),
    Figure("sustained", "lost", "Sustained: written messages the relay lacks", "0", _le(0)),
    Figure("soak", "lost", "Soak: acknowledged messages lost", "0", _le(0)),
    Figure("soak", "duplicates", "Soak: messages stored twice", "0", _le(0)),
    Figure("soak", "stored_once", "Soak: acknowledged messages stored once, intact", "= acked",
           None, "acked", "acknowledged writes", _ge(1)),
    Figure("soak", "rss_growth_mb", "Soak: RSS growth after warm-up (relay, node-b), MB", "< 5",
           _lt(5)),
)  # fmt: skip

METHODS = {
    "local_write": "writes through the agent API (ask) one at a time; raw sqlite3 does the "
    "identical insert under the same pragmas in the same run; then the same writes 5 ms "
    "apart on a node whose uploader pushes each to a relay process (write-through on).",
    "relay_ingest": "relay in its own process; single POSTs one at a time, the same POSTs to a "
    "bare JSON endpoint on the same server (HTTP floor); gzip batches of 500 from two "
    "connections; raw executemany of the same rows (storage floor).",
    "visibility": "an agent's write returning on a node, until GET /query/messages/<id> "
    "answers from another client; then a backlog built with the relay down, and its drain.",
    "outbox": "the real OutboxActor against a real relay beside persist-queue's "
    "SQLiteAckQueue: both WAL with synchronous=FULL, one Enqueue or put per message "
    "(persist-queue commits each put; the OutboxActor commits the Enqueues waiting in its "
    "mailbox together, each message being already committed in messages.db); both "
    "send gzip batches of up to 500 to the same relay with the same client (persist-queue's "
    "loop batches its gets and acks each item); end to end, median of alternating rounds.",
    "query": "1M messages (cached in .bench-cache/); inbox pages timed inside the WSGI app "
    "(server side); then the relay and Datasette, each its own process on the same file, "
    "timed at the client with equivalent queries (Datasette's `_search` gets the relay's "
    "own FTS5 expression in raw mode).",
    "load": "5 nodes x 5 agents (in this process: the relay is what is measured, and five "
    "node interpreters would compete with it for 2 cores) writing 2 msgs/s each (a thread "
    "per agent) through "
    "write-through to a relay process; CPU from /proc/<pid>/stat over the load window "
    "beside the idle relay; peak RSS is VmHWM; one agent's writes are visibility probes.",
    "sustained": "the load's cluster and method at 1,000 msgs/s in all (40 a second per "
    "agent, one writer thread per agent), each message carrying about 1 KB of text; each node "
    "has one uploader for its agents, so writes made while a push is in flight share the next "
    "request; requests per message from the relay's own request counter.",
    "soak": "relay and two nodes as processes; relay cut off or frozen 10 s every minute, "
    "node-a SIGKILLed every few minutes; then the oracle (every acked message once, intact) "
    "and RSS over time. `make bench` runs its 3-minute quick mode; `make soak` runs 30.",
    "scaling": "one database grown to 10k, 100k and 1M rows through the store's own writer "
    "(not HTTP); at each size a relay process is timed at the client for ingest and queries.",
}

DOCS = Path(__file__).resolve().parents[2] / "docs"
FOOTPRINT = DOCS / "FOOTPRINT.md"
POSTGRES_BENCH = DOCS / "POSTGRES-BENCH.md"  # `bench postgres`, run by hand
ARCHIVE = DOCS / "ARCHIVE.md"  # the archive's format and `bench archive`, run by hand
REFILL = DOCS / "REFILL.md"  # backup, restore, refill and `bench refill`, run by hand
# The analyses written by hand, copied in this order below the generated figures.
ANALYSES = (FOOTPRINT, POSTGRES_BENCH, ARCHIVE, REFILL)

# Where a missed target stands, why, and what would close it. Found by profiling on this
# machine (py-spy on every thread, /proc CPU per request, micro-benchmarks) in Nov 2026;
# shown only while the figure's target is missed.
NOTES: dict[str, str] = {
    "outbox.outbox_msgs_per_s": (
        "The outbox runs at about 900-970 msgs/s whatever the round size; persist-queue "
        "runs at about 1,900 on rounds of 2,000 messages (--quick) and slows to about 1,000 "
        "on rounds of 10,000, since it keeps acked rows and its get scans past them. Either "
        "way the outbox is behind, and the cause is in "
        "`actors/outbox_store.py`, not in the network: py-spy puts 95% of the OutboxActor's "
        "time in `Enqueue`, half of it in COMMIT and 44% in `OutboxStore._top_up`. Each Enqueue "
        "of one message grows the open batch by decompressing its whole gzip payload, "
        "re-encoding and recompressing it, inserting it under a new batch_id and re-pointing "
        "every `outbox_messages` row of the batch: O(batch) work and WAL bytes per message, "
        "O(batch^2) per batch. Measured apart (OutboxStore alone, FULL): 1.0 ms per "
        "single-message enqueue with batch_size 500, 0.35 ms with batch_size 1, against "
        "0.14 ms for a plain one-row commit; persist-queue pays three plain commits per "
        "message (put, get, ack). What would close it: keep an open batch as rows (each "
        "message's wire JSON in `outbox_messages`) and build and freeze the gzip payload, "
        "with its batch_id, when the batch is first sent, which makes enqueue O(1); and take "
        "the Enqueue messages waiting in the mailbox into one transaction, as CacheActor and "
        "UploaderActor already do with theirs."
    ),
    "load.relay_cpu_pct": (
        "At 50 messages a second each message is a request of its own (no two pushes of a "
        "node overlap), and each request wakes four idle threads: the front's loop, a "
        "worker, the IngestActor, the loop again. Per thread (/proc/<pid>/task): loop 0.47 "
        "ms a message, workers 0.55 ms, IngestActor 0.33 ms, FTS indexer 0.02 ms; the app "
        "called in process without HTTP costs a worker 0.12-0.29 ms. Issue 14 measured "
        "granian (0.3-0.8 ms less, but no deadline on a request body: 20 stalled bodies "
        "starve it), cut the indexes from 15 to 10 (23% less writer CPU), gave each node "
        "one uploader and showed the group commit; the analysis and the before/after run "
        "are in 'The storage host's footprint' below. What would close it: a server that "
        "answers HTTP without waking Python threads per request and still bounds a body's "
        "time, nodes batching with a linger (which the 10 ms visibility target leaves no "
        "room for), or synchronous=NORMAL chosen by the operator."
    ),
    "load.cpu_us_per_msg": (
        "The same cause as the CPU share above: one request per message at this rate, four "
        "thread wakes a request; see 'The storage host's footprint', section 6."
    ),
    "sustained.cpu_us_per_msg": (
        "One uploader per node brings this to about 0.28 requests a message (from 0.89) and "
        "halves the CPU a message; the benchmark's own process, hosting 25 agents' caches "
        "and 5 nodes on the relay's 2 cores, cannot generate 1,000 a second, and above that "
        "rate each request carries more messages. See 'The storage host's footprint'."
    ),
    "sustained.visible_p99_ms": (
        "The generating process saturates the 2 cores (load average above 5), so a probe's "
        "write waits behind its own node's work before it is pushed; on a host where the "
        "nodes run elsewhere this is the relay's commit plus one poll."
    ),
    "local_write.write_through_p99_us": (
        "Paced 5 ms apart, a write wakes idle threads, and on this VM that costs more than "
        "the write: the raw sqlite3 insert alone, paced the same way, has a p99 near 1 ms "
        "(the floor beside it), against 0.45 ms back to back. The agent's write with "
        "write-through on stays within about 10% of that floor. Telling the uploader only "
        "after the writer's reply took the p99 from 1.39 ms to about 0.9-1.1 ms; before, the "
        "uploader woke and took the GIL ahead of the writer."
    ),
    "local_write.p50_us": (
        "The agent API adds one pykka ask (a thread hand-off and a future) to the raw insert, "
        "about 60-100 µs over a 150-200 µs commit; the ratio sits around the 1.5 line and "
        "moves with the load on this shared machine. The absolute figure is far inside the "
        "1 ms target."
    ),
    "visibility.visible_p99_ms": (
        "Visibility is the write-through POST plus one poll: p50 sits at 3-5 ms, but the p99 "
        "follows the tail of the relay's single-message insert (a FULL commit with WAL "
        "checkpoints every ~1000 pages) and of the machine's load; see the relay insert p99 "
        "beside it."
    ),
    "load.visible_p99_ms": (
        "Under load the visibility probe shares the relay with 49 other writes a second; its "
        "tail follows the relay's commit tail (WAL checkpoints) and the machine's load, as in "
        "the visibility benchmark; the p99 of 120 probes is their worst one or two."
    ),
    "visibility.drain_msgs_per_s": (
        "The drain rate is bounded by the outbox's one-batch-at-a-time delivery per agent "
        "(send, wait for the commit, mark synced, next): see the outbox note."
    ),
    "scaling": (
        "Each node-API filter (agent, node, role, priority, status, task) is served in report "
        "time order by its (column, timestamp) index, the one the inbox uses too (migration "
        "7), and a since/until window is a range of that order. If a size still misses, the "
        "slowest query is named in the table: a filter combination SQLite has no index for "
        "reads the matching rows and sorts them; the unfiltered COUNT(*) of every page also "
        "grows with the corpus (about 15 ms at 1M)."
    ),
}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _fmt(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "—" if value is None else str(value)
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    return f"{number:g}"


def row(fig: Figure, results: Results) -> tuple[list[str], bool | None]:
    """The table cells of one figure, and whether its target is met (None: no target/data)."""
    got = results.get(fig.bench, {})
    value, beside = _number(got.get(fig.key)), _number(got.get(fig.beside))
    ratio = value / beside if value is not None and beside else None
    met: bool | None = None
    if value is not None and fig.ok is not None:
        met = fig.ok(value)
    elif ratio is not None and fig.ratio_ok is not None:
        met = fig.ratio_ok(ratio)
    status = {None: "—", True: "met", False: "**missed**"}[met]
    if fig.bench not in results:
        status = "not run"
    cells = [
        f"`{fig.bench}`", fig.what, _fmt(got.get(fig.key)), fig.target or "—",
        f"{_fmt(got.get(fig.beside))} ({fig.beside_what})" if fig.beside else "—",
        f"{ratio:.2f}" if ratio is not None else "—", status,
    ]  # fmt: skip
    return cells, met


def machine() -> list[str]:
    """What the figures were measured on."""
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), "unknown")  # fmt: skip
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))  # fmt: skip
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout.strip()
    return [
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; commit `{commit or '?'}`",
        f"- CPU: {os.cpu_count()} x {model}; memory {mem_kb / 1024**2:.1f} GiB",
        f"- Kernel {platform.release()}; Python {platform.python_version()}; "
        f"SQLite {sqlite3.sqlite_version}",
        f"- Load average (1 min) when the run started: {os.getloadavg()[0]:.2f};"
        " at each benchmark's end in the Runs table",
    ]


SCALING_QUERIES = ("api_p99_ms", "since_p99_ms", "inbox_p99_ms", "search_p99_ms")


def scaling_misses(results: Results) -> list[str]:
    """The corpus sizes at which some query's p99 is over its target (QUERY_TARGET_MS)."""
    at = results.get("scaling", {}).get("at", {})
    return [
        size
        for size, figures in at.items()
        if any((_number(figures.get(k)) or 0) > QUERY_TARGET_MS for k in SCALING_QUERIES)
    ]


def scaling_table(results: Results) -> list[str]:
    """One row per corpus size."""
    at = results.get("scaling", {}).get("at", {})
    if not at:
        return ["(scaling did not run)"]
    keys = ("fill_s", "single_p50_ms", "single_p99_ms", "batch_msgs_per_s", *SCALING_QUERIES)
    lines = [
        "| stored | " + " | ".join(keys) + " | queries ≤ 50 ms | slowest query (p50) |",
        "|---" * (len(keys) + 3) + "|",
    ]
    missed = scaling_misses(results)
    for size, figures in at.items():
        cells = [_fmt(figures.get(k)) for k in keys]
        status = "**missed**" if size in missed else "met"
        lines.append(
            f"| {size} | " + " | ".join(cells) + f" | {status} | {figures.get('slowest', '')} |"
        )
    return lines


def render(
    results: Results,
    runs: dict[str, dict[str, Any]],
    quick: bool,
    machine_lines: list[str] | None = None,
) -> str:
    """The whole page (`machine_lines` as recorded when the run started, else now)."""
    lines = ["# Performance", ""]
    lines += [
        "Generated by `make bench` (`python -m bench all`) — do not edit by hand; the notes"
        " come from `bench/tools/report.py`. Every figure stands beside a floor of this machine or"
        " a peer measured in the same run, since the machine is shared and noisy."
        + (" **Quick mode: smaller runs, indicative only.**" if quick else ""),
        "",
        "## Machine",
        "",
        *(machine_lines or machine()),
        "",
        "## Figures",
        "",
        "| bench | figure | measured | target | beside (floor or peer) | ratio | status |",
        "|---|---|---|---|---|---|---|",
    ]
    missed = []
    for fig in FIGURES:
        cells, met = row(fig, results)
        lines.append("| " + " | ".join(cells) + " |")
        if met is False:
            missed.append(fig)
    lines += ["", "Ratios read as measured ÷ beside.", "", "## Scaling", ""]
    lines += [*scaling_table(results), ""]
    lines += _missed_section(missed, results)
    lines += [
        "## Runs",
        "",
        "| bench | command | exit | seconds | finished | load avg after |",
        "|---|---|---|---|---|---|",
    ]
    for name, run in runs.items():
        load = run.get("load_avg_1m", results.get(name, {}).get("load_avg_1m", "?"))
        lines.append(f"| `{name}` | `{run['command']}` | {run['exit']} | {run['seconds']:.0f} |"
                     f" {run.get('finished', '')} | {load} |")  # fmt: skip
    lines += ["", "## How each is measured", ""]
    lines += [f"- `{name}`: {text}" for name, text in METHODS.items()]
    lines += ["", "## Raw results", "", "```json", json.dumps(results, indent=1), "```", ""]
    return "\n".join([*lines, *analyses()])


def analyses() -> list[str]:
    """The docs of ANALYSES, written by hand, one heading level down, below the figures."""
    lines: list[str] = []
    for doc in ANALYSES:
        if doc.exists():
            fenced = False  # a comment in a code block is not a heading
            for line in doc.read_text(encoding="utf-8").splitlines():
                fenced ^= line.startswith("```")
                lines.append("#" + line if line.startswith("#") and not fenced else line)
            lines.append("")
    return lines


def _missed_section(missed: list[Figure], results: Results) -> list[str]:
    sizes = scaling_misses(results)
    if not missed and not sizes:
        return ["## Targets missed", "", "None in this run.", ""]
    lines = ["## Targets missed: where each stands, why, what would close it", ""]
    for fig in missed:
        value = results[fig.bench].get(fig.key)
        note = NOTES.get(f"{fig.bench}.{fig.key}", "Not analysed yet.")
        lines += [
            f"### `{fig.bench}` {fig.key} = {_fmt(value)} (target {fig.target})",
            "",
            note,
            "",
        ]
    if sizes:
        note = NOTES.get("scaling", "Not analysed yet.")
        lines += [f"### `scaling`: a query p99 over 50 ms at {', '.join(sizes)}", "", note, ""]
    return lines
