"""A tiny service on the kernel's run loop, for the process tests of runtime.core.daemon.

    python run_loop_child.py serve          healthy, runs until SIGTERM/SIGINT
    python run_loop_child.py unhealthy      runs, but its health check says no
    python run_loop_child.py fail           its failure check names a reason after 0.3 s
    python run_loop_child.py broken-step    its first shutdown step raises

It prints `ready` before the loop, and `step <name>` for each shutdown step it runs.
"""

from __future__ import annotations

import logging
import sys
import time

from runtime.core import daemon


def step(name: str, *, broken: bool = False) -> daemon.ShutdownStep:
    """A shutdown step that prints its name (and then raises, if broken)."""

    def run() -> None:
        print(f"step {name}", flush=True)
        if broken:
            raise RuntimeError(f"{name} fails on purpose")

    return name, run


def main(mode: str) -> int:
    """Run the service in `mode`; return the run loop's exit code."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    stop = daemon.stop_on_signals()
    started = time.monotonic()

    def failure() -> str | None:
        late = mode == "fail" and time.monotonic() - started > 0.3
        return "the part died on purpose" if late else None

    service = daemon.Service(
        healthy=lambda: mode != "unhealthy",
        failure=failure,
        shutdown=(step("doors", broken=mode == "broken-step"), step("store")),
        poll_seconds=0.05,
    )
    print("ready", flush=True)
    return daemon.run(stop, service)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
