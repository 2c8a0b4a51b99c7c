"""Relay ingest benchmark: `python -m bench relay_ingest [--quick]`.

One run measures, against a relay in its own process on 127.0.0.1:
- single-message POST /sync/message latency, one request at a time (p50, p99);
- the same POSTs to a bare Bottle endpoint on the same server that only parses the
  JSON (the HTTP floor: cheroot + Bottle + the client);
- POST /sync/messages with batches of 500, gzip-compressed as the node's outbox sends
  them, from two connections so one batch is parsed while another commits;
- a raw sqlite3 executemany of the same rows into the same schema (the storage floor).
The last stdout line is one JSON object with the five figures.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from bench.tools.http_serve import AGENTS, NODE, write_relay_config

BATCH = 500


def main(argv: list[str]) -> int:
    """Run the benchmark (or, with --serve, be the relay process it measures)."""
    parser = argparse.ArgumentParser(prog="python -m bench relay_ingest")
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(Path(args.serve))
    sizes = (300, 2, 4) if args.quick else (3000, 20, 40)
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        figures = _run(Path(tmp), *sizes)
    for key, value in figures.items():
        print(f"{key:>18}: {value}")
    print(orjson.dumps(figures).decode())
    return 0


def _run(tmp: Path, singles: int, warm_batches: int, batches: int) -> dict[str, Any]:
    token = write_relay_config(tmp)
    proc, port = _start_relay(tmp)
    try:
        headers = {
            "Content-Type": "application/json",
            "X-Commander-Node": NODE,
            "Authorization": f"Bearer {token}",
        }
        client = _Client(port, headers)
        _latencies(client, "/sync/message", _singles(200))  # warm-up
        single = _latencies(client, "/sync/message", _singles(singles))
        floor = _latencies(client, "/bench/floor", _singles(singles))
        client.close()
        _batch_rate(port, headers, warm_batches)
        batch_rate = _batch_rate(port, headers, batches)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    raw_rate = _raw_rate(tmp / "raw", batches)
    return {
        "single_p50_ms": _pct(single, 50),
        "single_p99_ms": _pct(single, 99),
        "floor_p50_ms": _pct(floor, 50),
        "floor_p99_ms": _pct(floor, 99),
        "batch_msgs_per_s": round(batch_rate),
        "raw_msgs_per_s": round(raw_rate),
        "singles": singles,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "batches": batches,
    }


def _start_relay(tmp: Path) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, "-m", "bench", "relay_ingest", "--serve", str(tmp)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("listening "):
            return proc, int(line.split()[1])
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("bench: the relay did not start")


def _serve(tmp: Path) -> int:
    """The relay process: the relay as the CLI runs it, plus a bare JSON endpoint."""
    import signal

    from relay_app.cli import load_relay_config

    config = load_relay_config(str(tmp / "relay.yaml"), data_dir=str(tmp / "data"))
    relay = _floor_relay_class()(config, host="127.0.0.1", port=0).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"listening {relay.url.rsplit(':', 1)[1]}", flush=True)
    stop.wait(600)
    relay.stop()
    return 0


def _floor_relay_class() -> Any:
    """RelayServer with /bench/floor: same server, same middleware, no auth, no store."""
    import bottle

    from relay_app.ingest import Ingest
    from relay_app.server import RelayServer
    from relay_app.store import MessageStore

    def floor() -> bytes:
        stream = bottle.request.environ["wsgi.input"]
        orjson.loads(stream.read(int(bottle.request.environ["CONTENT_LENGTH"])))
        bottle.response.content_type = "application/json"
        return b'{"status":"parsed"}'

    class FloorRelay(RelayServer):
        """The relay plus the floor route."""

        def make_app(self, store: MessageStore, ingest: Ingest) -> bottle.Bottle:
            app = super().make_app(store, ingest)
            app.route("/bench/floor", "POST", floor)
            return app

    return FloorRelay


class _Client:
    """One keep-alive HTTP/1.1 connection; http.client adds the least client overhead."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = headers

    def post(self, path: str, body: bytes, extra: dict[str, str] | None = None) -> bytes:
        """POST and return the body; any status but 200 ends the benchmark."""
        self.conn.request("POST", path, body, {**self.headers, **(extra or {})})
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise SystemExit(f"bench: {path} answered {response.status}: {data[:200]!r}")
        return data

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def _message(i: int) -> dict[str, Any]:
    from runtime.core.envelope import MessageEnvelope

    env = MessageEnvelope.new(
        agent_id=f"agent-{i % AGENTS}",
        node_id=NODE,
        content={"kind": "report", "text": f"lead {i}: " + "lorem ipsum " * 12, "score": i / 7},
        task_id=f"task-{i % 50}",
        role="recruiter",
    )
    return env.to_wire()


def _singles(count: int) -> list[bytes]:
    return [orjson.dumps(_message(i)) for i in range(count)]


def _latencies(client: _Client, path: str, bodies: list[bytes]) -> list[float]:
    out = []
    for body in bodies:
        start = time.perf_counter()
        client.post(path, body)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _batch_rate(port: int, headers: dict[str, str], count: int, connections: int = 2) -> float:
    bodies = [
        gzip.compress(
            orjson.dumps(
                {
                    "batch_id": os.urandom(8).hex(),
                    "node_id": NODE,
                    "messages": [_message(i) for i in range(BATCH)],
                }
            ),
            1,
        )
        for _ in range(count)
    ]
    clients = [_Client(port, headers) for _ in range(connections)]
    threads = [
        threading.Thread(target=_send_batches, args=(c, bodies[i::connections]))
        for i, c in enumerate(clients)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for c in clients:
        c.close()
    return count * BATCH / elapsed


def _send_batches(client: _Client, bodies: list[bytes]) -> None:
    for body in bodies:
        client.post("/sync/messages", body, {"Content-Encoding": "gzip"})


def _raw_rate(path: Path, count: int) -> float:
    """The storage floor: the same rows, executemany'd in batches of 500, one commit each."""
    from relay_app.stores.sqlite import INSERT_MESSAGE
    from relay_app.stores.sqlite_schema import MIGRATIONS
    from relay_app.validate import message_row
    from runtime.core import sqlite as rsqlite

    conn = rsqlite.connect(path / "raw.db", synchronous="FULL")
    rsqlite.migrate(conn, MIGRATIONS)
    batches = [
        [(*message_row(_message(i), NODE), time.time()) for i in range(BATCH)] for _ in range(count)
    ]
    start = time.perf_counter()
    for rows in batches:
        with rsqlite.transaction(conn):
            conn.executemany(INSERT_MESSAGE, rows)
    elapsed = time.perf_counter() - start
    conn.close()
    return count * BATCH / elapsed


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return round(ordered[index], 3)
