"""`commander-relay`: serve the relay, add a node's token, hash the operator password.

    commander-relay [serve] [--config relay.yaml] [--host H] [--port P] [--data-dir D]
                    [--token-hashes-file F]
    commander-relay add-node NODE_ID --token-file T [--token-hashes-file F | --config C]
    commander-relay hash-password < password
    commander-relay metrics-token --token-file F [--force]
    commander-relay tls init --dir DIR | tls issue NAME --dir DIR --host H [--host H...]
    commander-relay migrate --from DB_OR_DATA_DIR --to postgresql://... [--chunk-rows N]
    commander-relay archive [--config C] [--after-days N] [--verify]
    commander-relay export [--config C] [--since T] [--until T] [--format ndjson|parquet]
    commander-relay backup DEST [--config C] | restore SRC [--config C]

Without --config the relay runs on its embedded defaults (127.0.0.1:8001, data in
./data/relay), which works from a checkout; with it, relay.yaml decides and flags
override it.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

from relay_app import metrics_token
from relay_app.archive.cli import add_archive_commands
from relay_app.auth import hashes_file_path, read_hashes_file
from relay_app.backup_cli import add_backup_commands
from relay_app.errors import StoreUnavailable
from relay_app.metrics_auth import warn_if_metrics_open
from relay_app.owners import warn_about_agents
from relay_app.passwords import hash_password
from relay_app.server import RelayServer
from relay_app.stores.sqlite_backup import SqliteBackup
from relay_app.tls_cli import add_tls_commands, warn_about_tls
from runtime.core import daemon
from runtime.core.config import ClusterConfig, RelaySettings, load_config
from runtime.core.config_checks import is_store
from runtime.core.errors import ConfigError, ConfigProblem
from runtime.core.ids import ID_RULE, is_id
from runtime.core.token_files import (
    new_token,
    token_sha256,
    write_for_service,
    write_private,
    write_sha256_table,
)

logger = logging.getLogger("commander-relay")

DEFAULT_DATA_DIR = "./data/relay"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
COMMANDS = (
    "serve",
    "add-node",
    "hash-password",
    "metrics-token",
    "tls",
    "migrate",
    "archive",
    "export",
    "backup",
    "restore",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in (*COMMANDS, "-h", "--help"):
        args.insert(0, "serve")
    return daemon.run_command("commander-relay", _parser().parse_args(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="commander-relay", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(required=True)
    serve = sub.add_parser("serve", help="run the relay in the foreground (the default)")
    serve.add_argument("--config", help="relay.yaml (or its directory)")
    serve.add_argument("--host", help="address to listen on")
    serve.add_argument("--port", type=int, help="port to listen on (0: any free port)")
    serve.add_argument("--data-dir", help=f"data directory (embedded default {DEFAULT_DATA_DIR})")
    serve.add_argument(
        "--store", type=_store_flag, help="sqlite (default) or a postgresql:// URL (relay.store)"
    )
    serve.add_argument("--token-hashes-file", help="YAML file of node_id: sha256(token)")
    serve.add_argument(
        "--allow-any-agent",
        action="store_true",
        help="let any node write for any agent id (tests and benchmarks only)",
    )
    serve.set_defaults(run=_serve)
    add = sub.add_parser("add-node", help="make a token for a node and record its hash")
    add.add_argument("node_id")
    add.add_argument("--token-file", required=True, help="where to write the token (mode 0600)")
    add.add_argument("--token-hashes-file", help="hashes file (default: relay.yaml's)")
    add.add_argument("--config", help="relay.yaml naming the hashes file")
    add.add_argument("--force", action="store_true", help="replace an existing token file")
    add.set_defaults(run=_add_node)
    hash_pw = sub.add_parser("hash-password", help="read a password, print its scrypt hash")
    hash_pw.add_argument("--out", help="write the hash to this file (for operator_password_file)")
    hash_pw.set_defaults(run=_hash_password)
    metrics_token.add_command(sub)
    add_tls_commands(sub)
    _add_migrate(sub)
    add_archive_commands(sub, load_relay_config)
    add_backup_commands(sub, load_relay_config, SqliteBackup())
    return parser


def _add_migrate(sub: Any) -> None:
    cmd = sub.add_parser("migrate", help="copy a SQLite corpus into PostgreSQL, then verify")
    cmd.add_argument("--from", dest="source", required=True, help="relay database or data dir")
    cmd.add_argument("--to", dest="target", required=True, help="postgresql:// URL")
    cmd.add_argument("--chunk-rows", type=int, default=2000, help="rows per transaction")
    cmd.add_argument(
        "--pause-s", type=float, default=0.0, help="wait between chunks (spare a busy server)"
    )
    cmd.set_defaults(run=_migrate)


def load_relay_config(
    config: str | None,
    *,
    data_dir: str | None = None,
    store: str | None = None,
    token_hashes_file: str | None = None,
    allow_any_agent: bool = False,
) -> ClusterConfig:
    """The config from relay.yaml (or the embedded defaults), with flag overrides applied."""
    if config is None:
        settings = RelaySettings(data_dir=DEFAULT_DATA_DIR, host=DEFAULT_HOST, port=DEFAULT_PORT)
        # No config directory: no agents directory to follow either.
        loaded = ClusterConfig(nodes=(), relay=settings, agents=(), config_dir="")
    else:
        path = Path(config)
        if not path.is_dir() and path.name != "relay.yaml":
            expected = "a file named relay.yaml, or its directory"
            raise ConfigError([ConfigProblem(config, "(file)", expected)])
        loaded = load_config(path if path.is_dir() else path.parent)
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if store is not None:
        overrides["store"] = store
    if token_hashes_file is not None:
        # A path given on the command line is relative to where the command runs.
        overrides["token_hashes_file"] = str(Path(token_hashes_file).absolute())
    if allow_any_agent:
        overrides["allow_any_agent"] = True
    return replace(loaded, relay=replace(loaded.relay, **overrides))


def _store_flag(value: str) -> str:
    """--store: what relay.store accepts."""
    if not is_store(value):
        raise argparse.ArgumentTypeError("expected sqlite or a postgresql:// URL")
    return value


def listen_address(config: ClusterConfig, host: str | None, port: int | None) -> tuple[str, int]:
    """Flags first, then relay.host/port, then the storage node's entry, then the defaults."""
    storage = config.storage_node()
    chosen_host = host or config.relay.host or (storage.host if storage else None) or DEFAULT_HOST
    if port is None:
        port = config.relay.port or (storage.port if storage else None) or DEFAULT_PORT
    return chosen_host, port


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    config = load_relay_config(
        args.config,
        data_dir=args.data_dir,
        store=args.store,
        token_hashes_file=args.token_hashes_file,
        allow_any_agent=args.allow_any_agent,
    )
    host, port = listen_address(config, args.host, args.port)
    _warn_if_no_tokens(config)
    warn_about_agents(config)
    warn_if_metrics_open(config.relay, host)
    warn_about_tls(config, host)
    stop = daemon.stop_on_signals()
    relay = RelayServer(config, host=host, port=port)
    try:
        relay.start()
    except (OSError, StoreUnavailable) as exc:
        # A database not reachable yet is worth a retry (systemd restarts on this exit).
        print(f"commander-relay: cannot start on {host}:{port}: {exc}", file=sys.stderr)
        return daemon.EXIT_FAILED
    print(f"commander-relay listening on {relay.url}", flush=True)
    service = daemon.Service(
        healthy=relay.healthy,
        failure=lambda: None if relay.healthy() else "the HTTP server or the IngestActor stopped",
        shutdown=(("relay", relay.stop),),
    )
    code = daemon.run(stop, service)
    if code == daemon.EXIT_OK:
        logger.info("stopped cleanly")
    return code


