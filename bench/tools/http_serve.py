"""The server side of `bench http_front` and `bench http_hostile`: one app on one server.

`serve(kind, app, ...)` runs in its own process, prints the port on stdout once, and
serves until killed. The apps: `small` (parse a small JSON body, answer 201) and `relay`
(the relay's own WSGI app with its store, IngestActor and middleware, as `RelayServer`
assembles it). The servers: `floor` (a bare asyncio protocol that parses nothing, small
app only), `front` and `front-tls` (`runtime.core.http_front`), `cheroot` and `granian`
(each only where the `bench` extra is installed). granian runs its WSGI worker as a child
process, so the parent kills the whole process group and counts the tree's CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import orjson

from tests.support import cpu_seconds, free_port

SERVERS = ("floor", "front", "front-tls", "cheroot", "granian")
INSTALLED = tuple(k for k in SERVERS if k not in ("cheroot", "granian") or find_spec(k))
# The relay's default worker count (RelaySettings.threads), for every server alike.
THREADS = 16
HEAD_TIMEOUT_S = 10
NODE = "bench-node"
# The node writes for these agents, named in the relay's topology like any cluster's.
AGENTS = 4
FIXED = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n"
FIXED_BODY = b'{"status":"stored"}'


def start(
    kind: str, app_name: str, tls_dir: Path, relay_dir: Path | None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `kind` serving `app_name` in its own process group; return it once it accepts."""
    command = [sys.executable, "-m", "bench", "http_front", "--serve", kind, "--app", app_name]
    command += ["--tls-dir", str(tls_dir)]
    command += ["--relay-dir", str(relay_dir)] if relay_dir is not None else []
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop(proc)
                raise SystemExit(f"bench: {kind} did not start") from None
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the server and any worker process it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # a worker process is reaped by init, not by us
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds so far of `pid` and every process below it (granian's worker)."""
    total = cpu_seconds(pid)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += tree_cpu_seconds(int(child))
    return total


def write_relay_config(relay_dir: Path) -> str:
    """relay.yaml for one node and its agents on 127.0.0.1; return the node's token."""
    token = secrets.token_urlsafe(32)
    (relay_dir / "agents").mkdir(parents=True, exist_ok=True)
    for i in range(AGENTS):
        (relay_dir / "agents" / f"agent-{i}.yaml").write_text(
            f'agent_id: "agent-{i}"\nrole: "recruiter"\nnode_id: "{NODE}"\n'
        )
    (relay_dir / "relay.yaml").write_text(
        f'nodes:\n  - id: "{NODE}"\n    host: "127.0.0.1"\n    port: 1\n'
        f'    token_sha256: "{hashlib.sha256(token.encode()).hexdigest()}"\n'
        "relay:\n  min_free_bytes: 0\n"
    )
    return token


def serve(kind: str, app_name: str, tls_dir: Path | None, relay_dir: Path | None) -> int:
    """Serve `app_name` on `kind` until killed; the port is the first stdout line."""
    _raise_descriptor_limit()
    if kind == "floor":
        asyncio.run(_serve_floor())
        return 0
    build: Callable[[], Any] = small_app
    if app_name == "relay":
        build = partial(relay_app, relay_dir)
    if kind == "granian":
        return _serve_granian(build)
    app = build()
    if kind.startswith("front"):
        return _serve_front(app, kind, tls_dir, _body_cap(relay_dir) if relay_dir else None)
    return _serve_cheroot(app)


def small_app() -> Any:
    """A Bottle app with one route: parse the JSON body, answer 201 with a fixed JSON body."""
    import bottle

    def store() -> bytes:
        orjson.loads(bottle.request.environ["wsgi.input"].read())
        bottle.response.status = 201
        bottle.response.content_type = "application/json"
        return FIXED_BODY

    app = bottle.Bottle()
    app.route("/sync/message", "POST", store)
    return app


def relay_app(relay_dir: Path | None) -> Any:
    """The relay's WSGI app over `relay_dir`/relay.yaml, wrapped as `RelayServer.start` wraps it."""
    from relay_app.cli import load_relay_config
    from relay_app.ingest import Ingest
    from relay_app.metrics import MetricsMiddleware
    from relay_app.metrics_auth import MetricsGate
    from relay_app.server import RelayServer
    from relay_app.stores.sqlite import SqliteStore

    assert relay_dir is not None
    config = load_relay_config(str(relay_dir / "relay.yaml"), data_dir=str(relay_dir / "data"))
    settings = config.relay
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    relay = RelayServer(config, host="127.0.0.1", port=0)
    store = SqliteStore(settings.data_dir, synchronous=settings.synchronous)
    app = relay.make_app(store, Ingest.start(store))
    return MetricsGate(MetricsMiddleware(app, store, relay.gate.free), settings)


def _body_cap(relay_dir: Path) -> int:
    from relay_app.cli import load_relay_config
    from relay_app.server import body_cap

    config = load_relay_config(str(relay_dir / "relay.yaml"), data_dir=str(relay_dir / "data"))
    return body_cap(config.relay)


def _serve_front(app: Any, kind: str, tls_dir: Path | None, body_bytes: int | None) -> int:
    from runtime.core.tls import load_server_context
    from runtime.core.wsgi import FrontLimits, serve_in_thread

    context = None
    if kind == "front-tls" and tls_dir is not None:
        context = load_server_context(tls_dir / "bench.pem", tls_dir / "bench.key", "bench")
    limits = FrontLimits() if body_bytes is None else FrontLimits(body_bytes=body_bytes)
    server = serve_in_thread(
        app, "127.0.0.1", 0, threads=THREADS, name="bench", limits=limits, ssl_context=context
    )
    print(server.port, flush=True)
    server._thread.join()
    return 0


def _serve_cheroot(app: Any) -> int:
    from cheroot import wsgi

    # timeout: cheroot's per-read socket timeout, the nearest it has to a head deadline.
    cheroot = wsgi.Server(("127.0.0.1", 0), app, numthreads=THREADS, timeout=HEAD_TIMEOUT_S)
    cheroot.keep_alive_conn_limit = 256
    cheroot.prepare()
    print(cheroot.bind_addr[1], flush=True)
    cheroot.serve()
    return 0


def _serve_granian(build: Callable[[], Any]) -> int:
    """granian's own server: one worker process, HTTP/1.1 only, the app built in the worker."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    port = free_port()
    server = Server(
        "bench",
        address="127.0.0.1",
        port=port,
        interface=Interfaces.WSGI,
        workers=1,
        blocking_threads=THREADS,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=HEAD_TIMEOUT_S * 1000),
        log_enabled=False,
    )
    print(port, flush=True)  # the parent waits until it accepts
    # The loader runs in the worker after the fork: the store and its actor live there.
    server.serve(target_loader=lambda _target: build())
    return 0


def _raise_descriptor_limit() -> None:
    """Let every server hold a thousand idle sockets (the front raises its own limit too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))


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
