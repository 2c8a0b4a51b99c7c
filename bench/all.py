"""Every benchmark in turn, then docs/PERFORMANCE.md: `python -m bench all [--quick]`.

Each benchmark runs as its own process (`python -m bench <name>`), so one that fails or
leaks cannot skew the next; its output streams through and its last line, one JSON object,
is kept. Normal sizes throughout except the soak, which runs in its quick mode (3 minutes;
`make soak` runs the full 30). With --quick every benchmark runs small and the page goes
to .bench-cache/PERFORMANCE-quick.md, so indicative figures never replace the real page.
The collected results are also kept in .bench-cache/bench-results[-quick].json;
`--only a,b` runs those again and keeps the others' figures, and `--render-only` writes the
page again from the kept results (after a change to the notes, say).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.tools.report import machine, render

REPO = Path(__file__).resolve().parents[1]
ORDER = (
    "local_write",
    "relay_ingest",
    "visibility",
    "outbox",
    "query",
    "scaling",
    "load",
    "sustained",
    "soak",
)
ALWAYS_QUICK = {"soak"}
TIMEOUT_S = 45 * 60


def run_one(name: str, quick: bool) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Run one benchmark as a process; return its last-line JSON (or None) and how it ran."""
    args = [sys.executable, "-m", "bench", name]
    if quick or name in ALWAYS_QUICK:
        args.append("--quick")
    print(f"== bench {name}: {' '.join(args[1:])}", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
    timer = threading.Timer(TIMEOUT_S, proc.kill)
    timer.start()
    last = ""
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.strip():
                last = line.strip()
        code = proc.wait()
    finally:
        timer.cancel()
    run = {"command": "python " + " ".join(args[1:]), "exit": code,
           "seconds": time.monotonic() - started,
           "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "load_avg_1m": round(os.getloadavg()[0], 2)}  # fmt: skip
    try:
        parsed = json.loads(last)
    except json.JSONDecodeError:
        return None, run
    return (parsed if isinstance(parsed, dict) else None), run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, write the page; exit non-zero if any benchmark failed."""
    parser = argparse.ArgumentParser(prog="python -m bench all")
    parser.add_argument("--quick", action="store_true", help="small runs; page in .bench-cache/")
    parser.add_argument("--only", help="comma-separated benchmarks (default: all, in order)")
    parser.add_argument("--out", type=Path, help="where to write the page")
    parser.add_argument(
        "--render-only", action="store_true", help="write the page from the kept results"
    )
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(ORDER)
    unknown = set(names) - set(ORDER)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    default_out = ".bench-cache/PERFORMANCE-quick.md" if args.quick else "docs/PERFORMANCE.md"
    out = args.out or REPO / default_out
    kept = REPO / f".bench-cache/bench-results{'-quick' if args.quick else ''}.json"
    if args.render_only:
        saved = json.loads(kept.read_text())
        results, runs, lines = saved["results"], saved["runs"], saved["machine"]
    else:
        results, runs, lines = {}, {}, machine()
        if args.only and kept.exists():  # re-run some, keep the others' figures
            saved = json.loads(kept.read_text())
            results, runs, lines = saved["results"], saved["runs"], saved["machine"]
        for name in names:
            parsed, runs[name] = run_one(name, args.quick)
            if parsed is not None:
                results[name] = parsed
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(json.dumps({"results": results, "runs": runs, "machine": lines}))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results, runs, args.quick, lines), encoding="utf-8")
    print(f"== wrote {out}", flush=True)
    failed = [n for n, r in runs.items() if r["exit"] != 0 or n not in results]
    if failed:
        print(f"== failed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0
