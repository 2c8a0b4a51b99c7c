"""The archive tier at scale (issue 16, "Benchmark"): move half a corpus, then read it back.

    python -m bench archive [--quick] [--messages N] [--runs R] [--random N] [--cache-dir DIR]

1. Corpus: `bench query`'s 1,000,000 realistic messages (200,000 with --quick), made
   half due (bench/tools/archive_corpus.py: the older half by age, and a slice of the newer
   half archived by the operator's action), copied into a new data directory.
2. A relay process serves that directory. Baseline: single POST /sync/message every
   20 ms, timed. Then `commander-relay archive` runs as its own process (its peak RSS
   from wait4) while the posts go on and the relay's RSS is sampled every 0.2 s: the
   ingest stall is the p99 of those posts beside the baseline's. The same command run
   again with nothing due is the archiver's memory floor (interpreter, imports, store).
3. Sizes: the hot file before and after (after the archiver's incremental vacuum and a
   WAL checkpoint); the segment files plus their frame indexes (kept in the manifest
   table, archive_segments.frame_index) are archive_bytes; archived_ids (msg_id ->
   segment, frame), from SQLite's dbstat, is reported apart.
4. Reads over HTTP on 127.0.0.1, from one keep-alive client each: GET
   /query/messages/<msg_id> of archived msg_ids (each once, at random), beside hot ones
   (the floor); the inbox's Archived view with searches of differing rarity, beside the
   same searches in the default (hot) view.
5. `commander-relay export` of everything to NDJSON, then to Parquet (msgs/s). The
   NDJSON is raw_ndjson_bytes; its lines with status "archived" are the raw bytes of the
   archived messages, which archive_ratio divides (archive_bytes / those bytes).
6. The pessimistic corpus (random words, --random messages, default 200,000) through the
   archiver's segment writer: its compression figures under keys `random_*`.
Last line: one JSON object. Targets: archive_ratio <= 0.25, archive_lookup_p99_ms <= 50,
archive_search_p99_ms <= 1,000, relay RSS < 50 MB while archiving.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import yaml

from bench import _archive_run as proc
from bench.query import CACHE_DIR, _words
from bench.tools import archive_corpus as corpus
from bench.tools.relay_http import NODE, PASSWORD, Client, node_headers, operator_client
from bench.tools.report import Figure, row
from bench.tools.stats import percentile
from relay_app.auth import token_sha256
from tests.support import TOKENS, Daemon, RssSampler, peak_rss_mb, rss_mb

FULL, QUICK = 1_000_000, 200_000
TOO_SLOW = b"took too long to read"
B = "archive"
FIGURES = (
    Figure(B, "archive_ratio", "Archive bytes (segments + frame indexes) ÷ raw NDJSON of the "
           "archived messages", "≤ 0.25", lambda v: v <= 0.25),
    Figure(B, "random_archive_ratio", "The same ratio on random words (pessimistic)"),
    Figure(B, "archive_ratio_with_ids", "The same, with the hot side's msg_id map (archived_ids)"),
    Figure(B, "hot_bytes_after", "Hot file after the move, bytes", "", None, "hot_bytes_before",
           "the same file before"),
    Figure(B, "hot_bytes_after", "Hot file after the move, bytes", "", None,
           "hot_bytes_vacuumed", "the same file after a full VACUUM"),
    Figure(B, "archive_lookup_p99_ms", "GET /query/messages/<msg_id> of archived ids, p99, ms",
           "≤ 50", lambda v: v <= 50, "hot_lookup_p99_ms", "hot ids, same relay"),
    Figure(B, "archive_search_p99_ms", "Inbox Archived view with a search, p99, ms", "≤ 1000",
           lambda v: v <= 1000, "hot_search_p99_ms", "same searches, hot view"),
    Figure(B, "relay_rss_mb", "Relay peak RSS while archiving, MB", "< 50", lambda v: v < 50,
           "relay_idle_rss_mb", "the same relay before"),
    Figure(B, "relay_rss_after_searches_mb", "Relay RSS after the archive's lookups and "
           "searches, MB", "< 50", lambda v: v < 50, "relay_idle_rss_mb", "the same relay before"),
    Figure(B, "relay_peak_rss_mb", "Relay peak RSS over the run (VmHWM; an operator login's "
           "password hash included), MB", "< 50", lambda v: v < 50, "relay_idle_rss_mb",
           "the same relay before"),
    Figure(B, "archiver_rss_mb", "Archiver process peak RSS, MB", "", None,
           "archiver_floor_rss_mb", "the same command, nothing due"),
    Figure(B, "ingest_during_p99_ms", "Single POST p99 while archiving, ms", "", None,
           "ingest_before_p99_ms", "the same posts before"),
    Figure(B, "archive_msgs_per_s", "Archiver, msgs/s (whole command)"),
    Figure(B, "export_msgs_per_s", "Export to NDJSON, msgs/s", "", None,
           "export_parquet_msgs_per_s", "export to Parquet"),
)  # fmt: skip


def searches() -> dict[str, str]:
    """Queries of differing rarity: name -> the q= text."""
    vocabulary = _words(random.Random(20240501), 5000)  # bench query's, as its fill draws it
    return {"common": "quote", "vocabulary_word": vocabulary[17],
            "two_words": f"{vocabulary[3]} {vocabulary[1234]}",
            "rare_phrase": '"company 4242"', "absent": "zephyr"}  # fmt: skip


def main(argv: list[str]) -> int:
    """Build (once), archive, measure; the last line is one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench archive")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK} messages, fewer runs")
    parser.add_argument("--messages", type=int, help=f"corpus size (default {FULL})")
    parser.add_argument("--runs", type=int, help="timed reads per search (default 50; quick 20)")
    parser.add_argument("--random", type=int, help=f"random-word messages (default {QUICK})")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    args = parser.parse_args(argv)
    count = args.messages or (QUICK if args.quick else FULL)
    runs = args.runs or (20 if args.quick else 50)
    began = time.perf_counter()
    base, cutoff = corpus.realistic_base(args.cache_dir, count)
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        figures = run(base, cutoff, Path(tmp), count, runs)
    figures.update(corpus.pessimistic(args.random or QUICK))
    figures["bench_s"] = round(time.perf_counter() - began)
    figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print("\n".join(summary(figures)), flush=True)
    return 0


