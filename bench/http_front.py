"""HTTP server cost per request: `python -m bench http_front [--quick] [--app small|relay]`.

Two apps, each served in its own process by each server (bench/tools/http_serve.py):
`small`, a Bottle app that parses a small JSON body and answers 201, and `relay`, the
relay's own app (store, IngestActor, middleware) taking POST /sync/message with a bearer
token, as a node's write-through sends one message. The servers: the relay's front
(`runtime.core.http_front`), cheroot (the server it replaced) and granian (a Rust server
with a WSGI interface; one worker process), beside a floor for the small app: a bare
asyncio protocol answering a fixed response without parsing anything. Requests go over
one keep-alive connection, paced 20 ms apart (the 50 msgs/s load) and back to back; the
figure is the server's CPU per request (from /proc, its worker processes included), the
median over rounds in alternating order, with latency p50/p99 over every request.
`front-tls` is the relay's front over TLS (a certificate from a private CA, as
`commander-relay tls` makes); the `fresh` column opens a new connection for each request,
so for TLS it includes a full handshake. cheroot and granian come with the `bench` extra.
The relay app gets a new data directory for every round.
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.tools import http_serve
from bench.tools.http_serve import INSTALLED, NODE, SERVERS

APPS = {
    "small": INSTALLED,
    "relay": tuple(k for k in INSTALLED if k in ("front", "cheroot", "granian")),
}
FRESH = 100
WARM = 50
BODY = orjson.dumps({"msg_id": "0190c9e2-7a35-7b6e-8c1d-2f4e5a6b7c8d", "content": {"x": "y" * 300}})
Results = dict[str, dict[str, list[float]]]


def main(argv: list[str]) -> int:
    """Run the comparison (or, with --serve KIND, be the server it measures)."""
    parser = argparse.ArgumentParser(prog="python -m bench http_front")
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument("--app", choices=(*APPS, "both"), default="both", help="which app")
    parser.add_argument("--rounds", type=int, help="rounds in alternating order (default 5)")
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--tls-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--relay-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return http_serve.serve(args.serve, args.app, args.tls_dir, args.relay_dir)
    rounds, count = (1, 100) if args.quick else (5, 500)
    apps = list(APPS) if args.app == "both" else [args.app]
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        results = _measure(apps, args.rounds or rounds, count, Path(tmp))
    for line in _report(results):
        print(line)
    print(orjson.dumps(_summary(results)).decode())
    return 0


def _measure(apps: list[str], rounds: int, count: int, tmp: Path) -> Results:
    from relay_app.tls import init_ca, issue

    init_ca(tmp)
    issue(tmp, "bench", ["127.0.0.1"])
    pairs = [(app, kind) for app in apps for kind in APPS[app]]
    results: Results = {
        f"{app}/{kind}": {
            "paced_cpu_ms": [],
            "burst_cpu_ms": [],
            "fresh_cpu_ms": [],
            "latency_ms": [],
        }
        for app, kind in pairs
    }
    for round_ in range(rounds):
        for app, kind in pairs if round_ % 2 == 0 else reversed(pairs):
            relay_dir = tmp / f"relay-{round_}-{kind}" if app == "relay" else None
            figures = results[f"{app}/{kind}"]
            paced, burst, fresh, latencies = _one_round(kind, count, tmp, relay_dir)
            figures["paced_cpu_ms"].append(paced)
            figures["burst_cpu_ms"].append(burst)
            figures["fresh_cpu_ms"].append(fresh)
            figures["latency_ms"].extend(latencies)
    return results


def _one_round(
    kind: str, count: int, tls_dir: Path, relay_dir: Path | None
) -> tuple[float, float, float, list[float]]:
    client = _Client(kind, tls_dir, relay_dir, WARM + 2 * count + FRESH)
    proc, port = http_serve.start(
        kind, "small" if relay_dir is None else "relay", tls_dir, relay_dir
    )
    try:
        conn = client.connect(port)
        client.send(conn, WARM, 0.0)
        before = http_serve.tree_cpu_seconds(proc.pid)
        latencies = client.send(conn, count, 0.02)
        paced = (http_serve.tree_cpu_seconds(proc.pid) - before) / count * 1000
        before = http_serve.tree_cpu_seconds(proc.pid)
        client.send(conn, count, 0.0)
        burst = (http_serve.tree_cpu_seconds(proc.pid) - before) / count * 1000
        conn.close()
        before = http_serve.tree_cpu_seconds(proc.pid)
        for _ in range(FRESH):
            fresh_conn = client.connect(port)
            client.send(fresh_conn, 1, 0.0)
            fresh_conn.close()
        fresh = (http_serve.tree_cpu_seconds(proc.pid) - before) / FRESH * 1000
        return paced, burst, fresh, latencies
    finally:
        http_serve.stop(proc)


class _Client:
    """What one round sends: the small body, or distinct relay messages with the node's token."""

    def __init__(self, kind: str, tls_dir: Path, relay_dir: Path | None, total: int) -> None:
        self.kind, self.tls_dir = kind, tls_dir
        self.headers = {"Content-Type": "application/json"}
        self.bodies = iter([BODY] * total)
        self.status = 201
        if relay_dir is not None:
            token = http_serve.write_relay_config(relay_dir)
            self.headers |= {"Authorization": f"Bearer {token}", "X-Commander-Node": NODE}
            self.bodies = iter([_message(i) for i in range(total)])
            self.status = 200

    def connect(self, port: int) -> http.client.HTTPConnection:
        """A new connection (TLS for `front-tls`)."""
        if self.kind != "front-tls":
            return http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        context = ssl.create_default_context(cafile=str(self.tls_dir / "ca.pem"))
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)

    def send(self, conn: http.client.HTTPConnection, count: int, pace: float) -> list[float]:
        """`count` POSTs, `pace` s apart; each one's latency in ms."""
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            conn.request("POST", "/sync/message", body=next(self.bodies), headers=self.headers)
            answer = conn.getresponse()
            data = answer.read()
            assert answer.status == self.status, (answer.status, data[:200])
            latencies.append((time.perf_counter() - started) * 1000)
            if pace:
                time.sleep(pace)
        return latencies


