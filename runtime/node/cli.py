"""`commander-node agent-token | status | retry-failed`: the node's small admin commands.

    commander-node agent-token AGENT_ID --token-file F [--owner USER]
                               [--config DIR | --hashes-file H] [--force]
    commander-node status [--socket-dir D]
    commander-node retry-failed [--socket-dir D]

`agent-token` makes an agent's token for loopback TCP (written mode 0600, to be read
by the agent's user) and records its sha256 where the node reads it (re-read when it
changes: no restart). `status` and `retry-failed` talk to node.sock, so they need the
node's own user (or root).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import sys
from collections.abc import Sequence
from pathlib import Path

from runtime.core import daemon
from runtime.core.errors import CommanderError
from runtime.core.ids import ID_RULE, is_id
from runtime.core.token_files import (
    agent_hashes_path,
    new_token,
    read_sha256_table,
    token_sha256,
    write_private,
    write_sha256_table,
)
from runtime.node.client import NodeAdmin

COMMANDS = ("agent-token", "status", "retry-failed")
DEFAULT_SOCKET_DIR = "/run/commander-node"


def main(argv: Sequence[str]) -> int:
    """Run one admin command; return the exit status."""
    args = _parser().parse_args(argv)
    return daemon.run_command("commander-node", args, (CommanderError, OSError))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="commander-node", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(required=True)
    token = sub.add_parser("agent-token", help="make an agent's token for loopback TCP")
    token.add_argument("agent_id")
    token.add_argument("--token-file", required=True, help="where to write it (mode 0600)")
    token.add_argument("--config", default="config", help="config directory (default ./config)")
    token.add_argument("--hashes-file", help="default <config>/secrets/agent-token-hashes.yaml")
    token.add_argument("--force", action="store_true", help="replace an existing token file")
    token.add_argument("--owner", help="Unix user the token file is given to (the agent's)")
    token.set_defaults(run=_agent_token)
    for name, run in (("status", _status), ("retry-failed", _retry_failed)):
        command = sub.add_parser(name, help=f"{name} through node.sock")
        command.add_argument("--socket-dir", default=DEFAULT_SOCKET_DIR, help="the node's")
        command.set_defaults(run=run)
    return parser


def _agent_token(args: argparse.Namespace) -> int:
    if not is_id(args.agent_id):
        print(f"commander-node: AGENT_ID: {ID_RULE}", file=sys.stderr)
        return 2
    if args.owner and not _user_exists(args.owner):
        print(f"commander-node: --owner {args.owner}: no such user", file=sys.stderr)
        return 2
    token_file = Path(args.token_file)
    if token_file.exists() and not args.force:
        print(f"commander-node: {token_file} exists; --force replaces it", file=sys.stderr)
        return 1
    hashes_file = Path(args.hashes_file) if args.hashes_file else agent_hashes_path(args.config)
    hashes = read_sha256_table(hashes_file, "agent_id") if hashes_file.exists() else {}
    owner = pwd.getpwnam(args.owner) if args.owner else None
    token = new_token()
    write_private(token_file, token)
    if owner is not None:  # run as root: the agent's user reads it, nobody else
        os.chown(token_file, owner.pw_uid, owner.pw_gid)
    hashes[args.agent_id] = token_sha256(token)
    write_sha256_table(hashes_file, hashes)
    print(f"agent {args.agent_id}: token written to {token_file}, its sha256 to {hashes_file}")
    return 0


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _status(args: argparse.Namespace) -> int:
    print(json.dumps(NodeAdmin(args.socket_dir).status(), indent=2))
    return 0


def _retry_failed(args: argparse.Namespace) -> int:
    print(json.dumps(NodeAdmin(args.socket_dir).retry_failed(), indent=2))
    return 0