def summary(figures: dict[str, Any]) -> list[str]:
    """Each figure beside its floor and its target, then the JSON object."""
    lines = ["figure | measured | target | beside (floor) | ratio | status"]
    lines += [" | ".join(row(fig, {B: figures})[0][1:]) for fig in FIGURES]
    return [*lines, json.dumps(figures)]


def run(base: Path, cutoff: float, work: Path, count: int, runs: int) -> dict[str, Any]:
    """Archive a copy of `base` under a serving relay, then read and export it."""
    data_dir = work / "relay"
    (data_dir / corpus.DB).parent.mkdir(parents=True)
    shutil.copyfile(base / corpus.DB, data_dir / corpus.DB)
    samples = runs * 10
    due, hot = corpus.due_and_hot_ids(base / corpus.DB, cutoff, samples, seed=count)
    figures: dict[str, Any] = {"messages": count, "runs": runs,
                               "hot_bytes_before": proc.hot_bytes(data_dir)}  # fmt: skip
    relay = start_relay(data_dir, work / "relay-work")
    try:
        figures.update(archive_under(relay.url, relay.proc.pid, data_dir, work, cutoff, samples))
        figures.update(_size_figures(proc.sizes(data_dir)))
        figures["hot_bytes_vacuumed"] = proc.vacuumed_bytes(data_dir, work)
        figures["relay_hwm_after_archive_mb"] = round(peak_rss_mb(relay.proc.pid), 1)
        figures.update(lookups(relay.url, due, hot))
        figures["relay_rss_after_lookups_mb"] = round(rss_mb(relay.proc.pid), 1)
        figures.update(search_times(relay.url, searches(), runs))
        figures["relay_rss_after_searches_mb"] = round(rss_mb(relay.proc.pid), 1)
        words = {k: q.strip('"') for k, q in searches().items() if k != "two_words"}
        figures.update(exports(data_dir, work, words))
        figures["relay_peak_rss_mb"] = round(peak_rss_mb(relay.proc.pid), 1)
    finally:
        relay.terminate()
    figures["archive_ratio"] = round(figures["archive_bytes"] /
                                     figures["archived_raw_ndjson_bytes"], 4)  # fmt: skip
    figures["archive_ratio_with_ids"] = round(
        (figures["archive_bytes"] + figures["archived_ids_bytes"])
        / figures["archived_raw_ndjson_bytes"], 4)  # fmt: skip
    figures["archive_msgs_per_s"] = round(figures["archived"] / figures["archive_s"])
    figures["lost"] = count + figures["posted"] - figures["exported"]
    return figures


