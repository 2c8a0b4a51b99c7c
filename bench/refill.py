"""Refill after a restore (issue "refill"): a relay restored from an older backup, whole again.

    python -m bench refill [--quick] [--messages N] [--nodes N] [--agents-per-node N]
                           [--interval S] [--check S] [--timeout S] [--keep DIR]

1. Corpus, without HTTP: 5 nodes x 2 agents; 1,000,000 realistic small messages (100,000
   with --quick) over the last 7 days, each in its agent's cache, acknowledged
   (CacheStore.write_many then mark_synced, so acked_hours count as in production); the
   oldest 90% in the relay's database through the store's own writer, full-text index
   brought up to date.
2. `commander-relay backup` of that database; then the relay's own writer stores the
   newest 10% into it in groups of 500 per node (an outbox batch): the floor, the same
   messages stored with no HTTP and no comparison; then `commander-relay restore` puts the
   backup back (a new generation): the relay lacks the newest 10%.
3. The relay and the nodes as processes on 127.0.0.1. The clock starts as the first node
   starts; the relay's file is read (read-only) until it holds every message again or
   --timeout passes: refill_s. refilled and digest_bytes are the nodes' own counters
   (commander_refill_messages_total, commander_refill_digest_bytes_total); lost is what
   the relay still lacks, checked msg_id by msg_id, and no msg_id may be stored twice.
4. Idle: with the relay whole and every outbox empty, two periodic comparisons more
   (every --interval s); the second one's CPU (commander_refill_last_cpu_seconds, summed
   over a node's agents) and the digest bytes it exchanged, per node.
Last line: one JSON object. Targets: lost = 0, refill_s <= 60 for 100k missing,
idle_reconcile_cpu_ms < 50 per node.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import _refill_run as proc
from bench.tools.relay_http import Client
from bench.tools.report import Figure, row
from tests.support import Daemon, cpu_seconds

FULL, QUICK = 1_000_000, 100_000
LACKING = 0.10  # the newest tenth of the corpus is what the backup lacks
B = "refill"
FIGURES = (
    Figure(B, "lost", "Messages held by a node that the relay still lacks at the end", "0",
           lambda v: v == 0),
    Figure(B, "refill_s", "Restore to whole again (from the first node's start), s",
           "≤ 60 for 100k missing", lambda v: v <= 60),
    Figure(B, "refill_msgs_per_s", "Refill rate, missing messages a second", "", None,
           "floor_msgs_per_s", "relay's writer, same messages, 500 a group, no HTTP"),
    Figure(B, "idle_reconcile_cpu_ms", "Idle comparison, node CPU, median of nodes, ms",
           "< 50", lambda v: v < 50),
    Figure(B, "idle_reconcile_cpu_ms_max", "Idle comparison, node CPU, worst node, ms",
           "< 50", lambda v: v < 50),
    Figure(B, "relay_digests_cpu_ms_per_agent", "Relay CPU of one agent's digests (GET "
           "/sync/digests), ms", "", None, "relay_digests_ms_per_agent", "its wall time, ms"),
    Figure(B, "idle_digest_bytes", "Idle comparison, bytes of digests received, median node"),
    Figure(B, "digest_bytes", "Refill: bytes of digests and id lists received, all nodes"),
)  # fmt: skip


def main(argv: list[str]) -> int:
    """Build, restore, refill, measure; the last line is one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench refill")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK:,} messages")
    parser.add_argument("--messages", type=int, help=f"corpus size (default {FULL:,})")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--agents-per-node", type=int, default=2)
    parser.add_argument("--interval", type=float, default=30.0, help="nodes' --refill-interval")
    parser.add_argument("--check", type=float, default=1.0, help="nodes' --refill-check-interval")
    parser.add_argument("--timeout", type=float, default=900.0, help="bound on refill (s)")
    parser.add_argument("--keep", type=Path, help="work in DIR and leave it (logs, databases)")
    args = parser.parse_args(argv)
    count = args.messages or (QUICK if args.quick else FULL)
    began = time.perf_counter()
    shape = Shape(count, args.nodes, args.agents_per_node, args.interval, args.check, args.timeout)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        figures = run(args.keep, shape)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-refill-") as tmp:
            figures = run(Path(tmp), shape)
    figures["bench_s"] = round(time.perf_counter() - began)
    figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print("\n".join(summary(figures)), flush=True)
    return 0 if figures["lost"] == 0 and figures["duplicates"] == 0 else 1


@dataclass(frozen=True)
class Shape:
    """The run's size and the nodes' refill timing."""

    messages: int
    nodes: int = 5
    agents: int = 2  # per node
    interval: float = 30.0
    check: float = 1.0
    timeout: float = 900.0


