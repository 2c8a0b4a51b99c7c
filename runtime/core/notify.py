"""The systemd notify protocol (sd_notify(3)) in a few lines, without a dependency.

A service started with ``Type=notify`` gets ``$NOTIFY_SOCKET``; each state change is
one datagram of ``KEY=value`` lines sent to it. Outside systemd the variable is unset
and every function here does nothing and returns False, so the daemons call them
unconditionally. The environment is read on every call, never at import.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

__all__ = [
    "Watchdog",
    "notify",
    "ready",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval",
]

logger = logging.getLogger(__name__)


def _socket_address(raw: str) -> bytes | None:
    """The AF_UNIX address for ``$NOTIFY_SOCKET``; None for kinds we do not speak."""
    if raw.startswith("@"):
        # An abstract socket: '@' stands for the leading NUL byte of its name.
        return b"\0" + os.fsencode(raw[1:])
    if raw.startswith("/"):
        return os.fsencode(raw)
    # vsock:CID:PORT (systemd 253+, for VMs) is not used by services on a host.
    return None


def notify(state: str) -> bool:
    """Send ``state`` (one or more ``KEY=value`` lines) to systemd; False if not sent."""
    raw = os.environ.get("NOTIFY_SOCKET", "")
    address = _socket_address(raw) if raw else None
    if address is None:
        return False
    try:
        # Non-blocking: a reader that lags (its queue holds only net.unix.max_dgram_qlen
        # datagrams, 10 by default) must not hold the daemon, not even its shutdown.
        kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        with socket.socket(socket.AF_UNIX, kind) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        # A lost notification must not take the daemon down; systemd's own timeouts act.
        logger.warning("sd_notify to %s failed: %s", raw, exc)
        return False
    return True


def ready() -> bool:
    """Tell systemd that start-up finished: the service is up."""
    return notify("READY=1")


def stopping() -> bool:
    """Tell systemd that the service is shutting down on purpose."""
    return notify("STOPPING=1")


def watchdog() -> bool:
    """Ping the service watchdog: the process is alive and healthy."""
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    """Set the one-line status that ``systemctl status`` shows."""
    # A newline would start another KEY=value assignment in the datagram.
    return notify("STATUS=" + " ".join(text.splitlines()))


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds for this process, or None when none is set.

    systemd sets ``$WATCHDOG_USEC``; ``$WATCHDOG_PID``, when set, names the process
    the timeout is meant for, and a child that inherited the variables must not ping.
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1_000_000 if value > 0 else None


class Watchdog:
    """Pings the systemd watchdog every ``interval / 2`` seconds while ``is_healthy()``.

    When ``is_healthy`` returns False or raises, no ping is sent, so a stuck or dead
    actor lets the timeout expire and systemd restarts the service. ``interval`` is the
    watchdog timeout; by default it is read from the environment when ``start`` runs.
    """

    def __init__(self, is_healthy: Callable[[], bool], interval: float | None = None) -> None:
        """Prepare the watchdog; nothing runs until ``start``."""
        self._is_healthy = is_healthy
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start pinging in a daemon thread; False when no watchdog is configured."""
        interval = self._interval if self._interval is not None else watchdog_interval()
        if interval is None or interval <= 0 or self._thread is not None:
            return False
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval / 2,), name="sd-watchdog", daemon=True
        )
        self._thread.start()
        return True

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop pinging and wait for the thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _healthy(self) -> bool:
        try:
            return bool(self._is_healthy())
        except Exception:
            logger.exception("health check failed; withholding the watchdog ping")
            return False

    def _run(self, period: float) -> None:
        while True:
            if self._healthy():
                watchdog()
            else:
                logger.warning("unhealthy: withholding the watchdog ping")
            if self._stop.wait(period):
                return