def start_relay(data_dir: Path, work: Path) -> Daemon:
    """A relay process serving `data_dir`, as bench/tools/relay_http.py starts one, but
    taking messages of any agent from its node (the posts name agents of no topology)."""
    from relay_app.passwords import hash_password

    work.mkdir(parents=True, exist_ok=True)
    node = {"id": NODE, "host": "127.0.0.1", "port": 9, "token_sha256": token_sha256(TOKENS[NODE])}
    relay = {"min_free_bytes": 0, "operator_password_hash": hash_password(PASSWORD)}
    doc = {"nodes": [node], "relay": relay}
    (work / "relay.yaml").write_text(yaml.safe_dump(doc))
    args = ["-m", "relay_app.cli", "serve", "--config", str(work / "relay.yaml"), "--host",
            "127.0.0.1", "--port", "0", "--data-dir", str(data_dir.resolve()),
            "--allow-any-agent"]  # fmt: skip
    return Daemon(args, work / "relay.log", timeout=600)


def archive_under(
    url: str, pid: int, data_dir: Path, work: Path, cutoff: float, posts: int
) -> dict[str, Any]:
    """Baseline posts, then the archiver with posts going on and the relay's RSS sampled."""
    config = str(work / "relay-work" / "relay.yaml")
    idle = rss_mb(pid)
    before = proc.post_for(url, 10_000_000, posts)
    sampler = RssSampler({"relay": lambda: pid}, every=0.2).start()
    during = proc.Poster(url, 20_000_000).start()
    after_days = (time.time() - cutoff) / 86400
    try:
        moved = proc.relay_command("archive", "--config", config, "--data-dir", str(data_dir),
                                   "--after-days", f"{after_days:.6f}")  # fmt: skip
    finally:
        during.stop()
        sampler.stop()
    floor = proc.relay_command("archive", "--config", config, "--data-dir", str(data_dir),
                               "--after-days", f"{after_days:.6f}")  # fmt: skip
    print(moved.out.strip(), f"(peak RSS {moved.rss_mb:.1f} MB)", flush=True)
    relay_mb = max((mb for _, _, mb in sampler.series("relay")), default=rss_mb(pid))
    failed = before.failed + during.failed
    return {"archive_s": round(moved.seconds, 1), "archiver_rss_mb": round(moved.rss_mb, 1),
            "archiver_floor_rss_mb": round(floor.rss_mb, 1), "archiver_out": moved.out.strip(),
            "relay_idle_rss_mb": round(idle, 1), "relay_rss_mb": round(relay_mb, 1),
            "relay_rss_samples": len(sampler.series("relay")),
            "ingest_before_p50_ms": _ms(before.latencies, 50),
            "ingest_before_p99_ms": _ms(before.latencies, 99),
            "ingest_during_p50_ms": _ms(during.latencies, 50),
            "ingest_during_p99_ms": _ms(during.latencies, 99),
            "ingest_during_max_ms": round(max(during.latencies, default=0.0), 1),
            "ingest_during_posts": len(during.latencies),
            "posted": len(before.latencies) + len(during.latencies),
            "post_failures": failed[:5], "post_failed": len(failed)}  # fmt: skip


