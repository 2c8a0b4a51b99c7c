"""`commander-node`: the node daemon (actors + agent API on Unix sockets and loopback + notify).

Also `commander-node agent-token|status|retry-failed ...` (runtime.node.cli).

Start-up order: config, node actors, HTTP endpoint, then the kernel's run loop
(runtime.core.daemon: READY=1, watchdog). Shutdown (SIGTERM, SIGINT or the node's
supervisor giving up) runs it backwards: STOPPING=1, stop taking writes, one last
upload attempt, actors stopped in reverse order, databases closed. Exit 0 on a
requested stop, 1 when the supervisor gave up or the port is taken, 2 on bad config,
a socket path the node cannot use or an agent's `unix_user` unknown here.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from actors.messages import OutboxStats, RelayUp
from runtime.core import daemon
from runtime.core.config import ClusterConfig, load_config
from runtime.core.errors import ActorUnavailable, ConfigError
from runtime.core.token_files import agent_hashes_path
from runtime.core.wsgi import FrontLimits
from runtime.node import cli as node_cli
from runtime.node.doors import AgentTokens
from runtime.node.http import MAX_BODY, create_node_app
from runtime.node.node import Node, NodeOptions
from runtime.node.serve import DoorError, DoorPlan, OpenDoors, open_doors, plan_doors

logger = logging.getLogger("commander.node")

DEFAULT_LISTEN = "127.0.0.1:8002"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="commander-node", description="Run a Commander node.")
    parser.add_argument("--config", default="config", help="config directory (relay.yaml, agents/)")
    parser.add_argument("--node-id", required=True, help="this node's id in the config")
    parser.add_argument("--data-dir", help="node data directory (default ./data/node/<node-id>)")
    parser.add_argument(
        "--relay-url",
        help="relay base URL, or several of one cluster store comma-separated, the preferred"
        " first (default: the storage node in relay.yaml)",
    )
    parser.add_argument(
        "--relay-ca-file",
        help="CA (PEM) an https relay must verify against (default relay.ca_file)",
    )
    parser.add_argument(
        "--token-file", help="this node's secret (default <config>/secrets/<node-id>.token)"
    )
    parser.add_argument(
        "--listen", default=DEFAULT_LISTEN, help="loopback HOST:PORT (port 0 = any), or off"
    )
    parser.add_argument(
        "--socket-dir", help="agent sockets and node.sock (default <data-dir>/sockets)"
    )
    parser.add_argument(
        "--agent-token-hashes",
        help="agent_id: sha256 of its token (default <config>/secrets/agent-token-hashes.yaml)",
    )
    parser.add_argument(
        "--allow-remote-agents",
        action="store_true",
        help="allow a non-loopback --listen (agents then need their token)",
    )
    parser.add_argument("--synchronous", default="FULL", choices=("FULL", "NORMAL", "EXTRA"))
    parser.add_argument("--probe-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--refill-interval",
        type=float,
        default=600.0,
        help="seconds between comparisons of what this node holds with the relay (refill)",
    )
    parser.add_argument("--refill-check-interval", type=float, default=15.0, help=argparse.SUPPRESS)
    parser.add_argument("--shutdown-upload-seconds", type=float, default=5.0)
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def read_token(args: argparse.Namespace) -> str | None:
    """Read the node's secret token, if a file for it exists."""
    path = Path(args.token_file or Path(args.config) / "secrets" / f"{args.node_id}.token")
    if not path.exists() and not args.token_file:
        return None  # no secret: the node runs local-only and says so
    return path.read_text(encoding="utf-8").strip()