def _message(i: int) -> bytes:
    from runtime.core.envelope import MessageEnvelope

    env = MessageEnvelope.new(
        agent_id=f"agent-{i % http_serve.AGENTS}",
        node_id=NODE,
        content={"kind": "report", "text": f"lead {i}: " + "lorem ipsum " * 12, "score": i / 7},
        task_id=f"task-{i % 50}",
        role="recruiter",
    )
    return orjson.dumps(env.to_wire())


def _report(results: Results) -> list[str]:
    lines = [
        "app/server         paced CPU/req  burst CPU/req  fresh CPU/req  latency p50   latency p99"
    ]
    for name, figures in results.items():
        lat = sorted(figures["latency_ms"])
        lines.append(
            f"{name:<17} {statistics.median(figures['paced_cpu_ms']):9.3f} ms"
            f" {statistics.median(figures['burst_cpu_ms']):11.3f} ms"
            f" {statistics.median(figures['fresh_cpu_ms']):11.3f} ms"
            f" {statistics.median(lat):10.3f} ms {_p99(lat):10.3f} ms"
        )
    return lines


def _p99(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _summary(results: Results) -> dict[str, Any]:
    return {
        name: {
            "paced_cpu_ms": round(statistics.median(f["paced_cpu_ms"]), 3),
            "burst_cpu_ms": round(statistics.median(f["burst_cpu_ms"]), 3),
            "fresh_cpu_ms": round(statistics.median(f["fresh_cpu_ms"]), 3),
            "latency_p50_ms": round(statistics.median(f["latency_ms"]), 3),
            "latency_p99_ms": round(_p99(sorted(f["latency_ms"])), 3),
            "paced_cpu_ms_rounds": [round(x, 3) for x in f["paced_cpu_ms"]],
            "burst_cpu_ms_rounds": [round(x, 3) for x in f["burst_cpu_ms"]],
        }
        for name, f in results.items()
    }