def _size_figures(after: dict[str, int]) -> dict[str, Any]:
    return {"hot_bytes_after": after["hot_bytes"], "hot_free_bytes_after": after["hot_free_bytes"],
            "segment_bytes": after["segment_bytes"], "frame_index_bytes": after["index_bytes"],
            "archive_bytes": after["segment_bytes"] + after["index_bytes"],
            "archived_ids_bytes": after["archived_ids_bytes"], "segments": after["segments"],
            "archived": after["archived"], "hot_rows_after": after["hot_rows"],
            "archived_ids_rows": after["archived_ids_located"]}  # fmt: skip


def lookups(url: str, due: list[str], hot: list[str]) -> dict[str, Any]:
    """Each msg_id once, archived and hot alternately, after a few warm-up reads."""
    client = Client(url, node_headers())
    try:
        for msg_id in due[:5] + hot[:5]:
            client.get_ms(f"/query/messages/{msg_id}")
        archived, floor = [], []
        for a, h in zip(due, hot, strict=False):
            archived.append(client.get_ms(f"/query/messages/{a}"))
            floor.append(client.get_ms(f"/query/messages/{h}"))
    finally:
        client.close()
    return {"lookups": len(archived),
            "archive_lookup_p50_ms": _ms(archived, 50), "archive_lookup_p99_ms": _ms(archived, 99),
            "hot_lookup_p50_ms": _ms(floor, 50), "hot_lookup_p99_ms": _ms(floor, 99)}  # fmt: skip


def search_times(url: str, queries: dict[str, str], runs: int) -> dict[str, Any]:
    """Each search `runs` times in the Archived view, then in the default (hot) view."""
    client = operator_client(url)
    out: dict[str, Any] = {}
    try:
        for view, prefix in (("archive", "/messages?status=archived&q="), ("hot", "/messages?q=")):
            every: list[float] = []
            for name, q in queries.items():
                mine, slow = _time_search(client, prefix + quote_plus(q), runs)
                every += mine
                out[f"{view}_search_{name}_p50_ms"] = _ms(mine, 50)
                out[f"{view}_search_{name}_p99_ms"] = _ms(mine, 99)
                out[f"{view}_search_{name}_too_slow"] = slow
                print(f"{view:7} search {name:16} {q!r:28} p50 {_ms(mine, 50):8.1f} ms"
                      f" p99 {_ms(mine, 99):8.1f} ms too slow {slow}", flush=True)  # fmt: skip
            out[f"{view}_search_p50_ms"] = _ms(every, 50)
            out[f"{view}_search_p99_ms"] = _ms(every, 99)
    finally:
        client.close()
    return out


def _time_search(client: Client, path: str, runs: int) -> tuple[list[float], int]:
    """`runs` timed GETs of `path` (after one untimed); how many said "too slow"."""
    client.get_ms(path)
    samples, slow = [], 0
    for _ in range(runs):
        began = time.perf_counter()
        status, _, body = client.request("GET", path)
        samples.append((time.perf_counter() - began) * 1000)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
        slow += TOO_SLOW in body
    return samples, slow


def exports(data_dir: Path, work: Path, words: dict[str, str]) -> dict[str, Any]:
    """`commander-relay export` of everything, NDJSON then Parquet."""
    config = str(work / "relay-work" / "relay.yaml")
    found: dict[str, Any] = {}
    for form in ("ndjson", "parquet"):
        out = work / f"export.{form}"
        done = proc.relay_command("export", "--config", config, "--data-dir", str(data_dir),
                                  "--format", form, "--out", str(out))  # fmt: skip
        found[f"export_{form}_s"] = round(done.seconds, 1)
        found[f"export_{form}_bytes"] = out.stat().st_size
        found[f"export_{form}_rss_mb"] = round(done.rss_mb, 1)
        if form == "ndjson":
            found.update(proc.scan_export(out, words))
        out.unlink()
    found["export_msgs_per_s"] = round(found["exported"] / found["export_ndjson_s"])
    found["export_parquet_msgs_per_s"] = round(found["exported"] / found["export_parquet_s"])
    return found


def _ms(samples: list[float], pct: float) -> float:
    return round(percentile(samples, pct), 2) if samples else 0.0
