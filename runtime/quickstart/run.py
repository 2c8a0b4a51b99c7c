"""`make run`: the relay and two nodes with the example agents on 127.0.0.1, demo reports flowing.

Everything lives under ./data/quickstart: a copy of config/ with the relay moved to
127.0.0.1, one secret token per node, the operator password of the inbox, the
relay's database and each node's caches. Ctrl-C, SIGTERM or a closed output stops it
all (SIGTERM to each daemon's process group, nodes first, then the relay): see
runtime/quickstart/children.py for why that holds however it was started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from relay_app.passwords import hash_password
from runtime.core.config import load_config
from runtime.core.errors import CommanderError
from runtime.core.token_files import token_sha256
from runtime.node.client import NodeAdmin, NodeClient
from runtime.quickstart.children import Children, Output, install_stop_signals


def env_ints(name: str, default: str, *, low: int = 0, high: int = 2**63) -> list[int]:
    """The comma-separated integers of environment variable `name`, or a one-line exit."""
    raw = os.environ.get(name, default)
    try:
        values = [int(part) for part in raw.split(",")]
    except ValueError:
        values = []
    if not values or not all(low <= v <= high for v in values):
        raise SystemExit(f"{name}={raw!r}: expected integers from {low} to {high}, comma-separated")
    return values


ROOT = Path("data/quickstart")
# Where a node is: its TCP URL (metrics), its sockets (`unix:DIR`), its agents.
NodeWhere = tuple[str, str, list[str]]
RELAY_PORT = env_ints("COMMANDER_RELAY_PORT", "8001", low=1, high=65535)[0]
REPORT_EVERY_S = 5.0
# One port per node, in the order of their ids; a list, so that no port is guessed.
NODE_PORTS = env_ints("COMMANDER_NODE_PORTS", "8002,8003", low=1, high=65535)
# Below this much free disk the relay refuses writes (507) and the nodes keep them queued.
MIN_FREE_BYTES = env_ints("COMMANDER_MIN_FREE_BYTES", str(64 * 1024 * 1024))[0]
REPORTS = [
    ("high", {"kind": "lead", "title": "HOT lead: ACME Corp wants a demo", "score": 0.93}),
    ("normal", {"kind": "task_complete", "title": "Scraped 120 company pages", "pages": 120}),
    ("critical", {"kind": "error", "title": "Login to CRM failed 3 times", "code": "AUTH_FAILED"}),
    ("low", {"kind": "note", "title": "Queue is quiet; idling", "idle_s": 30}),
    ("normal", {"kind": "analysis", "title": "Summary of Q3 pipeline", "deals": 14}),
]


@dataclass(frozen=True)
class Site:
    """Where one quickstart runs: its data and logs, its relays (preferred first), its sockets."""

    root: Path
    relay_urls: tuple[str, ...]
    sockets: Path


def prepare(
    source: Path, root: Path = ROOT, relay_port: int = RELAY_PORT
) -> tuple[Path, dict[str, Path], str]:
    """Copy the config with the relay on 127.0.0.1; make tokens and the operator password."""
    config_dir = root / "config"
    if config_dir.exists():
        shutil.rmtree(config_dir)
    shutil.copytree(source, config_dir)
    secrets_dir = root / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    topology = yaml.safe_load((config_dir / "relay.yaml").read_text())
    hashes_file = secrets_dir / "token-hashes.yaml"
    tokens = _tokens(topology, secrets_dir, hashes_file)
    password = _operator_password(secrets_dir)
    for node in topology["nodes"]:
        node["host"] = "127.0.0.1"  # never the LAN addresses of the example
        if node.get("role") == "storage":
            node["port"] = relay_port
            node["sync_endpoint"] = f"http://127.0.0.1:{relay_port}/sync/messages"
    topology["relay"] = {
        "data_dir": str((root / "relay").resolve()),
        "token_hashes_file": str(hashes_file.resolve()),
        "operator_password_hash": hash_password(password),
        "min_free_bytes": MIN_FREE_BYTES,
    }
    (config_dir / "relay.yaml").write_text(yaml.safe_dump(topology, sort_keys=False))
    return config_dir, tokens, password


def _tokens(topology: dict[str, Any], secrets_dir: Path, hashes_file: Path) -> dict[str, Path]:
    hashes: dict[str, str] = {}
    files: dict[str, Path] = {}
    for node in topology["nodes"]:
        if node.get("role") == "storage":
            continue
        path = secrets_dir / f"{node['id']}.token"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        hashes[node["id"]] = token_sha256(path.read_text().strip())
        files[node["id"]] = path
    hashes_file.write_text(yaml.safe_dump(hashes))
    return files


def _operator_password(secrets_dir: Path) -> str:
    path = secrets_dir / "operator-password.txt"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


def node_port(offset: int) -> int:
    """The port of the node at `offset`; past the listed ports, the next after the last."""
    if offset < len(NODE_PORTS):
        return NODE_PORTS[offset]
    return NODE_PORTS[-1] + offset - len(NODE_PORTS) + 1


def ensure_free(port: int, variable: str) -> None:
    """Stop with a clear message when another program already listens on `port`."""
    if not 0 < port < 65536:
        raise SystemExit(f"port {port} is out of range; set {variable}")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SystemExit(
                f"127.0.0.1:{port} is taken ({exc.strerror}); stop what uses it or set {variable}"
            ) from None


class Stopped(Exception):
    """Asked to stop (a signal, a closed output) before everything had started."""


def wait_http(
    url: str,
    proc: subprocess.Popen[bytes],
    name: str,
    stop: threading.Event,
    timeout: float = 30.0,
    logs: Path = ROOT,
) -> None:
    """Wait until `url` answers, or fail naming the log to read; `stop` ends the wait."""
    import requests  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stop.is_set():
            raise Stopped
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}; see {logs / name}.log")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{name} did not answer at {url}; see {logs / name}.log")


def demo_agent(
    address: str, agent_id: str, stop: threading.Event, interval: float, output: Output
) -> None:
    """Write a demo report every few seconds, as an agent in its own process would."""
    client = NodeClient(address, agent_id)
    rng = random.Random(agent_id)
    while not stop.wait(interval * rng.uniform(0.5, 1.5)):
        priority, content = rng.choice(REPORTS)
        try:
            client.write(content, priority=priority, task_id=f"task-{rng.randint(1, 20)}")
        except (CommanderError, OSError) as exc:
            output.say(f"  [{agent_id}] write failed: {exc}")
    client.close()


def progress_line(
    relay_url: str, node_urls: dict[str, NodeWhere], relay_headers: dict[str, str]
) -> str:
    """One line on what was written where: per node, messages cached and not yet synced.

    `relay_headers` carry a node's token: the relay tells why it refuses only to insiders.
    """
    import requests  # noqa: PLC0415

    parts = [time.strftime("%H:%M:%S")]
    try:
        unread = requests.get(f"{relay_url}/api/unread_count", timeout=2).json()["unread"]
        parts.append(f"relay inbox: {unread} unread")
        health = requests.get(f"{relay_url}/healthz", headers=relay_headers, timeout=2).json()
        parts.extend(refusal_reasons(health))
    except (requests.RequestException, ValueError, KeyError):
        parts.append("relay: not answering")
    for node_id, (_, sockets, _) in node_urls.items():
        try:
            agents = NodeAdmin(sockets, timeout=2).status()["agents"]
            written = sum(a["cache"]["message_count"] for a in agents)
            waiting = sum(a["cache"]["unsynced_count"] for a in agents)
            parts.append(f"{node_id}: {written} written, {waiting} not yet on the relay")
        except (CommanderError, requests.RequestException, ValueError, KeyError, TypeError):
            parts.append(f"{node_id}: not answering")
    return "  " + " | ".join(parts)


def node_headers(tokens: dict[str, Path]) -> dict[str, str]:
    """The headers that authenticate the first node (to read the relay's full /healthz)."""
    node_id = min(tokens)
    token = tokens[node_id].read_text(encoding="utf-8").strip()
    return {"X-Commander-Node": node_id, "Authorization": f"Bearer {token}"}


def refusal_reasons(health: dict[str, Any]) -> list[str]:
    """Why the relay refuses writes, as its /healthz says: the reason nothing arrives."""
    refusing = health.get("refusing")
    if refusing == "disk_floor":
        free, floor = health["free_bytes"] // 2**20, health["min_free_bytes"] // 2**20
        return [
            f"RELAY REFUSES WRITES: {free} MB free on its disk, below the floor of {floor} MB"
            " (COMMANDER_MIN_FREE_BYTES)"
        ]
    if refusing == "database_full":
        return ["RELAY REFUSES WRITES: its database is full"]
    if refusing is not None:
        return ["RELAY REFUSES WRITES: its store writer is stopped (see data/quickstart/relay.log)"]
    return []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the whole cluster on this machine until Ctrl-C, SIGTERM or a closed output."""
    args = parser("make run").parse_args(argv)
    return supervise(ROOT, lambda *context: _run(args, *context))


def parser(prog: str) -> argparse.ArgumentParser:
    """The options every quickstart takes."""
    options = argparse.ArgumentParser(prog=prog)
    options.add_argument("--config", default="config", help="config directory to start from")
    options.add_argument("--interval", type=float, default=3.0, help="seconds between demo reports")
    return options


Body = Callable[[Children, Output, threading.Event, Path], None]


def supervise(root: Path, body: Body) -> int:
    """Run `body(children, output, stop, sockets)`, then stop every daemon it started."""
    stop = threading.Event()
    # First of all: a signal while the daemons start must still stop them, in order.
    install_stop_signals(stop)
    output = Output(on_error=stop.set)  # nobody reads us any more: stop, as SIGPIPE would
    root.mkdir(parents=True, exist_ok=True)
    # Sockets under /tmp: a checkout's path may be too long for one (107 bytes at most).
    sockets = Path(tempfile.mkdtemp(prefix="commander-"))
    children = Children(root, output)
    try:
        body(children, output, stop, sockets)
    except Stopped:
        pass
    finally:
        stop.set()
        children.stop_all()
        shutil.rmtree(sockets, ignore_errors=True)
    return 0


def _run(
    args: argparse.Namespace,
    children: Children,
    output: Output,
    stop: threading.Event,
    sockets: Path,
) -> None:
    """Start the relay, then the nodes and the demo agents; report progress until `stop`."""
    config_dir, tokens, password = prepare(Path(args.config))
    config = load_config(config_dir)
    ensure_free(RELAY_PORT, "COMMANDER_RELAY_PORT")
    relay = children.start(
        ["-m", "relay_app.cli", "serve", "--config", str(config_dir / "relay.yaml")], "relay"
    )
    site = Site(ROOT, (f"http://127.0.0.1:{RELAY_PORT}",), sockets)
    wait_http(site.relay_urls[0] + "/healthz", relay, "relay", stop)
    node_urls = start_nodes(config_dir, tokens, config, children, site, stop)
    banner(output, site, node_urls, password)
    serve_demo(args.interval, site, node_urls, (children, output, stop), node_headers(tokens))


def serve_demo(
    interval: float,
    site: Site,
    node_urls: dict[str, NodeWhere],
    context: tuple[Children, Output, threading.Event],
    headers: dict[str, str],
) -> None:
    """Start the demo agents; watch the daemons and report progress until `stop`."""
    children, output, stop = context
    for _, address, agents in node_urls.values():
        for agent_id in agents:
            where = (address, agent_id, stop, interval, output)
            threading.Thread(target=demo_agent, args=where, daemon=True).start()
    last_report = time.monotonic()
    while not stop.wait(0.5):
        for name, proc in children.procs:
            if proc.poll() is not None:
                output.say(f"{name} exited with {proc.returncode}; see {site.root / name}.log")
                stop.set()
        if not stop.is_set() and time.monotonic() - last_report >= REPORT_EVERY_S:
            last_report = time.monotonic()
            output.say(progress_line(site.relay_urls[0], node_urls, headers))


def start_nodes(
    config_dir: Path,
    tokens: dict[str, Path],
    config: Any,
    children: Children,
    site: Site,
    stop: threading.Event,
) -> dict[str, NodeWhere]:
    """Start every node that has agents; each prefers the next relay of the site's list."""
    urls: dict[str, NodeWhere] = {}
    sockets = site.sockets
    for offset, node_id in enumerate(sorted(tokens)):
        agents = [a.agent_id for a in config.agents_on(node_id)]
        if not agents:
            continue
        port = node_port(offset)
        turn = offset % len(site.relay_urls)
        relays = ",".join(site.relay_urls[turn:] + site.relay_urls[:turn])
        ensure_free(port, "COMMANDER_NODE_PORTS")
        proc = children.start(
            [
                "-m",
                "runtime.node.daemon",
                "--config",
                str(config_dir),
                "--node-id",
                node_id,
                "--data-dir",
                str(site.root / "nodes" / node_id),
                "--relay-url",
                relays,
                "--token-file",
                str(tokens[node_id]),
                "--listen",
                f"127.0.0.1:{port}",
                "--socket-dir",
                str(sockets / node_id),
            ],
            node_id,
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", proc, node_id, stop, logs=site.root)
        urls[node_id] = (url, f"unix:{sockets / node_id}", agents)
    return urls


def banner(
    output: Output,
    site: Site,
    node_urls: dict[str, NodeWhere],
    password: str,
    notes: Sequence[str] = (),
) -> None:
    """Where everything is; its last line, `Logs and data:`, says that all of it answers."""
    say = output.say
    say("\nCommander storage is running (Ctrl-C stops it all).\n")
    for k, relay_url in enumerate(site.relay_urls, 1):
        label = "Inbox:" if len(site.relay_urls) == 1 else f"Inbox {k}:"
        say(f"  {label:<15} {relay_url}/messages   (user: operator, password: {password})")
        say(f"  Relay metrics:  {relay_url}/metrics")
    for note in notes:
        say(f"  {note}")
    for node_id, (url, address, agents) in node_urls.items():
        sockets = address.removeprefix("unix:")
        say(f"  Node {node_id}: {url}/metrics  agents: {', '.join(agents)}")
        say(f"    status:       {_script('commander-node')} status --socket-dir {sockets}")
    say(f"\n  Logs and data:  {site.root}/\n")


def _script(name: str) -> str:
    """How to run one of this venv's commands from the checkout (the venv is not on PATH)."""
    path = Path(sys.executable).parent / name
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)
