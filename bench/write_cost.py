"""What one stored message costs the relay's writer, old schema beside new, in one run.

    python -m bench write_cost [--quick] [--base N] [--rounds R]

Fills one database of `--base` messages (about 1 KB of content each) at schema version
`OLD_VERSION`, copies it, and brings the copy to the current schema with the store's
own migrations (timed); a third copy is the current schema without the inbox's counter
triggers, to price them. Then, in alternating rounds (the order rotates every round),
each variant takes the same fresh messages through `SqliteWriter.write` (the IngestActor's
path, synchronous=FULL), one message a transaction and then groups of `GROUP`. Reports
the median over rounds of the writer thread's CPU and the wall time, µs per message.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay_app.store import MessageRow, StoreMessages
from relay_app.stores.sqlite import DB_RELATIVE_PATH, INSERT_MESSAGE, SqliteWriter
from relay_app.stores.sqlite_schema import MIGRATIONS
from runtime.core import sqlite as rsqlite
from runtime.core.envelope import encode_content, new_msg_id

OLD_VERSION = 6  # the schema before issue 14's one shared order
GROUP = 100
ROLES = ("recruiter", "coder", "reasoner", "synthesizer", "commander")
PRIORITIES = ("low", "normal", "normal", "normal", "high", "critical")
COUNTER_TRIGGERS = ("inbox_count_insert", "inbox_count_update", "inbox_count_delete")


class Corpus:
    """Messages of about 1 KB of JSON, spread over agents, nodes, roles and recipients."""

    def __init__(self, seed: int) -> None:
        """A reproducible stream of messages."""
        self._rng = random.Random(seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        self._words = [
            "".join(self._rng.choice(letters) for _ in range(self._rng.randint(3, 9)))
            for _ in range(3000)
        ]
        self._n = 0

    def row(self, ts: float) -> MessageRow:
        """One message reported at `ts`."""
        rng, i = self._rng, self._n
        self._n += 1
        agent = rng.randrange(40)
        text = " ".join(rng.choices(self._words, k=150))
        content = {"kind": "report", "task": f"task-{i % 5000}", "score": rng.random(),
                   "summary": text[:200], "detail": text}  # fmt: skip
        recipient = f"agent-{rng.randrange(40):02d}" if rng.random() < 0.2 else None
        name = f"agent-{agent:02d}"
        return MessageRow(new_msg_id(ts), ts, f"task-{rng.randrange(5000)}", name, recipient,
                          ROLES[agent % len(ROLES)], encode_content(content), f"node-{agent % 6}",
                          name, rng.choice(PRIORITIES))  # fmt: skip


def fill(data_dir: Path, count: int, corpus: Corpus, version: int) -> Path:
    """A database at schema `version` holding `count` messages, a fifth of them archived."""
    path = data_dir / DB_RELATIVE_PATH
    conn = rsqlite.connect(path, synchronous="OFF")
    rsqlite.migrate(conn, MIGRATIONS[:version])
    start = time.time() - 30 * 86400
    step = 30 * 86400 / count
    for chunk in range(0, count, 10_000):
        rows = [(*corpus.row(start + i * step), start + i * step)
                for i in range(chunk, min(count, chunk + 10_000))]  # fmt: skip
        with rsqlite.transaction(conn):
            conn.executemany(INSERT_MESSAGE, rows)
    with rsqlite.transaction(conn):
        conn.execute("UPDATE messages SET status = 'archived' WHERE id % 5 = 0")
        conn.execute("UPDATE messages SET status = 'acknowledged' WHERE id % 5 = 1")
    conn.close()
    return path


def copy(source: Path, data_dir: Path) -> Path:
    """Copy a closed database (its WAL checkpointed) into another data directory."""
    target = data_dir / DB_RELATIVE_PATH
    target.parent.mkdir(parents=True)
    shutil.copyfile(source, target)
    return target


def migrate_timed(path: Path) -> float:
    """Bring a database to the current schema; the seconds it took."""
    conn = rsqlite.connect(path)
    began = time.perf_counter()
    rsqlite.migrate(conn, MIGRATIONS)
    took = time.perf_counter() - began
    conn.close()
    return took


def drop_counters(path: Path) -> None:
    """Remove the counter triggers (the badge would then count rows)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for name in COUNTER_TRIGGERS:
        conn.execute(f"DROP TRIGGER {name}")
    conn.close()


