"""Hostile clients against each HTTP server: `python -m bench http_hostile [--quick]`.

The relay's app served by the relay's front, by cheroot and by granian in turn (each its
own process on 127.0.0.1, as `bench http_front` starts them), and per server the cases
the front is built to hold (tests/runtime/test_http_front.py,
tests/relay_app/test_hostile_clients.py): heads trickled in, a thousand idle sockets,
bodies that stop arriving (more of them than worker threads), huge heads, too many
header fields, a control character in a header, a declared body over the limit, and
Content-Length with Transfer-Encoding. A case passes when the server answers what the
front answers (or, for the holding cases, a GET /healthz on a new connection still
answers within a second and the hostile sockets are cut off). Not timed figures: a
pass/fail table, and the last line one JSON object with each case's detail.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.tools import http_serve
from bench.tools.http_serve import INSTALLED, NODE

KINDS = tuple(k for k in INSTALLED if k in ("front", "cheroot", "granian"))
# What each server is given to hold the heads and bodies to: the front's own deadlines.
DEADLINE_S = 10.0


@dataclass(frozen=True)
class Target:
    """One server under test: where it listens, its process, the node's token, the scale."""

    port: int
    pid: int
    token: str
    quick: bool

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """A new connection."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


@dataclass(frozen=True)
class Outcome:
    """Whether the server held, and what was seen."""

    passed: bool
    detail: str


def main(argv: list[str]) -> int:
    """Run every case against every server; print the table and one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench http_hostile")
    parser.add_argument("--quick", action="store_true", help="fewer sockets (smoke run)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="servers, comma-separated")
    args = parser.parse_args(argv)
    _raise_descriptor_limit()
    results: dict[str, dict[str, Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        for kind in args.kinds.split(","):
            results[kind] = _against(kind, Path(tmp), args.quick)
    for line in _report(results):
        print(line)
    summary = {k: {c: vars(o) for c, o in cases.items()} for k, cases in results.items()}
    print(orjson.dumps(summary).decode())
    return 0


def _against(kind: str, tmp: Path, quick: bool) -> dict[str, Outcome]:
    outcomes = {}
    for name, case in CASES.items():
        relay_dir = tmp / f"{kind}-{name}"
        token = http_serve.write_relay_config(relay_dir)
        proc, port = http_serve.start(kind, "relay", tmp, relay_dir)
        try:
            outcomes[name] = case(Target(port, proc.pid, token, quick))
        except Exception as exc:  # a case that breaks is a failure to report, not a crash
            outcomes[name] = Outcome(False, f"{type(exc).__name__}: {exc}")
        finally:
            http_serve.stop(proc)
        print(f"{kind:<8} {name:<18} {'pass' if outcomes[name].passed else 'FAIL'}: "
              f"{outcomes[name].detail}", flush=True)  # fmt: skip
    return outcomes


def healthz_ms(target: Target) -> float:
    """A GET /healthz on a new connection, in ms; 1e9 if it fails or times out."""
    started = time.monotonic()
    try:
        with target.connect(timeout=2.0) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            if not sock.recv(100).startswith(b"HTTP/1.1 200 "):
                return 1e9
    except OSError:
        return 1e9
    return (time.monotonic() - started) * 1000


def status_of(target: Target, data: bytes, timeout: float = 5.0) -> str:
    """Send `data` on a new connection; the status line of the answer (or what happened)."""
    with target.connect(timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            return "no answer"
        except OSError as exc:
            return type(exc).__name__
    return answer.split(b"\r\n", 1)[0].decode("latin-1") or "closed"


def slow_heads(target: Target) -> Outcome:
    """20 heads, a header line every 2 s: each cut off by its deadline, no one starved."""
    socks = [target.connect() for _ in range(20)]
    for sock in socks:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
    cut_at: dict[int, float] = {}
    latencies, started = [], time.monotonic()
    while time.monotonic() - started < DEADLINE_S + 4 and len(cut_at) < len(socks):
        for i, sock in enumerate(socks):
            if i not in cut_at and not _still_open(sock):
                cut_at[i] = time.monotonic() - started
        latencies.append(healthz_ms(target))
        time.sleep(0.5)
    for sock in socks:
        sock.close()
    worst = max(latencies)
    first = f"first after {min(cut_at.values()):.1f} s" if cut_at else "none"
    detail = f"healthz max {worst:.0f} ms; {len(cut_at)}/20 cut off ({first})"
    return Outcome(worst < 1000 and len(cut_at) == len(socks), detail)


def _still_open(sock: socket.socket) -> bool:
    """Send one more header line; False once the server has answered (408) or closed."""
    try:
        sock.setblocking(False)
        try:
            sock.recv(1, socket.MSG_PEEK)
            return False
        except BlockingIOError:
            pass
        finally:
            sock.settimeout(5.0)
        sock.sendall(b"X-Slow: still-here\r\n")
        return True
    except OSError:
        return False


def idle_sockets(target: Target) -> Outcome:
    """A thousand connections that send nothing: a new client is still answered at once."""
    count = 200 if target.quick else 1000
    idle = []
    try:
        for _ in range(count):
            idle.append(target.connect())
        time.sleep(1.0)
        worst = max(healthz_ms(target) for _ in range(20))
    finally:
        for sock in idle:
            sock.close()
    return Outcome(worst < 1000, f"{count} idle: healthz max {worst:.0f} ms")


def stalled_bodies(target: Target) -> Outcome:
    """20 POSTs declaring 100 bytes and sending 3 (more than the 16 workers); then nothing."""
    head = (
        f"POST /sync/messages HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {target.token}\r\n"
        f"X-Commander-Node: {NODE}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    socks = [target.connect(timeout=DEADLINE_S + 10) for _ in range(20)]
    for sock in socks:
        sock.sendall(head + b'{"a')
    time.sleep(0.5)
    worst = max(healthz_ms(target) for _ in range(6))
    started, answers = time.monotonic(), []
    for sock in socks:
        sock.settimeout(max(0.1, started + DEADLINE_S + 6 - time.monotonic()))
        with contextlib.suppress(OSError):
            answers.append(sock.recv(100).split(b"\r\n", 1)[0].decode() or "closed")
        sock.close()
    waited = time.monotonic() - started
    seen = sorted(set(answers)) or "none"
    detail = f"healthz max {worst:.0f} ms; {len(answers)}/20 ended {waited:.1f} s later: {seen}"
    return Outcome(worst < 1000 and len(answers) == len(socks), detail)


def huge_heads(target: Target) -> Outcome:
    """Heads with one 16 MiB header, several at once: refused early, memory bounded."""
    count = 2 if target.quick else 4
    before = _tree_peak_kb(target.pid)
    answers: list[str] = []
    senders = [threading.Thread(target=_send_huge, args=(target, answers)) for _ in range(count)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(60)
    growth = (_tree_peak_kb(target.pid) - before) // 1024
    refused = all(a.startswith(("HTTP/1.1 4", "HTTP/1.0 4")) for a in answers)
    detail = f"{sorted(set(answers))}; peak RSS grew {growth} MiB"
    return Outcome(len(answers) == count and refused and growth < 64, detail)


def _send_huge(target: Target, answers: list[str]) -> None:
    chunk = b"a" * (1 << 20)
    with target.connect(timeout=10) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Huge: ")
            for _ in range(16):
                sock.sendall(chunk)
        try:
            answers.append(sock.recv(200).split(b"\r\n", 1)[0].decode("latin-1") or "closed")
        except OSError as exc:
            answers.append(type(exc).__name__)


def _tree_peak_kb(pid: int) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += _tree_peak_kb(int(child))
    return total


def many_headers(target: Target) -> Outcome:
    """500 header fields: refused (the front answers 431)."""
    status = status_of(target, b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"X:a\r\n" * 500 + b"\r\n")
    return Outcome(status.startswith("HTTP/1.1 4"), status)


def control_character(target: Target) -> Outcome:
    """A control character in a header value: 400 (the front's answer)."""
    status = status_of(target, b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n")
    return Outcome(status.startswith("HTTP/1.1 400"), status)


def body_over_limit(target: Target) -> Outcome:
    """A declared 50 GiB body and none sent: 413 at once, nothing read."""
    head = (
        f"POST /sync/messages HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {target.token}\r\n"
        f"X-Commander-Node: {NODE}\r\nContent-Length: {50 << 30}\r\n\r\n"
    ).encode()
    status = status_of(target, head, timeout=3.0)
    return Outcome(status.startswith("HTTP/1.1 413"), status)


def length_and_chunked(target: Target) -> Outcome:
    """Content-Length and Transfer-Encoding both, a request behind: no second answer.

    The front refuses such a head (400); RFC 9112 section 6.3 also lets a server read the
    body as chunked if it then closes the connection, so the request behind, where a
    smuggled one would sit, is never answered.
    """
    with target.connect() as sock:
        sock.sendall(
            b"POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    statuses = [
        line.decode("latin-1") for line in answer.split(b"\r\n") if line.startswith(b"HTTP/")
    ]
    one = len(statuses) == 1
    return Outcome(one, f"{statuses}{'' if one else ' (the request behind was answered too)'}")


CASES: dict[str, Callable[[Target], Outcome]] = {
    "slow_heads": slow_heads,
    "idle_sockets": idle_sockets,
    "stalled_bodies": stalled_bodies,
    "huge_heads": huge_heads,
    "many_headers": many_headers,
    "control_character": control_character,
    "body_over_limit": body_over_limit,
    "length_and_chunked": length_and_chunked,
}


def _raise_descriptor_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))


def _report(results: dict[str, dict[str, Outcome]]) -> list[str]:
    kinds = list(results)
    lines = ["case               " + "".join(f"{k:<10}" for k in kinds)]
    for case in CASES:
        marks = ["pass" if results[k][case].passed else "FAIL" for k in kinds]
        lines.append(f"{case:<18} " + "".join(f"{m:<10}" for m in marks))
    return lines