def _warn_if_no_tokens(config: ClusterConfig) -> None:
    """Say so at start-up when no node can authenticate yet (a missing hashes file)."""
    hashes = hashes_file_path(config)
    has_file = hashes is not None and hashes.exists()
    if not has_file and not any(node.token_sha256 for node in config.nodes):
        logger.warning(
            "no node has a token (token hashes file %s missing): every node request gets 401"
            " until `commander-relay add-node` records one",
            hashes,
        )


def _add_node(args: argparse.Namespace) -> int:
    if not is_id(args.node_id):
        print(f"commander-relay: NODE_ID: {ID_RULE}", file=sys.stderr)
        return 2
    hashes_file = _hashes_file(args)
    if hashes_file is None:
        print("commander-relay: give --token-hashes-file or a --config naming one", file=sys.stderr)
        return 2
    token_file = Path(args.token_file)
    if token_file.exists() and not args.force:
        print(f"commander-relay: {token_file} exists; --force replaces it", file=sys.stderr)
        return 1
    token = new_token()
    write_private(token_file, token)
    hashes = read_hashes_file(hashes_file) if hashes_file.exists() else {}
    hashes[args.node_id] = token_sha256(token)
    write_sha256_table(hashes_file, hashes)
    print(f"node {args.node_id}: token written to {token_file}, its sha256 to {hashes_file}")
    return 0


def _hashes_file(args: argparse.Namespace) -> Path | None:
    if args.token_hashes_file:
        return Path(args.token_hashes_file)
    if args.config:
        return hashes_file_path(load_relay_config(args.config))
    return None


def _hash_password(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Operator password: ")
        if getpass.getpass("Again: ") != password:
            print("commander-relay: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("commander-relay: empty password", file=sys.stderr)
        return 2
    if args.out is None:
        print(hash_password(password))
        return 0
    write_for_service(Path(args.out), hash_password(password) + "\n")
    print(f"operator password hash written to {args.out}; relay.operator_password_file names it")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    # Here, not at the top: a relay on SQLite never loads psycopg (memory, start-up time).
    from relay_app.stores import migrate  # noqa: PLC0415

    if args.chunk_rows < 1 or args.pause_s < 0:
        print("commander-relay: --chunk-rows must be >= 1, --pause-s >= 0", file=sys.stderr)
        return daemon.EXIT_CONFIG
    try:
        with (
            closing(migrate.open_source(args.source)) as source,
            migrate.open_target(args.target) as target,
        ):
            report = migrate.migrate_corpus(
                source, target, chunk_rows=args.chunk_rows, pause_s=args.pause_s
            )
    except migrate.MigrateError as exc:
        print(f"commander-relay: {exc}", file=sys.stderr)
        return daemon.EXIT_CONFIG
    except migrate.MigrateInterrupted as exc:
        print(f"commander-relay: {exc}", file=sys.stderr)
        return daemon.EXIT_FAILED
    print(f"commander-relay migrate: {report.summary()}", flush=True)
    return daemon.EXIT_FAILED if report.differences else daemon.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