def summary(figures: dict[str, Any]) -> list[str]:
    """Each figure beside its floor and its target, then the JSON object."""
    lines = ["figure | measured | target | beside (floor) | ratio | status"]
    lines += [" | ".join(row(fig, {B: figures})[0][1:]) for fig in FIGURES]
    return [*lines, json.dumps(figures)]


def run(work: Path, shape: Shape) -> dict[str, Any]:
    """Build the corpus, restore the older backup, start everything, measure."""
    where = proc.layout(work, shape.nodes, shape.agents)
    proc.write_config(where)
    kept = shape.messages - round(shape.messages * LACKING)
    built = proc.build(where, shape.messages, kept)
    figures: dict[str, Any] = {"messages": shape.messages, "nodes": shape.nodes,
                               "agents": len(where.agents), "build_s": round(built.build_s, 1),
                               "missing": len(built.missing_ids)}  # fmt: skip
    figures["backup_s"] = round(proc.relay_cli(where, "backup", str(where.backup_dir)), 2)
    floor_s = proc.store_floor(where, built.missing_rows)
    figures["floor_s"] = round(floor_s, 2)
    figures["floor_msgs_per_s"] = round(len(built.missing_rows) / floor_s)
    figures["restore_s"] = round(proc.relay_cli(where, "restore", str(where.backup_dir)), 2)
    relay = proc.start_relay(where)
    nodes: list[Daemon] = []
    try:
        figures.update(measure(where, relay, nodes, built, shape))
    finally:
        for daemon in (*nodes, relay):
            daemon.kill()
    return figures


def measure(
    where: proc.Layout, relay: Daemon, nodes: list[Daemon], built: proc.Built, shape: Shape
) -> dict[str, Any]:
    """Start the nodes (into `nodes`), wait for whole, drained, then two idle passes."""
    relay_file = proc.RelayFile(where.db)
    try:
        if relay_file.base_rows != built.kept:
            raise SystemExit(f"bench: the restored relay holds {relay_file.base_rows} rows")
        relay_cpu = cpu_seconds(relay.proc.pid)
        began = time.monotonic()
        nodes += start_nodes(where, relay.url, shape)
        found: dict[str, Any] = {"nodes_up_s": round(time.monotonic() - began, 2)}
        found["refill_s"] = wait_whole(relay_file, len(built.missing_ids), began, shape.timeout)
        found["refill_msgs_per_s"] = round(len(built.missing_ids) / max(found["refill_s"], 0.01))
        found["relay_refill_cpu_s"] = round(cpu_seconds(relay.proc.pid) - relay_cpu, 2)
        at_whole = [proc.scrape(n) for n in nodes]
        found["drained_s"] = wait_drained(nodes, began)
        found.update(outcome(relay_file, built, at_whole))
    finally:
        relay_file.close()
    found.update(idle_passes(nodes, time.time(), shape))
    found.update(relay_digest_cost(where, relay))
    return found


def start_nodes(where: proc.Layout, relay_url: str, shape: Shape) -> list[Daemon]:
    """Every node at once, as separate hosts would start: each one's process, listening."""
    with ThreadPoolExecutor(len(where.nodes)) as pool:
        starts = [pool.submit(proc.start_node, where, node, relay_url, shape.interval,
                              shape.check) for node in where.nodes]  # fmt: skip
    started, failed = [], []
    for start in starts:
        try:
            started.append(start.result())
        except RuntimeError as exc:
            failed.append(str(exc))
    if failed:
        for daemon in started:
            daemon.kill()
        raise SystemExit(f"bench: a node did not start: {failed[0]}")
    return started


def wait_whole(relay_file: proc.RelayFile, missing: int, began: float, timeout: float) -> float:
    """Seconds from `began` until the relay holds `missing` rows more (or the timeout)."""
    said = 0.0
    while True:
        added = relay_file.added()
        elapsed = time.monotonic() - began
        if added >= missing or elapsed > timeout:
            proc.progress(f"{added:,} of {missing:,} back after {elapsed:.1f} s")
            return round(elapsed, 2)
        if elapsed - said >= 5:
            proc.progress(f"{added:,} of {missing:,} back after {elapsed:.0f} s")
            said = elapsed
        time.sleep(0.2)


