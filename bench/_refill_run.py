"""The corpus and the processes of `bench refill`.

The corpus is written without HTTP: each agent's cache through `CacheStore` (written,
then acknowledged, so `acked_hours` count as in production) and the relay's database
through the store's own writer, the oldest part only. `commander-relay backup` and
`restore` run as the operator would run them; the relay and the nodes run as processes
on 127.0.0.1, and what they did is read from the nodes' /metrics and the relay's file.
"""

from __future__ import annotations

import random
import secrets
import sqlite3
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from actors.cache_store import CacheStore, cache_path
from bench._archive_run import relay_command
from relay_app.auth import token_sha256
from relay_app.store import MessageRow, StoreMessages
from relay_app.stores.sqlite import SqliteStore, SqliteWriter
from runtime.core.envelope import MessageEnvelope, encode_content, new_msg_id
from tests.support import Daemon

DAYS = 7  # report times spread over the last week: refill compares by hour
CHUNK = 20_000  # messages generated, cached and stored at a time
NODE_BATCH = 500  # a node's outbox batch (sync.batch_size's default): the floor's group
CACHE_BYTES = 10**11  # every agent's cache holds everything it ever wrote
ROLE = "recruiter"
WORDS = ("lead", "quote", "contact", "form", "follow", "up", "invoice", "candidate", "interview",
         "schedule", "call", "email", "reply", "budget", "timeline", "proposal", "signed",
         "pending", "review", "offer", "rejected", "accepted", "site", "visit", "meeting",
         "onboarding", "contract", "renewal", "churn", "risk", "upsell", "demo", "trial",
         "pricing", "discount", "region", "north", "south", "east", "west", "enterprise",
         "startup", "agency", "retail", "clinic")  # fmt: skip
PHRASES = ("HOT lead asked for a quote", "TimeoutError after 30 s", "task finished", "retrying")


@dataclass(frozen=True)
class Layout:
    """Where everything of one run lives, and who the nodes and agents are."""

    work: Path
    nodes: tuple[str, ...]
    agents: tuple[tuple[str, str], ...]  # (agent_id, node_id)
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def config_dir(self) -> Path:
        """relay.yaml, agents/ and secrets/."""
        return self.work / "config"

    @property
    def relay_dir(self) -> Path:
        """The relay's data directory."""
        return self.work / "relay"

    @property
    def backup_dir(self) -> Path:
        """Where `commander-relay backup` writes."""
        return self.work / "backup"

    def node_dir(self, node: str) -> Path:
        """A node's data directory."""
        return self.work / node

    @property
    def db(self) -> Path:
        """The relay's database file."""
        return self.relay_dir / "messages" / "cluster_messages.db"


def layout(work: Path, nodes: int, agents_per_node: int) -> Layout:
    """`nodes` nodes with `agents_per_node` agents each, and a token for every node."""
    names = tuple(f"node-{n}" for n in range(1, nodes + 1))
    agents = tuple((f"{node}-a{i}", node) for node in names for i in range(1, agents_per_node + 1))
    tokens = {node: secrets.token_hex(16) for node in names}
    return Layout(work, names, agents, tokens)


def write_config(where: Layout) -> None:
    """relay.yaml (a storage node and the agent nodes), agents/*.yaml, secrets/*.token."""
    (where.config_dir / "agents").mkdir(parents=True, exist_ok=True)
    (where.config_dir / "secrets").mkdir(exist_ok=True)
    nodes = [{"id": "storage", "host": "127.0.0.1", "port": 9, "role": "storage"}]
    nodes += [{"id": n, "host": "127.0.0.1", "port": 9, "token_sha256": token_sha256(t)}
              for n, t in where.tokens.items()]  # fmt: skip
    relay = {"data_dir": str(where.relay_dir), "min_free_bytes": 1}
    (where.config_dir / "relay.yaml").write_text(yaml.safe_dump({"nodes": nodes, "relay": relay}))
    for agent, node in where.agents:
        doc = {"agent_id": agent, "role": ROLE, "node_id": node,
               "cache": {"max_bytes": CACHE_BYTES}}  # fmt: skip
        (where.config_dir / "agents" / f"{agent}.yaml").write_text(yaml.safe_dump(doc))
    for node, token in where.tokens.items():
        (where.config_dir / "secrets" / f"{node}.token").write_text(token)


