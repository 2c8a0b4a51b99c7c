"""An archiver that SIGKILLs its own process after the nth time it reaches a step.

    python -m tests.relay_app.archive.killed_archiver DATA_DIR STEP NTH

Run by test_crash.py as its own process: the kill is real, nothing of the archiver's
process (no `finally`, no buffered write, no lock) outlives it. Segments are cut into
frames of FRAME_ROWS rows and SEGMENT_ROWS rows a segment, so a small corpus makes
several of each; age archiving is at AFTER_DAYS.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from pathlib import Path

from relay_app.archive import segment
from relay_app.archive.mover import Archiver, archive_dir, commit_with
from relay_app.stores.sqlite import SqliteStore

FRAME_ROWS = 10
SEGMENT_ROWS = 50
AFTER_DAYS = 90.0


def main(data_dir: str, step: str, nth: int) -> int:
    """Archive data_dir's due messages, dying at the nth `step`; 0 if it never got there."""
    segment.FRAME_ROWS = FRAME_ROWS  # several frames a segment, with a few hundred rows
    reached: Counter[str] = Counter()

    def on_step(name: str) -> None:
        reached[name] += 1
        if name == step and reached[name] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

    store = SqliteStore(Path(data_dir))
    writer = store.open_writer()
    directory = archive_dir(data_dir)
    options = {"after_days": AFTER_DAYS, "segment_rows": SEGMENT_ROWS, "on_step": on_step}
    Archiver(store, commit_with(writer), directory, **options).run_once()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