def wait_drained(nodes: list[Daemon], began: float, timeout: float = 120.0) -> float:
    """Seconds from `began` until every agent's outbox is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(proc.total(proc.scrape(n), "outbox_queue_depth") == 0 for n in nodes):
            break
        time.sleep(0.5)
    return round(time.monotonic() - began, 2)


def outcome(
    relay_file: proc.RelayFile, built: proc.Built, at_whole: list[proc.Samples]
) -> dict[str, Any]:
    """What came back, what did not, what came twice; the nodes' refill counters."""
    added = set(relay_file.added_ids())
    rows, distinct = relay_file.counts()
    cpu = [proc.total(s, "commander_refill_last_cpu_seconds") * 1000 for s in at_whole]

    def summed(name: str) -> int:
        return int(sum(proc.total(s, name) for s in at_whole))

    return {
        "relay_rows": rows,
        "lost": built.total - rows + len(added - built.missing_ids),
        "missing_not_back": len(built.missing_ids - added),
        "unexpected": len(added - built.missing_ids),
        "duplicates": rows - distinct,
        "refilled": summed("commander_refill_messages_total"),
        "refilled_beyond_missing": summed("commander_refill_messages_total")
        - len(built.missing_ids & added),
        "unrefillable": summed("commander_refill_unrefillable_messages"),
        "digest_bytes": summed("commander_refill_digest_bytes_total"),
        "buckets_compared": summed("commander_refill_buckets_compared_total"),
        "refill_pass_cpu_ms": round(statistics.median(cpu), 1),
        "refill_pass_cpu_ms_max": round(max(cpu), 1),
    }


def idle_passes(nodes: list[Daemon], drained_at: float, shape: Shape) -> dict[str, Any]:
    """Two periodic comparisons after `drained_at`; the second one's CPU and bytes per node.

    The node's figure is its whole process's CPU while the comparison ran, so a scrape of
    /metrics landing in it would count (a scrape reads every cache's counts): the second
    comparison is waited for by the clock, one interval after the first, and scraped once.
    """
    first = wait_pass(nodes, drained_at, every=1.0)
    after = max(t for s in first for t in proc.last_reconciles(s))
    time.sleep(max(0.0, after + shape.interval + min(10.0, shape.interval / 3) - time.time()))
    second = [proc.scrape(n) for n in nodes]
    quiet = all(t > after for s in second for t in proc.last_reconciles(s))
    if not quiet:  # a comparison late (a busy relay): wait for it, scraping meanwhile
        second = wait_pass(nodes, after, every=1.0)
    cpu = [proc.total(s, "commander_refill_last_cpu_seconds") * 1000 for s in second]
    sent = [proc.total(b, "commander_refill_digest_bytes_total")
            - proc.total(a, "commander_refill_digest_bytes_total")
            for a, b in zip(first, second, strict=True)]  # fmt: skip
    resent = [proc.total(b, "commander_refill_messages_total")
              - proc.total(a, "commander_refill_messages_total")
              for a, b in zip(first, second, strict=True)]  # fmt: skip
    return {
        "idle_reconcile_cpu_ms": round(statistics.median(cpu), 2),
        "idle_reconcile_cpu_ms_max": round(max(cpu), 2),
        "idle_reconcile_cpu_ms_each": [round(c, 2) for c in cpu],
        "idle_scraped_once": quiet,
        "idle_digest_bytes": round(statistics.median(sent)),
        "idle_digest_bytes_max": round(max(sent)),
        "idle_refilled": int(sum(resent)),
    }


def relay_digest_cost(where: proc.Layout, relay: Daemon) -> dict[str, Any]:
    """One agent's GET /sync/digests from its node, the relay otherwise idle: wall and relay
    CPU (an idle comparison costs the relay this for every agent)."""
    agent, node = where.agents[0]
    headers = {"X-Commander-Node": node, "Authorization": f"Bearer {where.tokens[node]}"}
    client = Client(relay.url, headers)
    walls, cpus = [], []
    try:
        for _ in range(3):
            before = cpu_seconds(relay.proc.pid)
            walls.append(client.get_ms(f"/sync/digests?agent={agent}&since=0"))
            cpus.append((cpu_seconds(relay.proc.pid) - before) * 1000)
    finally:
        client.close()
    return {"relay_digests_ms_per_agent": round(statistics.median(walls), 1),
            "relay_digests_cpu_ms_per_agent": round(statistics.median(cpus), 1)}  # fmt: skip


def wait_pass(
    nodes: list[Daemon], after: float, every: float, timeout: float = 300.0
) -> list[proc.Samples]:
    """Scrape until every agent of every node has ended a comparison after `after`."""
    deadline = time.monotonic() + timeout
    while True:
        samples = [proc.scrape(n) for n in nodes]
        if all(t > after for s in samples for t in proc.last_reconciles(s)):
            return samples
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: no comparison ended within {timeout:.0f} s")
        time.sleep(every)
