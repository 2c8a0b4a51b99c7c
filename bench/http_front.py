"""HTTP server cost per request: `python -m bench http_front [--quick]`.

The same Bottle app (parse a small JSON body, answer 201 with JSON) served in its own
process by the relay's front (`runtime.core.http_front`) and by cheroot (the server it
replaced), beside a floor: a bare asyncio protocol answering a fixed response without
parsing anything. Requests go over one keep-alive connection, paced 20 ms apart (the
50 msgs/s load) and back to back; the figure is the server process's CPU per request
(from /proc), the median over rounds in alternating order, with latency p50/p99 over
every request. `front-tls` is the relay's front over TLS (a certificate from a private
CA, as `commander-relay tls` makes); the `fresh` column opens a new connection for each
request, so for TLS it includes a full handshake. cheroot comes with the `bench` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import orjson

from tests.support import cpu_seconds

# cheroot only where the `bench` extra is installed.
KINDS = ("floor", "front", "front-tls", "cheroot")[: 4 if find_spec("cheroot") else 3]
FRESH = 100
BODY = orjson.dumps({"msg_id": "0190c9e2-7a35-7b6e-8c1d-2f4e5a6b7c8d", "content": {"x": "y" * 300}})
FIXED = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n"
FIXED_BODY = b'{"status":"stored"}'


def main(argv: list[str]) -> int:
    """Run the comparison (or, with --serve KIND, be the server it measures)."""
    parser = argparse.ArgumentParser(prog="python -m bench http_front")
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--tls-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(args.serve, args.tls_dir)
    rounds, count = (1, 100) if args.quick else (5, 500)
    with tempfile.TemporaryDirectory() as tls_dir:
        results = _measure(rounds, count, Path(tls_dir))
    for line in _report(results):
        print(line)
    print(orjson.dumps(_summary(results)).decode())
    return 0


def _measure(rounds: int, count: int, tls_dir: Path) -> dict[str, dict[str, list[float]]]:
    from relay_app.tls import init_ca, issue

    init_ca(tls_dir)
    issue(tls_dir, "bench", ["127.0.0.1"])
    results: dict[str, dict[str, list[float]]] = {
        kind: {"paced_cpu_ms": [], "burst_cpu_ms": [], "fresh_cpu_ms": [], "latency_ms": []}
        for kind in KINDS
    }
    for round_ in range(rounds):
        order = KINDS if round_ % 2 == 0 else tuple(reversed(KINDS))
        for kind in order:
            figures = results[kind]
            paced, burst, fresh, latencies = _one_round(kind, count, tls_dir)
            figures["paced_cpu_ms"].append(paced)
            figures["burst_cpu_ms"].append(burst)
            figures["fresh_cpu_ms"].append(fresh)
            figures["latency_ms"].extend(latencies)
    return results


def _one_round(kind: str, count: int, tls_dir: Path) -> tuple[float, float, float, list[float]]:
    command = [sys.executable, "-m", "bench", "http_front", "--serve", kind]
    proc = subprocess.Popen([*command, "--tls-dir", str(tls_dir)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        conn = _connection(kind, port, tls_dir)
        _requests(conn, 50, 0.0)  # warm up
        before = cpu_seconds(proc.pid)
        latencies = _requests(conn, count, 0.02)
        paced = (cpu_seconds(proc.pid) - before) / count * 1000
        before = cpu_seconds(proc.pid)
        _requests(conn, count, 0.0)
        burst = (cpu_seconds(proc.pid) - before) / count * 1000
        conn.close()
        before = cpu_seconds(proc.pid)
        for _ in range(FRESH):
            fresh_conn = _connection(kind, port, tls_dir)
            _requests(fresh_conn, 1, 0.0)
            fresh_conn.close()
        fresh = (cpu_seconds(proc.pid) - before) / FRESH * 1000
        return paced, burst, fresh, latencies
    finally:
        proc.kill()
        proc.wait(10)


def _connection(kind: str, port: int, tls_dir: Path) -> http.client.HTTPConnection:
    if kind != "front-tls":
        return http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)


def _requests(conn: http.client.HTTPConnection, count: int, pace: float) -> list[float]:
    latencies = []
    headers = {"Content-Type": "application/json"}
    for _ in range(count):
        started = time.perf_counter()
        conn.request("POST", "/sync/message", body=BODY, headers=headers)
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 201, answer.status
        latencies.append((time.perf_counter() - started) * 1000)
        if pace:
            time.sleep(pace)
    return latencies


def _report(results: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = ["server    paced CPU/req  burst CPU/req  fresh CPU/req  latency p50   latency p99"]
    for kind, figures in results.items():
        lat = sorted(figures["latency_ms"])
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        lines.append(
            f"{kind:<9} {statistics.median(figures['paced_cpu_ms']):9.3f} ms"
            f" {statistics.median(figures['burst_cpu_ms']):11.3f} ms"
            f" {statistics.median(figures['fresh_cpu_ms']):11.3f} ms"
            f" {statistics.median(lat):10.3f} ms {p99:10.3f} ms"
        )
    return lines


def _summary(results: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    return {
        kind: {
            "paced_cpu_ms": round(statistics.median(f["paced_cpu_ms"]), 3),
            "burst_cpu_ms": round(statistics.median(f["burst_cpu_ms"]), 3),
            "fresh_cpu_ms": round(statistics.median(f["fresh_cpu_ms"]), 3),
            "latency_p50_ms": round(statistics.median(f["latency_ms"]), 3),
        }
        for kind, f in results.items()
    }


def _serve(kind: str, tls_dir: str | None) -> int:
    if kind == "floor":
        asyncio.run(_serve_floor())
        return 0
    app = _app()
    if kind.startswith("front"):
        from runtime.core.tls import load_server_context
        from runtime.core.wsgi import serve_in_thread

        context = None
        if kind == "front-tls" and tls_dir is not None:
            cert, key = Path(tls_dir) / "bench.pem", Path(tls_dir) / "bench.key"
            context = load_server_context(cert, key, "bench")
        server = serve_in_thread(app, "127.0.0.1", 0, name="bench", ssl_context=context)
        print(server.port, flush=True)
        server._thread.join()
        return 0
    from cheroot import wsgi

    cheroot = wsgi.Server(("127.0.0.1", 0), app, numthreads=16, timeout=10)
    cheroot.keep_alive_conn_limit = 256
    cheroot.prepare()
    print(cheroot.bind_addr[1], flush=True)
    cheroot.serve()
    return 0


def _app() -> Any:
    import bottle

    def store() -> bytes:
        orjson.loads(bottle.request.environ["wsgi.input"].read())
        bottle.response.status = 201
        bottle.response.content_type = "application/json"
        return FIXED_BODY

    app = bottle.Bottle()
    app.route("/sync/message", "POST", store)
    return app


class _Fixed(asyncio.Protocol):
    """Answer every complete request head with the same bytes; no parsing beyond framing."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = int(head.lower().partition(b"content-length:")[2].split(b"\r\n")[0] or 0)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.transport.write(FIXED + FIXED_BODY)


async def _serve_floor() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Fixed, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
