"""The outbox beside persist-queue's SQLiteAckQueue: enqueue -> send -> ack, same durability.

    python -m bench outbox [--quick]

What is compared, and why it is fair:
- Both queues are durable SQLite files in WAL mode with `synchronous = FULL` (persist-queue
  sets WAL itself but leaves `synchronous` at SQLite's default; the benchmark sets FULL on
  both of its connections and reads it back). One `Enqueue` message per message, one `put`
  per message. Each `put` is its own transaction; the OutboxActor commits the Enqueues
  waiting in its mailbox together (group commit, as the cache does), so under a stream it
  pays one fsync per group, not per message. Nothing is weaker for it: an Enqueue is
  answered only after its commit, and every message it holds is already committed in
  messages.db before it is enqueued. persist-queue's API offers no such grouping.
- Both send to the same real relay (its own process on 127.0.0.1) with the same client
  (`RelayClient.push_batch`: keep-alive `requests`, gzip JSON to POST /sync/messages), and
  both may batch up to 500 messages a request. persist-queue does no networking, so its
  loop is given the best batching a user could write with its API: `get` up to 500 ready
  items, send them as one batch, `ack` each (its API has no batch ack).
- The OutboxActor is fed the way the node feeds it (its uploader `tell`s Enqueue); it
  reports acks through `MarkSynced` to a stand-in for the cache actor, which counts them.
  persist-queue is fed by a producer thread while a consumer thread sends and acks.
- Time runs from the first enqueue to the last acknowledgement, on both sides; rounds
  alternate between the two so load on this shared machine hits both alike; the figure is
  the median round.

Last line: {"outbox_msgs_per_s", "peer_msgs_per_s", "ratio", ...}; target ratio >= 1.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from actors.messages import Enqueue, GetOutboxStats, ListUnsynced, MarkSynced, Tick
from actors.outbox import OutboxActor
from runtime.core.backoff import Backoff
from runtime.core.envelope import GZIP_LEVEL, MessageEnvelope, new_msg_id
from runtime.core.relay_client import RelayClient, RelayTarget
from runtime.core.sync_state import SyncState
from tests.support import TOKENS, cluster, free_port, start_relay, write_config_dir

NODE = "node-a"
BATCH = 500
TIMEOUT_S = 300.0
COMPARISON = (
    "end to end, same relay and client: durable enqueue (FULL-synchronous WAL; persist-queue"
    " commits each put, the outbox commits the Enqueues waiting in its mailbox together)"
    " -> POST /sync/messages in gzip batches of <= 500 -> ack; persist-queue's loop"
    " batches its gets the same way and acks each item"
)


class AckCounter:
    """Stands in for the CacheActor: counts MarkSynced, answers ListUnsynced with nothing."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.acked = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def tell(self, message: Any) -> None:
        """Count acknowledged messages; set `done` once all are in."""
        if isinstance(message, MarkSynced):
            with self._lock:
                self.acked += len(message.msg_ids)
                if self.acked >= self.expected:
                    self.done.set()

    def ask(self, message: Any, *, timeout: float | None = None) -> Any:
        """The outbox's recovery sweep asks for unsynced messages: there are none here."""
        del timeout
        if isinstance(message, ListUnsynced):
            return []
        raise TypeError(f"unexpected ask {message!r}")


def envelopes(count: int, tag: str) -> list[MessageEnvelope]:
    """Realistic messages (a report of ~200 bytes of JSON content each)."""
    return [
        MessageEnvelope.new(
            agent_id="a1",
            node_id=NODE,
            role="recruiter",
            task_id=f"task-{i % 50}",
            content={"kind": "report", "run": tag, "seq": i, "text": "lead found " * 12},
        )
        for i in range(count)
    ]


def run_outbox(tmp: Path, target: RelayTarget, msgs: list[MessageEnvelope]) -> float:
    """Enqueue every message (told, as the uploader does) and wait for every ack."""
    counter = AckCounter(len(msgs))
    ref = OutboxActor.start(
        tmp / "outbox.db",
        agent_id="a1",
        node_id=NODE,
        cache=counter,
        target=target,
        backoff=Backoff(2.0, 10, 1.0),
        sync_state=SyncState(),
        batch_size=BATCH,
        synchronous="FULL",
    )
    try:
        ref.ask(GetOutboxStats(), timeout=30)  # started, recovery sweep done
        start = time.perf_counter()
        for env in msgs:
            ref.tell(Enqueue((env,)))
        # The node's ticker sends Tick every sync.interval_seconds; here at once, so the
        # last partial batch is not timed from an idle interval.
        ref.tell(Tick())
        if not counter.done.wait(TIMEOUT_S):
            raise RuntimeError(f"outbox: {counter.acked}/{len(msgs)} acked in {TIMEOUT_S}s")
        return len(msgs) / (time.perf_counter() - start)
    finally:
        ref.stop(timeout=30)


