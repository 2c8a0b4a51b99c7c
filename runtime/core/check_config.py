"""`commander-check-config`: check a config directory, and what one machine of it needs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from runtime.core.config import collect_problems
from runtime.core.config_files import node_host_problems, relay_host_problems, unreadable_files
from runtime.core.tls import tls_problems


def main(argv: Sequence[str] | None = None) -> int:
    """Validate a config directory and print every problem at once; exit 1 if any."""
    parser = argparse.ArgumentParser(
        prog="commander-check-config", description="Check a Commander config directory."
    )
    parser.add_argument("config_dir", nargs="?", default="config", help="directory with relay.yaml")
    parser.add_argument(
        "--relay", action="store_true", help="this machine runs the relay: its files must exist"
    )
    parser.add_argument("--node", metavar="NODE_ID", help="this machine runs that node")
    args = parser.parse_args(argv)
    config, problems = collect_problems(args.config_dir)
    unreadable, absent = unreadable_files(config)
    problems += unreadable
    if args.relay:
        problems += relay_host_problems(config)
    if args.node:
        problems += node_host_problems(config, args.node)
    if not problems:  # readable: does the key match the certificate, is the CA file one?
        problems += tls_problems(config)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        count = len(problems)
        print(f"{count} problem{'s' if count != 1 else ''} in {args.config_dir}", file=sys.stderr)
        return 1
    print(f"{args.config_dir}: OK")
    for node in config.nodes:
        print(f"  node {node.id} ({node.role}) {node.host}:{node.port}")
    for agent in config.agents:
        print(
            f"  agent {agent.agent_id} role={agent.role} node={agent.node_id}"
            f" cache_max_bytes={agent.cache_max_bytes}"
        )
    for line in absent:
        print(f"  not on this machine: {line}")
    return 0