def schema_of(path: Path) -> dict[str, list[str]]:
    """The indexes and triggers on `messages`."""
    conn = sqlite3.connect(path)
    found = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE tbl_name = 'messages'"
        " AND type IN ('index', 'trigger') ORDER BY type, name"
    ).fetchall()
    conn.close()
    return {kind: [n for t, n in found if t == kind] for kind in ("index", "trigger")}


def one_round(path: Path, rows: list[MessageRow], group: int) -> tuple[float, float]:
    """Write `rows` in groups through the store's writer; (CPU µs, wall µs) per message."""
    writer = SqliteWriter(path, "FULL", None)
    try:
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        for i in range(0, len(rows), group):
            writer.write([StoreMessages(rows[i].node_id, tuple(rows[i : i + group]))], time.time())
        cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    finally:
        writer.close()
    return cpu / len(rows) * 1e6, wall / len(rows) * 1e6


def measure(
    variants: dict[str, Path], fresh: Callable[[int], list[MessageRow]], rounds: int,
    per_round: dict[int, int],
) -> dict[str, Any]:  # fmt: skip
    """Alternate the variants round by round; medians of µs per message."""
    samples: dict[tuple[str, int], list[tuple[float, float]]] = {}
    names = list(variants)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for group, count in per_round.items():
            rows = fresh(count)  # every variant gets the same new messages
            for name in order:
                samples.setdefault((name, group), []).append(one_round(variants[name], rows, group))
    result: dict[str, Any] = {}
    for (name, group), found in samples.items():
        result[f"{name}_g{group}_cpu_us"] = round(statistics.median(c for c, _ in found), 1)
        result[f"{name}_g{group}_wall_us"] = round(statistics.median(w for _, w in found), 1)
    return result


def main(argv: list[str]) -> int:
    """Fill, migrate, alternate, print the figures; the last line is one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench write_cost")
    parser.add_argument("--quick", action="store_true", help="20k base messages, 3 rounds")
    parser.add_argument("--base", type=int, help="messages already stored (default 200000)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 7)")
    args = parser.parse_args(argv)
    base = args.base or (20_000 if args.quick else 200_000)
    rounds = args.rounds or (3 if args.quick else 7)
    per_round = {1: 200, GROUP: 2000} if args.quick else {1: 500, GROUP: 5000}
    corpus = Corpus(20261201)
    clock = [time.time()]

    def fresh(count: int) -> list[MessageRow]:
        clock[0] += 1.0
        return [corpus.row(clock[0] + i * 1e-4) for i in range(count)]

    with tempfile.TemporaryDirectory(prefix="bench-write-cost-") as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        old = fill(root / "old", base, corpus, OLD_VERSION)
        print(f"filled {base} messages at schema {OLD_VERSION} in "
              f"{time.perf_counter() - began:.0f} s", flush=True)  # fmt: skip
        new = copy(old, root / "new")
        migration_s = migrate_timed(new)
        bare = copy(new, root / "bare")
        drop_counters(bare)
        variants = {"old": old, "new": new, "new_no_counters": bare}
        for name, path in variants.items():
            print(f"{name}: {json.dumps(schema_of(path))}", flush=True)
        result: dict[str, Any] = {"base": base, "rounds": rounds, "group": GROUP,
                                  "old_version": OLD_VERSION, "new_version": len(MIGRATIONS),
                                  "migration_s": round(migration_s, 2)}  # fmt: skip
        result.update(measure(variants, fresh, rounds, per_round))
    for key, value in result.items():
        print(f"{key:>32}: {value}")
    print(json.dumps(result))
    return 0