def build_node(args: argparse.Namespace, config: ClusterConfig, token: str | None) -> Node:
    """Assemble the node from the parsed arguments."""
    options = NodeOptions(
        data_dir=args.data_dir or f"./data/node/{args.node_id}",
        relay_url=args.relay_url,
        token=token,
        relay_ca_file=args.relay_ca_file,
        synchronous=args.synchronous,
        probe_interval=args.probe_interval,
        refill_interval=args.refill_interval,
        refill_check_interval=args.refill_check_interval,
    )
    return Node(config, args.node_id, options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run an admin command, or the daemon until SIGTERM/SIGINT; return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in node_cli.COMMANDS:
        return node_cli.main(argv)
    return serve(argv)


def serve(argv: Sequence[str]) -> int:
    """Run the daemon until SIGTERM/SIGINT; return the exit code."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(args.config)
        token = read_token(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return daemon.EXIT_CONFIG
    except OSError as exc:
        print(f"cannot read token file {args.token_file}: {exc.strerror}", file=sys.stderr)
        return daemon.EXIT_CONFIG
    if args.node_id not in {n.id for n in config.nodes} and not config.agents_on(args.node_id):
        print(
            f"node {args.node_id!r} is neither in relay.yaml nor named by any agent",
            file=sys.stderr,
        )
        return daemon.EXIT_CONFIG
    try:
        plan = door_plan(args, config)
    except (DoorError, ConfigError) as exc:
        print(f"commander-node: {exc}", file=sys.stderr)
        return daemon.EXIT_CONFIG
    try:
        node = build_node(args, config, token)
    except ConfigError as exc:  # the relay URL, or the CA file it is verified against
        print(exc, file=sys.stderr)
        return daemon.EXIT_CONFIG
    return run(node, args, plan)


def door_plan(args: argparse.Namespace, config: ClusterConfig) -> DoorPlan:
    """Where the node will listen, checked before anything starts (see runtime.node.serve)."""
    data_dir = Path(args.data_dir or f"./data/node/{args.node_id}")
    socket_dir = Path(args.socket_dir) if args.socket_dir else data_dir / "sockets"
    tokens = AgentTokens(Path(args.agent_token_hashes or agent_hashes_path(args.config)))
    agents = config.agents_on(args.node_id)
    return plan_doors(
        socket_dir.absolute(),
        [a.agent_id for a in agents],
        args.listen,
        tokens,
        allow_remote=args.allow_remote_agents,
        unix_users={a.agent_id: a.unix_user for a in agents if a.unix_user},
    )


def run(node: Node, args: argparse.Namespace, plan: DoorPlan) -> int:
    """Start everything, wait for a stop request, stop everything in reverse order."""
    stop = daemon.stop_on_signals()
    from runtime.node.metrics import NodeMetrics  # noqa: PLC0415 - prometheus_client only for the daemon

    node.start()
    metrics = NodeMetrics(node)
    limits = FrontLimits(body_bytes=MAX_BODY)
    try:
        doors = open_doors(create_node_app(node, metrics.render), plan, limits)
    except (OSError, ValueError) as exc:
        print(f"commander-node: cannot listen: {exc}", file=sys.stderr)
        node.stop()
        # A socket file in the way (not a socket, or another node's) is the operator's to
        # fix (no restart); a port still taken may free itself (systemd retries).
        return daemon.EXIT_CONFIG if isinstance(exc, ValueError) else daemon.EXIT_FAILED
    _say_where(node.node_id, doors, plan)
    service = daemon.Service(
        healthy=node.healthy,
        failure=lambda: _gave_up(node),
        shutdown=(
            ("doors", doors.stop),  # stop taking writes first
            ("last upload", lambda: last_upload(node, args.shutdown_upload_seconds)),
            ("node", node.stop),
        ),
    )
    return daemon.run(stop, service)


def _gave_up(node: Node) -> str | None:
    """Why the node must exit: its own supervisor gave up (an agent down is no reason)."""
    if node.supervisor.gave_up:
        return f"node {node.node_id}: its supervisor gave up (restart intensity exceeded)"
    return None


def _say_where(node_id: str, doors: OpenDoors, plan: DoorPlan) -> None:
    """One line per way in; tests and benchmarks read the first `listening on` URL."""
    if doors.tcp is not None:
        print(f"commander-node {node_id} listening on {doors.tcp.url}", flush=True)
    print(
        f"commander-node {node_id} agent sockets in unix:{plan.socket_dir}"
        f" (node-wide routes on {plan.admin_socket})",
        flush=True,
    )


def last_upload(node: Node, seconds: float) -> None:
    """Ask every outbox of an agent that is up to drain now; wait up to `seconds` for it."""
    deadline = time.monotonic() + seconds
    live = [a for a in node.actors.values() if a.supervisor.down is None]
    for actors in live:
        try:
            actors.outbox.tell(RelayUp())
        except ActorUnavailable as exc:
            logger.warning("last upload of %s skipped: %s", actors.config.agent_id, exc)
    pending = 0
    while time.monotonic() < deadline:
        # Published by each outbox after every change: no ask waits behind an upload.
        pending = sum(_pending(a.board.outbox()) for a in live)
        if pending == 0:
            return
        time.sleep(0.1)
    logger.warning("stopping with %d messages still in the outbox (kept on disk)", pending)


def _pending(stats: OutboxStats | None) -> int:
    return 0 if stats is None else stats.pending_messages


if __name__ == "__main__":
    sys.exit(main())
