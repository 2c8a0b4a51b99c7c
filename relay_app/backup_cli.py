"""`commander-relay backup` and `commander-relay restore`.

    commander-relay backup DEST [--config C | --data-dir D]
    commander-relay restore SRC [--config C | --data-dir D]

`backup` copies a SQLite relay's database, segments and files into DEST while the relay
runs (relay_app.backup); `restore` puts such a backup in place of a stopped relay's
database (relay_app.backup_restore). Exit 0 done, 1 verification failed (nothing
replaced), 2 not applicable (PostgreSQL, no database, a relay running on the data dir).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

from relay_app.backup import BackupError, BackupRefused, take_backup
from relay_app.backup_restore import restore
from relay_app.store_backup import BackupEngine
from runtime.core import daemon
from runtime.core.config import RelaySettings

POSTGRES_ADVICE = (
    "the relay stores in PostgreSQL: back it up with pg_dump or pg_basebackup"
    " (see docs/SCALE-OUT.md); backup and restore copy a SQLite relay"
)


def add_backup_commands(sub: Any, load: Any, engine: BackupEngine) -> None:
    """Add `backup` and `restore`; `load(config, data_dir=...)` reads the relay's config,
    `engine` reaches the SQLite store's database file."""
    cmd = sub.add_parser("backup", help="copy the relay's data while it runs, then verify it")
    cmd.add_argument("dest", help="backup directory (laid out like a data directory)")
    _where_args(cmd)
    cmd.set_defaults(run=lambda args: _run(args, load, partial(_backup, engine)))
    res = sub.add_parser("restore", help="put a backup in place of a stopped relay's database")
    res.add_argument("src", help="a directory made by `commander-relay backup`")
    _where_args(res)
    res.set_defaults(run=lambda args: _run(args, load, partial(_restore, engine)))


def _where_args(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--config", help="relay.yaml (or its directory)")
    cmd.add_argument("--data-dir", help="the relay's data directory")


def _run(args: argparse.Namespace, load: Any, step: Any) -> int:
    settings: RelaySettings = load(args.config, data_dir=args.data_dir).relay
    if settings.store != "sqlite":
        print(f"commander-relay: {POSTGRES_ADVICE}", file=sys.stderr)
        return daemon.EXIT_CONFIG
    try:
        line = step(Path(settings.data_dir), args)
    except BackupRefused as exc:
        print(f"commander-relay: {exc}", file=sys.stderr)
        return daemon.EXIT_CONFIG
    except (BackupError, OSError) as exc:  # BackupDamaged and I/O errors: exit 1
        print(f"commander-relay: {exc}", file=sys.stderr)
        return daemon.EXIT_FAILED
    print(line, flush=True)
    return daemon.EXIT_OK


def _backup(engine: BackupEngine, data_dir: Path, args: argparse.Namespace) -> str:
    report = take_backup(engine, data_dir, Path(args.dest))
    return f"commander-relay backup: {report.summary()} -> {args.dest}"


def _restore(engine: BackupEngine, data_dir: Path, args: argparse.Namespace) -> str:
    report = restore(engine, data_dir, Path(args.src))
    return f"commander-relay restore: {report.summary()}"
