"""A running relay keeps answering while clients trickle, idle and send oversized heads."""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support import Daemon

pytestmark = pytest.mark.slow

# The relay unit's MemoryMax.
UNIT_MEMORY_BYTES = 512 * 1024 * 1024


@pytest.fixture
def relay(relay_process: Daemon) -> Daemon:
    """The relay under attack, as its own process."""
    return relay_process


def healthz_seconds(daemon: Daemon) -> float:
    """How long a plain GET /healthz on a new connection takes (it must answer 200)."""
    started = time.monotonic()
    answer = requests.get(daemon.url + "/healthz", timeout=5)
    assert answer.status_code == 200
    return time.monotonic() - started


def rss_peak(pid: int) -> int:
    """The process's peak resident set size in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


class Trickler(threading.Thread):
    """One slow client: a header line every `interval` s, reconnecting when cut off."""

    def __init__(self, target: tuple[str, int], until: float, interval: float) -> None:
        super().__init__(daemon=True)
        self.target, self.until, self.interval = target, until, interval
        self.cut_off = 0

    def run(self) -> None:
        while time.monotonic() < self.until:
            with contextlib.suppress(OSError), socket.create_connection(self.target) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")
                while time.monotonic() < self.until:
                    time.sleep(self.interval)
                    sock.sendall(b"X-Slow: still-here\r\n")
            self.cut_off += 1


def test_twenty_slow_sockets_never_delay_a_normal_request(relay: Daemon) -> None:
    # 23 s: each slow client is cut off at its head's 10 s deadline, reconnects at once,
    # and is cut off again.
    until = time.monotonic() + 23
    slow = [Trickler(relay.address, until, interval=1.0) for _ in range(20)]
    for client in slow:
        client.start()
    latencies = []
    while time.monotonic() < until:
        latencies.append(healthz_seconds(relay))
        time.sleep(0.5)
    for client in slow:
        client.join(10)
    assert len(latencies) > 30
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    # Each head had 10 s to arrive: the relay cut every slow client off at least twice.
    assert min(client.cut_off for client in slow) >= 2


def test_a_thousand_idle_sockets_never_delay_a_normal_request(relay: Daemon) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    idle = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(relay.address))
        time.sleep(1.0)  # the attack is in place: every socket accepted and waiting
        latencies = [healthz_seconds(relay) for _ in range(20)]
        assert max(latencies) < 1.0, sorted(latencies)[-5:]
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def send_huge_head(target: tuple[str, int], size: int, answers: list[bytes]) -> None:
    """Send a head with one `size`-byte header, as far as the relay lets it; keep its answer."""
    with socket.create_connection(target, timeout=10) as sock:
        chunk = b"a" * (1024 * 1024)
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\nX-Huge: ")
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
        with contextlib.suppress(OSError):
            answers.append(sock.recv(200))


def test_sixteen_64_mb_heads_are_refused_early_and_memory_stays_bounded(relay: Daemon) -> None:
    before = rss_peak(relay.proc.pid)
    answers: list[bytes] = []
    senders = [
        threading.Thread(target=send_huge_head, args=(relay.address, 64 << 20, answers))
        for _ in range(16)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(60)
    assert len(answers) == 16
    assert all(answer.startswith(b"HTTP/1.1 431 ") for answer in answers), answers[:3]
    growth = rss_peak(relay.proc.pid) - before
    assert growth < 64 * 1024 * 1024, f"peak RSS grew {growth >> 20} MiB"
    assert rss_peak(relay.proc.pid) < UNIT_MEMORY_BYTES
    assert healthz_seconds(relay) < 1.0
