"""The run loop both daemons share (`commander-node`, `commander-relay serve`).

    stop = stop_on_signals()          # first: a SIGTERM during start-up is not lost
    ... start the service; a failure to start returns its own exit code ...
    return run(stop, Service(healthy, failure, shutdown=[("doors", doors.stop), ...]))

`run` tells systemd READY=1 (the service answers by then), pings the watchdog every
half of `$WATCHDOG_USEC` while `healthy()` holds, waits for SIGTERM/SIGINT or for
`failure()` to name a reason, tells systemd STOPPING=1 and runs every shutdown step in
order, each even when one before it failed. Exit codes, as systemd units expect them:
0 a requested stop, 1 a failure a restart may mend, 2 a problem the operator must fix
(bad config; the callers return it before `run`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runtime.core import notify
from runtime.core.errors import ConfigError
from runtime.core.signals import install_signal_handlers

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "Service",
    "ShutdownStep",
    "run",
    "run_command",
    "shut_down",
    "stop_on_signals",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
# How often the loop asks `failure()`: a dead part is noticed within this, and the main
# thread stays in an interruptible wait so that signal handlers run at once.
POLL_SECONDS = 0.5

ShutdownStep = tuple[str, Callable[[], None]]


@dataclass(frozen=True)
class Service:
    """What the run loop needs of a started service."""

    # The watchdog pings only while this holds; stuck parts let systemd restart us.
    healthy: Callable[[], bool]
    # A reason to stop with EXIT_FAILED (a part that died for good), or None.
    failure: Callable[[], str | None]
    # Named steps after STOPPING=1, in order: stop taking work first, close stores last.
    shutdown: Sequence[ShutdownStep] = field(default_factory=tuple)
    poll_seconds: float = POLL_SECONDS


def stop_on_signals() -> threading.Event:
    """An event SIGTERM or SIGINT sets (handlers installed now; SIGUSR1 logs every stack)."""
    stop = threading.Event()
    install_signal_handlers(stop.set)
    return stop


def run(stop: threading.Event, service: Service) -> int:
    """Serve until `stop` is set or the service fails, then shut it down; the exit code."""
    watchdog = notify.Watchdog(service.healthy)
    code = EXIT_FAILED  # if the wait itself raises, the steps still run
    try:
        notify.ready()  # before the first ping: systemd counts pings from READY on
        watchdog.start()
        code = _wait(stop, service)
    finally:
        notify.stopping()
        watchdog.stop()
        if not shut_down(service.shutdown):
            code = EXIT_FAILED
    return code


def _wait(stop: threading.Event, service: Service) -> int:
    while not stop.wait(service.poll_seconds):
        reason = service.failure()
        if reason is not None:
            logger.error("%s; stopping", reason)
            return EXIT_FAILED
    return EXIT_OK


def shut_down(steps: Sequence[ShutdownStep]) -> bool:
    """Run every step in order, each even after one failed; False if any failed."""
    ok = True
    for name, step in steps:
        try:
            step()
        except Exception:
            # Later steps still close stores and remove sockets; the exit code says it.
            logger.exception("shutdown step %r failed", name)
            ok = False
    return ok


def run_command(
    prog: str, args: argparse.Namespace, failures: tuple[type[Exception], ...] = ()
) -> int:
    """Run the subcommand `args.run` chose; bad config exits 2 and `failures` exit 1, on stderr."""
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"{prog}: configuration problem:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except failures as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_FAILED
