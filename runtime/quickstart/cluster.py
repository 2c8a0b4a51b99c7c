"""`make run-cluster`: PostgreSQL, two relays on it and two nodes that know both, on 127.0.0.1.

Everything lives under ./data/cluster: PostgreSQL's cluster in pg/ (made by initdb on the
first run, reused after), the directory both relays keep files in, relay/ (one directory
for both, as a real cluster puts it on shared storage), each node's caches, the logs and
the secrets (node tokens, the operator password, PostgreSQL's password). PostgreSQL
listens on a free port of 127.0.0.1 and takes passwords there (scram): the relays read
theirs from a pgpass file, never from their command line, which `ps` shows to everyone.
Ctrl-C or SIGTERM stops the nodes, then the relays, then PostgreSQL; `rm -rf data/cluster`
starts afresh.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from runtime.core.config import load_config
from runtime.quickstart.children import Children, Output
from runtime.quickstart.postgres import SUPERUSER, LocalPostgres, PostgresMissing, pg_bin
from runtime.quickstart.run import (
    Site,
    Stopped,
    banner,
    ensure_free,
    env_ints,
    node_headers,
    parser,
    prepare,
    serve_demo,
    start_nodes,
    supervise,
    wait_http,
)

ROOT = Path("data/cluster")
DATABASE = "commander"
# One port per relay, the first preferred by the first node; the nodes' ports are
# COMMANDER_NODE_PORTS, as for `make run` (8002,8003).
RELAY_PORTS = env_ints("COMMANDER_RELAY_PORTS", "8001,8004", low=1, high=65535)


def main(argv: Sequence[str] | None = None) -> int:
    """Run PostgreSQL, the relays and the nodes until Ctrl-C, SIGTERM or a closed output."""
    args = parser("make run-cluster").parse_args(argv)
    return supervise(ROOT, lambda *context: _run(args, *context))


def _run(
    args: argparse.Namespace,
    children: Children,
    output: Output,
    stop: threading.Event,
    sockets: Path,
) -> None:
    """Start PostgreSQL, the relays, the nodes and the demo agents; stop them in reverse."""
    config_dir, tokens, password = prepare(Path(args.config), ROOT, RELAY_PORTS[0])
    # Ports first: a PostgreSQL found running is then one a killed run left, not another's.
    for port in RELAY_PORTS:
        ensure_free(port, "COMMANDER_RELAY_PORTS")
    try:
        pg_bin()
    except PostgresMissing as exc:
        raise SystemExit(f"{exc} (`make run-cluster` installs it when run as root)") from None
    # A socket directory of its own: `sockets` is private to us, not to PostgreSQL's user.
    server = LocalPostgres(ROOT / "pg", Path(tempfile.mkdtemp(prefix="commander-pg-")))
    try:
        dsn = start_postgres(server, output)
        if stop.is_set():
            raise Stopped
        site = Site(ROOT, start_relays(config_dir, dsn, children, stop), sockets)
        node_urls = start_nodes(config_dir, tokens, load_config(config_dir), children, site, stop)
        notes = [f"PostgreSQL:     {dsn}   (password in {ROOT / 'secrets' / 'pgpass'})"]
        banner(output, site, node_urls, password, notes)
        serve_demo(args.interval, site, node_urls, (children, output, stop), node_headers(tokens))
    finally:
        children.stop_all()  # the nodes and the relays before their database
        if server.shutdown():
            output.say("  stopped postgresql")
        shutil.rmtree(server.sockets, ignore_errors=True)


def start_postgres(server: LocalPostgres, output: Output) -> str:
    """Make the cluster on the first run, start it, create the database; the relays' URL.

    The password goes to a pgpass file named by PGPASSFILE, which the relays inherit.
    """
    pgpass = ROOT / "secrets" / "pgpass"
    try:
        if server.running():
            output.say("  stopping the PostgreSQL an earlier run left running")
            server.shutdown()
        if not server.initialized:
            output.say(f"  initdb {server.data} (first run)")
            _initdb(server, _password(pgpass))
        elif not pgpass.exists():
            raise SystemExit(f"{pgpass} is gone, and with it {server.data}'s password:"
                             f" remove {server.root} to start afresh")  # fmt: skip
        server.launch(_free_port())
        created = server.run("createdb", "-h", str(server.sockets), "-p", str(server.port),
                             "-U", SUPERUSER, DATABASE, check=False)  # fmt: skip
    except (RuntimeError, OSError) as exc:
        raise SystemExit(f"PostgreSQL did not start: {exc}") from None
    if created.returncode != 0 and "already exists" not in created.stderr:
        raise SystemExit(f"createdb {DATABASE} failed: {created.stderr.strip()}")
    os.environ["PGPASSFILE"] = str(pgpass.resolve())
    return server.database_dsn(DATABASE)


def _password(pgpass: Path) -> str:
    """A new password for the superuser, written to `pgpass` (mode 0600, as libpq wants)."""
    password = secrets.token_urlsafe(24)  # no ':' or '\\', which pgpass would need escaped
    pgpass.touch(mode=0o600)
    pgpass.write_text(f"127.0.0.1:*:*:{SUPERUSER}:{password}\n")
    return password


def _initdb(server: LocalPostgres, password: str) -> None:
    """initdb with passwords over TCP and trust on the private socket directory only."""
    server.root.mkdir(parents=True, exist_ok=True)
    server.give(server.root)
    # initdb reads the password from a file its user can read: one inside its own directory.
    pwfile = server.root / "initdb-password"
    pwfile.write_text(password)
    server.give(pwfile)
    try:
        server.initdb("--auth-host=scram-sha-256", "--auth-local=trust", f"--pwfile={pwfile}")
    finally:
        pwfile.unlink(missing_ok=True)


def start_relays(
    config_dir: Path, dsn: str, children: Children, stop: threading.Event
) -> tuple[str, ...]:
    """Start one relay per port on the one database and files directory; their URLs."""
    started = []
    for k, port in enumerate(RELAY_PORTS, 1):
        proc = children.start(
            ["-m", "relay_app.cli", "serve", "--config", str(config_dir / "relay.yaml"),
             "--store", dsn, "--port", str(port), "--data-dir", str((ROOT / "relay").resolve())],
            f"relay{k}",
        )  # fmt: skip
        started.append((f"relay{k}", proc, f"http://127.0.0.1:{port}"))
    for name, proc, url in started:
        wait_http(url + "/healthz", proc, name, stop, logs=ROOT)
    return tuple(url for _, _, url in started)


def _free_port() -> int:
    """A port free on 127.0.0.1 right now, for PostgreSQL (nobody needs to know it before)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
