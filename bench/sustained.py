"""Sustained ingest: 5 nodes x 5 agents writing 1,000 messages a second of about 1 KB.

    python -m bench sustained [--quick] [--minutes M] [--rate R]

The load benchmark's cluster and method (`bench.load`: real nodes writing through to a
relay process, the relay measured from /proc, an idle floor before the load) at the
rate the storage host must absorb during active work: 1,000 msgs/s in all (40 a
second per agent, one thread each), each carrying about 1 KB of text. 3 minutes of
load (1 with --quick). The relay keeps synchronous=FULL; the nodes' caches run NORMAL
(no fsync per local write), since here they only generate the load and share the
relay's 2 cores. Every node has one uploader for its agents, so what they write while
a push is in flight shares the next request: `requests_per_msg` is what that saves.

Last line, one JSON object: msgs_per_s, relay_cpu_pct, cpu_us_per_msg,
requests_per_msg, visible_p99_ms, relay_rss_mb, lost, and the load's other figures.
Targets: cpu_us_per_msg <= 250, visible_p99_ms <= 10, relay_rss_mb < 50, lost = 0.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.load import AGENTS_PER_NODE, NODES, Pace, run

RATE = 1000.0
# About 1 KB of text in each message, as agents' reports run.
TEXT = ("found a lead: ACME corp, contact through the site form; score follows. " * 15)[:1000]
TARGETS = "cpu_us_per_msg <= 250, visible_p99_ms <= 10, relay_rss_mb < 50, lost = 0"
SHOWN = (
    "msgs_per_s",
    "relay_cpu_pct",
    "cpu_us_per_msg",
    "requests_per_msg",
    "visible_p99_ms",
    "relay_rss_mb",
    "lost",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sustained load; the last line is one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench sustained")
    parser.add_argument("--quick", action="store_true", help="1 minute of load instead of 3")
    parser.add_argument("--minutes", type=float, help="minutes of load (overrides --quick)")
    parser.add_argument("--rate", type=float, default=RATE, help="messages a second in all")
    args = parser.parse_args(argv)
    minutes = args.minutes or (1.0 if args.quick else 3.0)
    rate_per_agent = args.rate / (len(NODES) * AGENTS_PER_NODE)
    pace = Pace(rate_per_agent, TEXT, node_synchronous="NORMAL")
    with tempfile.TemporaryDirectory(prefix="bench-sustained-") as tmp:
        result = run(Path(tmp), minutes, warmup_s=10.0, idle_s=5.0, pace=pace)
    result["rate_asked"] = args.rate
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(f"targets: {TARGETS}")
    print("  ".join(f"{k}={result[k]}" for k in SHOWN))
    ordered = {k: result[k] for k in SHOWN} | result
    print(json.dumps(ordered))
    return 0 if result["lost"] == 0 else 1
