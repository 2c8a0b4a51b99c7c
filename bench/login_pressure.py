"""Ingest under login guessing: `python -m bench login_pressure [--quick]`.

A relay in its own process on 127.0.0.1 (with 127.0.0.1 a trusted proxy, so each
guesser can name its own client address in X-Forwarded-For) stores one message every
20 ms (the 50 msgs/s load) over keep-alive while, in another process, 32 clients:
- nothing (quiet: the floor);
- fetch the login page back to back (flood: the cost of 32 busy clients that never hash);
- post wrong passwords back to back, each from its own address, ignoring Retry-After
  (guess: what a guessing attack costs ingest).
Per phase: ingest latency p50/p99, the load's answers by status, the relay's RSS after.
The last stdout line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
import yaml

from bench.tools.stats import percentile
from relay_app.passwords import hash_password
from runtime.core.envelope import MessageEnvelope
from runtime.core.token_files import token_sha256
from tests.support import Daemon, rss_mb

NODE = "node-a"
AGENT = "a1"
TOKEN = "token-of-node-a-0123456789"
CLIENTS = 32
PACE_S = 0.02
PHASES = ("quiet", "flood", "guess")


def main(argv: list[str]) -> int:
    """Run the three phases (or, with --load, be the 32 clients of one)."""
    parser = argparse.ArgumentParser(prog="python -m bench login_pressure")
    parser.add_argument("--quick", action="store_true", help="short phases (smoke run)")
    parser.add_argument(
        "--load", nargs=3, metavar=("KIND", "URL", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.load:
        kind, url, seconds = args.load
        print(orjson.dumps(_load(kind, url, float(seconds))).decode(), flush=True)
        return 0
    seconds = 4.0 if args.quick else 15.0
    with tempfile.TemporaryDirectory(prefix="bench-login-") as tmp:
        figures = _run(Path(tmp), seconds)
    for line in _report(figures):
        print(line)
    print(orjson.dumps(figures).decode())
    return 0


def _run(tmp: Path, seconds: float) -> dict[str, Any]:
    relay = _start_relay(tmp)
    try:
        ingest = _Ingest(relay.url)
        ingest.run(1.0)  # warm-up
        figures: dict[str, Any] = {"rss_start_mb": round(rss_mb(relay.proc.pid), 1)}
        for phase in PHASES:
            figures[phase] = _phase(phase, relay, ingest, seconds)
        ingest.close()
    finally:
        relay.terminate()
    figures["seconds_per_phase"] = seconds
    figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return figures


def _start_relay(tmp: Path) -> Daemon:
    doc = {
        "nodes": [
            {"id": NODE, "host": "127.0.0.1", "port": 9, "token_sha256": token_sha256(TOKEN)}
        ],
        "relay": {
            "min_free_bytes": 0,
            "operator_password_hash": hash_password("the right one"),
            "trusted_proxies": ["127.0.0.1"],
        },
    }
    (tmp / "relay.yaml").write_text(yaml.safe_dump(doc))
    (tmp / "agents").mkdir()  # the agent the ingest writes as belongs to node-a
    agent = {"agent_id": AGENT, "role": "coder", "node_id": NODE}
    (tmp / "agents" / f"{AGENT}.yaml").write_text(yaml.safe_dump(agent))
    args = ["-m", "relay_app.cli", "serve", "--config", str(tmp / "relay.yaml"),
            "--host", "127.0.0.1", "--port", "0", "--data-dir", str(tmp / "data")]  # fmt: skip
    return Daemon(args, tmp / "relay.log")


def _phase(kind: str, relay: Daemon, ingest: _Ingest, seconds: float) -> dict[str, Any]:
    load = None
    if kind != "quiet":
        cmd = [sys.executable, "-m", "bench", "login_pressure", "--load", kind, relay.url]
        load = subprocess.Popen([*cmd, str(seconds + 2.0)], stdout=subprocess.PIPE)
        time.sleep(1.0)  # let the clients connect and reach their pace
    latencies = ingest.run(seconds)
    answers: dict[str, int] = {}
    if load is not None:
        out, _ = load.communicate(timeout=seconds + 60)
        answers = orjson.loads(out.splitlines()[-1])
    return {
        "ingest_p50_ms": round(percentile(latencies, 50), 2),
        "ingest_p99_ms": round(percentile(latencies, 99), 2),
        "ingest_max_ms": round(max(latencies), 2),
        "messages": len(latencies),
        "load_answers": answers,
        "rss_after_mb": round(rss_mb(relay.proc.pid), 1),
    }


class _Ingest:
    """One node posting one message every PACE_S over a keep-alive connection."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        self.headers = {"Content-Type": "application/json", "X-Commander-Node": NODE,
                        "Authorization": f"Bearer {TOKEN}"}  # fmt: skip

    def run(self, seconds: float) -> list[float]:
        """Post for `seconds`; return each POST's latency in ms."""
        latencies: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            env = MessageEnvelope.new(agent_id=AGENT, node_id=NODE, content={"n": len(latencies)})
            body = orjson.dumps(env.to_wire())
            started = time.perf_counter()
            self.conn.request("POST", "/sync/message", body, self.headers)
            answer = self.conn.getresponse()
            answer.read()
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status != 200:
                raise RuntimeError(f"ingest answered {answer.status}")
            time.sleep(max(0.0, PACE_S - latencies[-1] / 1000))
        return latencies

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def _load(kind: str, url: str, seconds: float) -> dict[str, int]:
    """CLIENTS threads hitting the relay back to back; answers counted by status."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    end = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_client, args=(kind, url, i, end, counts, lock), daemon=True)
        for i in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return dict(counts)


def _client(
    kind: str, url: str, i: int, end: float, counts: Counter[str], lock: threading.Lock
) -> None:
    parts = urlsplit(url)
    origin = f"http://{parts.netloc}"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": origin,
               "X-Forwarded-For": f"198.51.100.{i + 1}"}  # fmt: skip
    form = urlencode({"user": "operator", "password": f"guess-{i}", "next": "/messages"}).encode()
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    while time.monotonic() < end:
        try:
            if kind == "guess":
                conn.request("POST", "/messages/login", form, headers)
            else:
                conn.request("GET", "/messages/login", headers=headers)
            answer = conn.getresponse()
            answer.read()
            status = str(answer.status)
            if answer.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            status = type(exc).__name__
            conn.close()
        with lock:
            counts[status] += 1
    conn.close()


def _report(figures: dict[str, Any]) -> list[str]:
    lines = [f"relay RSS at start: {figures['rss_start_mb']} MB",
             "phase   ingest p50   ingest p99   ingest max   RSS after   load answers"]  # fmt: skip
    for phase in PHASES:
        f = figures[phase]
        lines.append(
            f"{phase:<7} {f['ingest_p50_ms']:8.2f} ms {f['ingest_p99_ms']:9.2f} ms"
            f" {f['ingest_max_ms']:9.2f} ms {f['rss_after_mb']:8.1f} MB   {f['load_answers']}"
        )
    return lines
