"""Process signals of a daemon: SIGTERM/SIGINT stop it, SIGUSR1 logs every thread's stack.

Python runs signal handlers in the main thread only, between bytecodes; the main
thread should therefore idle in something interruptible (`Supervisor.wait()`,
`time.sleep`) rather than in a blocking `Future.get()`.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

import pykka.debug

__all__ = ["install_signal_handlers"]

logger = logging.getLogger(__name__)

TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_signal_handlers(on_terminate: Callable[[], None]) -> None:
    """Call `on_terminate` once on SIGTERM or SIGINT; log thread tracebacks on SIGUSR1."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("install_signal_handlers() must be called from the main thread")
    terminating = threading.Event()

    def terminate(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        # A second Ctrl-C or a systemd re-send must not start a second shutdown midway.
        if terminating.is_set():
            logger.warning("received %s again; already stopping", name)
            return
        terminating.set()
        logger.info("received %s; stopping", name)
        on_terminate()

    for signum in TERMINATING_SIGNALS:
        signal.signal(signum, terminate)
    signal.signal(signal.SIGUSR1, pykka.debug.log_thread_tracebacks)