def open_peer(path: Path) -> Any:
    """persist-queue's SQLiteAckQueue, two connections, both at synchronous = FULL."""
    from persistqueue import SQLiteAckQueue

    queue: Any = SQLiteAckQueue(str(path), multithreading=True, auto_commit=True)
    for conn in {id(queue._putter): queue._putter, id(queue._getter): queue._getter}.values():
        conn.execute("PRAGMA synchronous = FULL")
        modes = (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
        )
        if modes != ("wal", 2):
            raise RuntimeError(f"persist-queue connection is {modes}, expected ('wal', 2)")
    return queue


def run_peer(tmp: Path, target: RelayTarget, msgs: list[MessageEnvelope]) -> float:
    """A producer thread puts; this thread gets up to 500, sends them as one batch, acks each."""
    from persistqueue.exceptions import Empty

    queue = open_peer(tmp / "peer")
    client = RelayClient(target)
    wires = [env.to_wire() for env in msgs]

    def produce() -> None:
        for wire in wires:
            queue.put(wire)

    producer = threading.Thread(target=produce, name="peer-producer")
    acked = 0
    start = time.perf_counter()
    producer.start()
    try:
        while acked < len(wires):
            if time.perf_counter() - start > TIMEOUT_S:
                raise RuntimeError(f"peer: {acked}/{len(wires)} acked in {TIMEOUT_S}s")
            items = [queue.get(raw=True, timeout=TIMEOUT_S)]
            while len(items) < BATCH:
                try:
                    items.append(queue.get(raw=True, block=False))
                except Empty:
                    break
            batch_id = new_msg_id()
            client.push_batch(_batch_payload(batch_id, [item["data"] for item in items]), batch_id)
            for item in items:
                queue.ack(id=item["pqid"])
            acked += len(items)
        return len(wires) / (time.perf_counter() - start)
    finally:
        producer.join()
        client.close()
        queue.close()


def _batch_payload(batch_id: str, wires: list[dict[str, Any]]) -> bytes:
    """The body the outbox stores and sends: gzip of {"batch_id", "node_id", "messages"}."""
    body = orjson.dumps({"batch_id": batch_id, "node_id": NODE, "messages": wires})
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def measure(tmp: Path, relay_url: str, count: int, rounds: int) -> tuple[list[float], list[float]]:
    """Alternate outbox and peer rounds, each on fresh files; return the rates of each."""
    target = RelayTarget(relay_url, NODE, TOKENS[NODE], timeout=10.0)
    ours: list[float] = []
    theirs: list[float] = []
    for n in range(rounds + 1):  # round 0 warms both up and is not counted
        pair = [("outbox", run_outbox, ours), ("peer", run_peer, theirs)]
        for name, run, rates in pair if n % 2 == 0 else reversed(pair):
            work = tmp / f"{name}-{n}"
            work.mkdir()
            rate = run(work, target, envelopes(count if n else count // 4, f"{name}-{n}"))
            if n:
                rates.append(rate)
                print(f"round {n} {name}: {rate:,.0f} msgs/s", flush=True)
    return ours, theirs


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison against a relay process; the last line is one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench outbox")
    parser.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    args = parser.parse_args(argv)
    count, rounds = (2000, 2) if args.quick else (10_000, 5)
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        config_dir = write_config_dir(tmp / "config", cluster(tmp / "relay", relay_port=port))
        relay = start_relay(config_dir, tmp / "relay", port, tmp / "relay.log")
        try:
            ours, theirs = measure(tmp, relay.url, count, rounds)
        finally:
            relay.terminate()
    outbox_rate, peer_rate = statistics.median(ours), statistics.median(theirs)
    result = {
        "messages_per_round": count,
        "rounds": rounds,
        "outbox_msgs_per_s": round(outbox_rate),
        "peer_msgs_per_s": round(peer_rate),
        "ratio": round(outbox_rate / peer_rate, 2),
        "outbox_rounds": [round(r) for r in ours],
        "peer_rounds": [round(r) for r in theirs],
        "peer": "persist-queue SQLiteAckQueue (WAL, synchronous=FULL)",
        "comparison": COMPARISON,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print("target: ratio >= 1 (outbox at least as fast as persist-queue)")
    print(json.dumps(result))
    return 0