def messages(where: Layout, total: int, now: float, seed: int) -> Iterator[list[MessageEnvelope]]:
    """`total` realistic small messages over the last DAYS, oldest first, CHUNK at a time."""
    rng = random.Random(seed)
    step = DAYS * 86400 / total
    start = now - DAYS * 86400 - 60
    for first in range(0, total, CHUNK):
        chunk = []
        for i in range(first, min(total, first + CHUNK)):
            agent, node = where.agents[rng.randrange(len(where.agents))]
            ts = start + (i + rng.random()) * step
            chunk.append(MessageEnvelope(
                msg_id=new_msg_id(ts), timestamp=ts, agent_id=agent, node_id=node,
                content=_content(rng, i), task_id=f"task-{rng.randrange(2000)}", sender=agent,
                role=ROLE, priority=rng.choices(("low", "normal", "high"), (15, 75, 10))[0],
            ))  # fmt: skip
        yield chunk


def _content(rng: random.Random, i: int) -> dict[str, object]:
    text = " ".join(rng.choices(WORDS, k=rng.randint(6, 24)))
    kind = rng.random()
    if kind < 0.5:
        return {"kind": "lead", "seq": i, "company": f"company {rng.randrange(9999)}",
                "summary": f"{PHRASES[0]}: {text}", "score": rng.randint(1, 100)}  # fmt: skip
    if kind < 0.7:
        return {"kind": "error", "seq": i, "error": PHRASES[1], "retry": True, "detail": text}
    return {"kind": "task_complete", "seq": i, "notes": f"{rng.choice(PHRASES[2:])} {text}"}


def row(env: MessageEnvelope) -> MessageRow:
    """The relay's row of a message, as its ingest builds one."""
    return MessageRow(env.msg_id, env.timestamp, env.task_id, env.sender, env.recipient,
                      env.role, encode_content(env.content), env.node_id, env.agent_id,
                      env.priority)  # fmt: skip


@dataclass
class Built:
    """What the build wrote: how many, which the relay lacks, and the floor's rows."""

    total: int
    kept: int
    missing_ids: set[str]
    missing_rows: list[MessageRow]
    build_s: float = 0.0


def build(where: Layout, total: int, kept: int, seed: int = 20261201) -> Built:
    """Every message in its agent's cache, acknowledged; the oldest `kept` in the relay."""
    began = time.perf_counter()
    caches = {agent: CacheStore(cache_path(where.node_dir(node), agent), agent_id=agent,
                                max_bytes=CACHE_BYTES, synchronous="OFF")
              for agent, node in where.agents}  # fmt: skip
    store = SqliteStore(where.relay_dir, synchronous="OFF")
    writer = store.open_writer()
    built = Built(total, kept, set(), [])
    seen = 0
    try:
        for chunk in messages(where, total, time.time(), seed):
            _cache(caches, chunk)
            stored = chunk[: max(0, kept - seen)]
            _store(writer, stored)
            built.missing_rows += [row(e) for e in chunk[len(stored) :]]
            built.missing_ids.update(e.msg_id for e in chunk[len(stored) :])
            seen += len(chunk)
            progress(f"built {seen:,} of {total:,}")
    finally:
        writer.close()
        store.close()
        for cache in caches.values():
            cache.close()
    _index(where)
    built.build_s = time.perf_counter() - began
    return built


def _cache(caches: dict[str, CacheStore], chunk: Sequence[MessageEnvelope]) -> None:
    by_agent: dict[str, list[MessageEnvelope]] = defaultdict(list)
    for env in chunk:
        by_agent[env.agent_id].append(env)
    for agent, envs in by_agent.items():
        written = caches[agent].write_many(envs)
        if not all(isinstance(w, str) for w in written):
            raise SystemExit(f"bench: the cache of {agent} refused a write: {written[:1]}")
        caches[agent].mark_synced([e.msg_id for e in envs])


def _store(writer: SqliteWriter, envs: Sequence[MessageEnvelope]) -> None:
    by_node: dict[str, list[MessageRow]] = defaultdict(list)
    for env in envs:
        by_node[env.node_id].append(row(env))
    ops = [StoreMessages(node, tuple(rows)) for node, rows in by_node.items()]
    if ops:
        writer.write(ops, time.time())


