"""The HTTP half of `bench postgres`: relay processes on one store, what they ingest and keep.

Each relay is `commander-relay serve` as its own process on 127.0.0.1 (`--store` a
postgresql:// URL, or the default SQLite under its own data directory), configured as
`bench relay_ingest` configures its relay, and fed the same requests: single messages
one at a time, and gzip batches of 500 from several connections. Every message a relay
acknowledged is then looked up in the store by msg_id: `lost` counts those missing,
`duplicates` the rows beyond one per msg_id.
"""

from __future__ import annotations

import gzip
import http.client
import os
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg

from bench.relay_ingest import BATCH, _Client, _latencies, _message, _singles
from bench.tools.http_serve import NODE, write_relay_config
from bench.tools.stats import percentile
from relay_app.stores.sqlite import DB_RELATIVE_PATH
from tests.support import Daemon

SQLITE = "sqlite"
WARM_SINGLES = 200
WARM_BATCHES = 2


@dataclass
class Sent:
    """What the relays acknowledged: msg_ids, and the requests that were refused or failed."""

    msg_ids: list[str] = field(default_factory=list)
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acked(self, ids: Sequence[str]) -> None:
        """Record one acknowledged request's messages (from any sender thread)."""
        with self.lock:
            self.msg_ids.extend(ids)


@dataclass(frozen=True)
class Relays:
    """Relay processes on one store, and the headers that authenticate the bench's node."""

    ports: list[int]
    headers: dict[str, str]
    store: str  # SQLITE or a postgresql:// URL
    data_dirs: list[Path]


@contextmanager
def relays(work: Path, count: int, store: str) -> Iterator[Relays]:
    """`count` relay processes on `store` (each its own data directory), started together,
    stopped after."""
    work.mkdir(parents=True, exist_ok=True)
    token = write_relay_config(work)
    headers = {"Content-Type": "application/json", "X-Commander-Node": NODE,
               "Authorization": f"Bearer {token}"}  # fmt: skip
    dirs = [work / f"data-{n}" for n in range(count)]
    with ExitStack() as stack, ThreadPoolExecutor(count) as pool:
        starting = [pool.submit(_relay, work, n, store) for n in range(count)]
        for future in starting:  # every relay that started is stopped, even if one failed
            if future.exception() is None:
                stack.callback(future.result().terminate)
        ports = [future.result().address[1] for future in starting]
        yield Relays(ports, headers, store, dirs)


def _relay(work: Path, n: int, store: str) -> Daemon:
    """Relay number `n` as its own process, once it listens."""
    data = work / f"data-{n}"
    args = ["-m", "relay_app.cli", "serve", "--config", str(work / "relay.yaml"),
            "--host", "127.0.0.1", "--port", "0", "--data-dir", str(data)]  # fmt: skip
    args += ["--store", store] if store != SQLITE else []
    return Daemon(args, work / f"relay-{n}.log", timeout=60)


def singles(relay: Relays, count: int) -> tuple[dict[str, float], Sent]:
    """POST /sync/message one at a time on one connection, after as many untimed (at most
    WARM_SINGLES): p50 and p99 in ms."""
    client = _Client(relay.ports[0], relay.headers)
    sent = Sent()
    try:
        for batch in (_singles(min(WARM_SINGLES, count)), _singles(count)):
            latencies = _latencies(client, "/sync/message", batch)
            sent.acked([orjson.loads(body)["msg_id"] for body in batch])
    finally:
        client.close()
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99)}, sent


def batch_bodies(count: int) -> tuple[list[bytes], list[list[str]]]:
    """`count` gzip batches of BATCH new messages, as a node's outbox sends them."""
    bodies, ids = [], []
    for _ in range(count):
        messages = [_message(i) for i in range(BATCH)]
        doc = {"batch_id": os.urandom(8).hex(), "node_id": NODE, "messages": messages}
        bodies.append(gzip.compress(orjson.dumps(doc), 1))
        ids.append([m["msg_id"] for m in messages])
    return bodies, ids


