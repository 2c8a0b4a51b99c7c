"""`commander-relay metrics-token --token-file F`: the token Prometheus sends for /metrics.

Writes a new token to F (mode 0600: hand the file to the user Prometheus runs as) and
prints the line for relay.yaml's `relay:` section. An existing F is kept, and the line
for the token it holds is printed again; `--force` replaces it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runtime.core.token_files import new_token, token_sha256, write_private


def add_command(sub: Any) -> None:
    """Register `metrics-token` on the subcommand parsers `sub`."""
    cmd = sub.add_parser("metrics-token", help="make the bearer token for /metrics")
    cmd.add_argument("--token-file", required=True, help="where the token is (or goes)")
    cmd.add_argument("--force", action="store_true", help="replace an existing token file")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write or read the token file; print the relay.yaml line."""
    path = Path(args.token_file)
    if path.exists() and not args.force:
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            print(f"commander-relay: {path} is empty; --force makes a token", file=sys.stderr)
            return 1
        print(f"{path} exists: its token kept (--force makes a new one)", file=sys.stderr)
    else:
        token = new_token()
        write_private(path, token)
        print(f"token written to {path} (mode 0600)", file=sys.stderr)
    print("put this line under `relay:` in relay.yaml, then restart the relay:", file=sys.stderr)
    print(f'  metrics_token_sha256: "{token_sha256(token)}"')
    return 0