def _index(where: Layout) -> None:
    """Bring the full-text index up to date, as a relay long running would have it."""
    from relay_app.stores.sqlite_fts import index_pending
    from runtime.core.sqlite import connect

    conn = connect(where.db)
    try:
        while index_pending(conn, 20_000):
            pass
    finally:
        conn.close()


def store_floor(where: Layout, rows: Sequence[MessageRow]) -> float:
    """Seconds for the relay's own writer (synchronous FULL, as the relay runs) to store
    `rows` in groups of one outbox batch per node: no HTTP, no comparison."""
    store = SqliteStore(where.relay_dir)
    writer = store.open_writer()
    groups: dict[str, list[MessageRow]] = defaultdict(list)
    for r in rows:
        groups[r.node_id].append(r)
    began = time.perf_counter()
    try:
        for node, mine in groups.items():
            for start in range(0, len(mine), NODE_BATCH):
                batch = tuple(mine[start : start + NODE_BATCH])
                writer.write([StoreMessages(node, batch)], time.time())
        return time.perf_counter() - began
    finally:
        writer.close()
        store.close()


def relay_cli(where: Layout, *args: str) -> float:
    """`commander-relay ARGS` on the run's config and data directory; its seconds."""
    config = ["--config", str(where.config_dir / "relay.yaml"), "--data-dir", str(where.relay_dir)]
    done = relay_command(*args, *config)
    progress(done.out.strip())
    return done.seconds


def start_relay(where: Layout) -> Daemon:
    """The relay process on the restored data directory."""
    args = ["-m", "relay_app.cli", "serve", "--config", str(where.config_dir / "relay.yaml"),
            "--host", "127.0.0.1", "--port", "0", "--data-dir", str(where.relay_dir)]  # fmt: skip
    return Daemon(args, where.work / "relay.log", timeout=300)


def start_node(where: Layout, node: str, relay_url: str, interval: float, check: float) -> Daemon:
    """A node process, comparing every `interval` s and looking at /healthz every `check` s."""
    args = ["-m", "runtime.node.daemon", "--config", str(where.config_dir), "--node-id", node,
            "--data-dir", str(where.node_dir(node)), "--relay-url", relay_url,
            "--listen", "127.0.0.1:0", "--refill-interval", str(interval),
            "--refill-check-interval", str(check), "--shutdown-upload-seconds", "1"]  # fmt: skip
    return Daemon(args, where.work / f"{node}.log", timeout=300)


Samples = dict[tuple[str, str], float]  # (sample name, agent) -> value


def scrape(node: Daemon) -> Samples:
    """The node's refill and outbox samples, by agent."""
    with urllib.request.urlopen(node.url + "/metrics", timeout=30) as answer:
        text = answer.read().decode()
    return {
        (s.name, s.labels.get("agent", "")): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(("commander_refill_", "outbox_queue_depth"))
    }


def total(samples: Samples, name: str) -> float:
    """A sample summed over the node's agents."""
    return sum(v for (n, _), v in samples.items() if n == name)


def last_reconciles(samples: Samples) -> list[float]:
    """Each agent's last reconcile time."""
    return [v for (n, _), v in samples.items()
            if n == "commander_refill_last_reconcile_timestamp_seconds"]  # fmt: skip


class RelayFile:
    """Read-only looks at the relay's database: the rows stored since the restore."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        self.conn.execute("PRAGMA busy_timeout = 5000")
        self.base_rows, self.base_id = self.conn.execute(
            "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM messages"
        ).fetchone()

    def added(self) -> int:
        """Rows stored since the restore (each new row takes a higher id)."""
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM messages WHERE id > ?", (self.base_id,)
            ).fetchone()[0]
        )

    def added_ids(self) -> list[str]:
        """The msg_ids stored since the restore."""
        rows = self.conn.execute("SELECT msg_id FROM messages WHERE id > ?", (self.base_id,))
        return [r[0] for r in rows]

    def counts(self) -> tuple[int, int]:
        """(rows, distinct msg_ids) of the whole hot table."""
        rows, distinct = self.conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT msg_id) FROM messages"
        ).fetchone()
        return int(rows), int(distinct)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def progress(text: str) -> None:
    """A progress line on stderr (stdout holds the figures)."""
    print(f"[refill {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)
