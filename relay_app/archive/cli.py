"""`commander-relay archive` and `commander-relay export`.

    commander-relay archive [--config C | --data-dir D] [--after-days N] [--verify]
    commander-relay export [--config C | --data-dir D] [--since T] [--until T]
                           [--format ndjson|parquet] [--out FILE]

`archive` moves due messages into segments (a systemd timer runs it) and, with
--verify, reads every segment back. `export` streams the hot and archived messages of a
report-time window (T: epoch seconds or an ISO 8601 date/time, UTC unless it says).
Both run beside a live relay: SQLite lets one writer in at a time, and the archive's
lock keeps a move from running under an export.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from contextlib import closing, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from relay_app.archive.export import archived_rows, hot_rows, write_ndjson, write_parquet
from relay_app.archive.mover import Archiver, ArchiverBusy, archive_dir, commit_with
from relay_app.archive.reader import ArchiveReader
from relay_app.store import MessageStore
from relay_app.stores import open_store
from relay_app.stores.sqlite import DB_RELATIVE_PATH
from runtime.core import daemon
from runtime.core.config import RelaySettings

MAX_DAYS = 36500  # as runtime.core.config_checks allows relay.archive_after_days


def add_archive_commands(sub: Any, load: Any) -> None:
    """Add `archive` and `export`; `load(config, data_dir=...)` reads the relay's config."""
    cmd = sub.add_parser("archive", help="move archived and aged messages into segments")
    _where_args(cmd)
    cmd.add_argument("--after-days", type=_days, help="age limit (relay.archive_after_days)")
    cmd.add_argument("--verify", action="store_true", help="read every segment back after")
    cmd.set_defaults(run=lambda args: _archive(args, load))
    exp = sub.add_parser("export", help="stream hot and archived messages for analysis")
    _where_args(exp)
    exp.add_argument("--since", type=_when, help="report time from (epoch or ISO 8601)")
    exp.add_argument("--until", type=_when, help="report time before (epoch or ISO 8601)")
    exp.add_argument("--format", choices=("ndjson", "parquet"), default="ndjson")
    exp.add_argument("--out", help="file to write (default: standard output)")
    exp.set_defaults(run=lambda args: _export(args, load))


def _where_args(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--config", help="relay.yaml (or its directory)")
    cmd.add_argument("--data-dir", help="the relay's data directory")


def _days(text: str) -> float:
    """--after-days under relay.archive_after_days's rule: 0 (off) to 36500."""
    try:
        days = float(text)
    except ValueError:
        days = math.nan
    if not 0 <= days <= MAX_DAYS:  # nan too
        raise argparse.ArgumentTypeError(f"{text!r}: expected days from 0 (off) to {MAX_DAYS}")
    return days


def _when(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        # nan would bound the hot rows (SQL compares it as NULL: none) and not the archived
        # ones (every comparison false: all), so an export would hold half a window.
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r}: expected a finite time")
        return value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected epoch seconds or ISO 8601") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _open(settings: RelaySettings) -> MessageStore | None:
    database = Path(settings.data_dir) / DB_RELATIVE_PATH
    if settings.store == "sqlite" and not database.is_file():
        # Opening would create an empty relay there: a mistyped --data-dir would archive or
        # export nothing, say so with exit 0, and leave a stray database behind.
        print(f"commander-relay: no relay database at {database}", file=sys.stderr)
        return None
    store = open_store(settings)
    if store.archive is None:
        store.close()
        print("commander-relay: archiving is built for the SQLite store only", file=sys.stderr)
        return None
    return store


def _archive(args: argparse.Namespace, load: Any) -> int:
    settings = load(args.config, data_dir=args.data_dir).relay
    after = settings.archive_after_days if args.after_days is None else args.after_days
    store = _open(settings)
    if store is None:
        return daemon.EXIT_CONFIG
    writer = store.open_writer()
    try:
        archiver = Archiver(store, commit_with(writer), archive_dir(settings.data_dir),
                            after_days=after)  # fmt: skip
        started = time.monotonic()
        run = archiver.run_once()
        print(f"commander-relay archive: {run.moved} messages in {run.segments} segments,"
              f" {run.orphans_removed} orphan files removed,"
              f" {time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
        if args.verify:
            return _verify(store, settings)
    except ArchiverBusy as exc:
        print(f"commander-relay: {exc}", file=sys.stderr)
        return daemon.EXIT_FAILED
    finally:
        writer.close()
        store.close()
    return daemon.EXIT_OK


def _verify(store: MessageStore, settings: RelaySettings) -> int:
    assert store.archive is not None
    damaged = ArchiveReader(store.archive, archive_dir(settings.data_dir)).check()
    for name, problem in sorted(damaged.items()):
        print(f"commander-relay: damaged segment {name}: {problem}", file=sys.stderr)
    print(f"commander-relay archive: {len(damaged)} damaged segments", flush=True)
    return daemon.EXIT_FAILED if damaged else daemon.EXIT_OK


def _export(args: argparse.Namespace, load: Any) -> int:
    settings = load(args.config, data_dir=args.data_dir).relay
    store = _open(settings)
    if store is None:
        return daemon.EXIT_CONFIG
    assert store.archive is not None
    reader = ArchiveReader(store.archive, archive_dir(settings.data_dir))
    write = write_parquet if args.format == "parquet" else write_ndjson
    target = open(args.out, "wb") if args.out else nullcontext(sys.stdout.buffer)  # noqa: SIM115
    with closing(store), target as out:
        count = _export_rows(store, reader, args, write, out)
    print(f"commander-relay export: {count} messages", file=sys.stderr, flush=True)
    return daemon.EXIT_OK


def _export_rows(
    store: MessageStore, reader: ArchiveReader, args: argparse.Namespace, write: Any, out: IO[bytes]
) -> int:
    """Write hot then archived rows while holding off the archiver, so none moves between."""
    lock = Archiver.lock_for(Path(reader.directory), wait=True)
    with lock:
        rows = _chain(hot_rows(store, args.since, args.until),
                      archived_rows(reader, args.since, args.until))  # fmt: skip
        return int(write(rows, out))


def _chain(*parts: Any) -> Any:
    for part in parts:
        yield from part
