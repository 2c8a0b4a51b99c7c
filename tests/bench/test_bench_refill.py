"""`bench refill` at a tiny size: the restore, the refill and both idle passes all run.

The figures of so small a corpus mean nothing; what is under test is that every message
the restored relay lacked comes back once, and that every figure is reported.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import refill

KEYS = {"missing", "refilled", "lost", "refill_s", "digest_bytes", "idle_reconcile_cpu_ms",
        "idle_reconcile_cpu_ms_max", "idle_digest_bytes", "floor_msgs_per_s",
        "refill_msgs_per_s"}  # fmt: skip


def test_a_tiny_run_brings_back_every_missing_message_once(tmp_path: Path) -> None:
    shape = refill.Shape(messages=1000, nodes=2, agents=1, interval=1.0, check=0.3, timeout=60)
    figures = refill.run(tmp_path, shape)
    last = json.loads(refill.summary(figures)[-1])
    assert last.keys() >= KEYS
    assert last["missing"] == last["refilled"] == 100
    assert last["lost"] == last["duplicates"] == last["missing_not_back"] == 0
    assert last["idle_refilled"] == 0
    assert last["relay_rows"] == 1000