def batch_rate(relay: Relays, batches: int, writers: int, sent: Sent) -> float:
    """Messages a second: `batches` batches from `writers` connections spread over the relays.

    A warm-up of at most WARM_BATCHES goes first, untimed. Every acknowledged batch goes in `sent`.
    """
    _send_all(relay, *batch_bodies(min(WARM_BATCHES, batches)), writers, sent)
    bodies, ids = batch_bodies(batches)
    began = time.perf_counter()
    _send_all(relay, bodies, ids, writers, sent)
    return batches * BATCH / (time.perf_counter() - began)


def _send_all(
    relay: Relays, bodies: list[bytes], ids: list[list[str]], writers: int, sent: Sent
) -> None:
    clients = [_Client(relay.ports[n % len(relay.ports)], relay.headers) for n in range(writers)]
    threads = [
        threading.Thread(target=_send, args=(c, bodies[n::writers], ids[n::writers], sent))
        for n, c in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()


def _send(client: _Client, bodies: list[bytes], ids: list[list[str]], sent: Sent) -> None:
    for body, msg_ids in zip(bodies, ids, strict=True):
        try:
            client.post("/sync/messages", body, {"Content-Encoding": "gzip"})
        except (SystemExit, OSError, http.client.HTTPException):  # refused, or the link failed
            with sent.lock:
                sent.failed += 1
            continue
        sent.acked(msg_ids)


def kept(relay: Relays, sent: Sent) -> dict[str, int]:
    """lost: acknowledged msg_ids the store lacks; duplicates: rows past one per msg_id."""
    wanted = sorted(set(sent.msg_ids))
    if relay.store == SQLITE:
        conn = sqlite3.connect(relay.data_dirs[0] / DB_RELATIVE_PATH)
        found = conn.execute(
            "SELECT COUNT(DISTINCT msg_id) FROM messages"
            " WHERE msg_id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(wanted).decode(),),
        ).fetchone()[0]
        extra = conn.execute("SELECT COUNT(*) - COUNT(DISTINCT msg_id) FROM messages").fetchone()
        conn.close()
    else:
        with psycopg.connect(relay.store) as pg:
            counted = pg.execute(
                "SELECT COUNT(DISTINCT msg_id) FROM messages WHERE msg_id = ANY(%s)", (wanted,)
            ).fetchone()
            extra = pg.execute("SELECT COUNT(*) - COUNT(DISTINCT msg_id) FROM messages").fetchone()
        found = counted[0] if counted else 0
    return {"acked": len(wanted), "lost": len(wanted) - int(found),
            "duplicates": int(extra[0]) if extra else 0, "failed": sent.failed}  # fmt: skip


def engine_ingest(work: Path, store: str, singles_count: int, batches: int) -> dict[str, Any]:
    """Singles (p50, p99) and batches (msgs/s, 2 connections) on one relay over `store`."""
    with relays(work, 1, store) as relay:
        single, sent = singles(relay, singles_count)
        rate = batch_rate(relay, batches, 2, sent)
        return {"single_p50_ms": round(single["p50"], 3), "single_p99_ms": round(single["p99"], 3),
                "batch_msgs_per_s": round(rate), **kept(relay, sent)}  # fmt: skip


def cluster_rates(
    work: Path, new_database: Any, batches: int, writers: int, rounds: int
) -> dict[str, Any]:
    """Batch ingest from `writers` connections to 1 relay, then spread over 2 relays on one
    PostgreSQL (a new database each run), `rounds` times alternately; medians, and what
    every run lost or stored twice."""
    rates: dict[int, list[float]] = {1: [], 2: []}
    lost = duplicates = failed = 0
    for n in range(rounds):
        for count in (1, 2):
            with relays(work / f"cluster-{n}-{count}", count, new_database()) as relay:
                sent = Sent()
                rates[count].append(batch_rate(relay, batches, writers, sent))
                found = kept(relay, sent)
            lost, duplicates = lost + found["lost"], duplicates + found["duplicates"]
            failed += found["failed"]
            print(f"cluster round {n + 1}: {count} relay(s), {writers} writers: "
                  f"{rates[count][-1]:,.0f} msgs/s; {found}", flush=True)  # fmt: skip
    return {"one_relay_batch_msgs_per_s": round(statistics.median(rates[1])),
            "two_relay_batch_msgs_per_s": round(statistics.median(rates[2])),
            "cluster_writers": writers, "cluster_rounds": rounds,
            "cluster_lost": lost, "cluster_duplicates": duplicates,
            "cluster_failed": failed}  # fmt: skip
