"""`make run` stops every daemon it started, however it was started and wherever its output goes."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import IO

import pytest

from tests.runtime.quickstart_procs import debris, quickstart, quickstart_env, taken

pytestmark = pytest.mark.slow


def test_started_with_sigint_ignored_it_still_stops_on_sigint(tmp_path: Path) -> None:
    env, ports = quickstart_env()
    # What `nohup make run &` does: the shell starts a background job with SIGINT ignored.
    ignore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    with quickstart(
        tmp_path, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=ignore_sigint,
    ) as proc:  # fmt: skip
        banner = _banner(proc.stdout)
        daemons = _daemons(tmp_path, proc.pid)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=90)
    output = banner + rest
    assert proc.returncode == 0, output
    assert output.count("(exit 0)") == 3, output
    assert _alive(daemons) == [], output
    assert debris(tmp_path) == []
    assert taken(ports) == []


@pytest.mark.parametrize("then", ["nothing", "sigterm"])
def test_with_its_output_closed_it_still_stops_every_daemon(tmp_path: Path, then: str) -> None:
    env, ports = quickstart_env()
    with quickstart(
        tmp_path, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        _banner(proc.stdout)
        daemons = _daemons(tmp_path, proc.pid)
        assert proc.stdout is not None
        proc.stdout.close()  # as `head` does once it has its lines
        if then == "sigterm":  # every print of the shutdown now meets a broken pipe
            proc.send_signal(signal.SIGTERM)
        # With "nothing", its next progress line finds nobody reading: it stops, as on SIGPIPE.
        code = proc.wait(timeout=90)
    assert code == 0
    assert _alive(daemons) == []
    assert debris(tmp_path) == []
    assert taken(ports) == []


def _banner(stdout: IO[str] | None) -> str:
    """The quickstart's output up to the end of its banner: by then every daemon answers."""
    assert stdout is not None
    lines = []
    for line in stdout:
        lines.append(line)
        if "Logs and data:" in line:
            return "".join(lines)
    raise AssertionError("the quickstart ended before its banner:\n" + "".join(lines))


def _daemons(cwd: Path, quickstart_pid: int) -> list[int]:
    """The relay and both nodes, by PID: everything working in `cwd` but the quickstart."""
    daemons = [pid for pid in debris(cwd) if pid != quickstart_pid]
    assert len(daemons) >= 3, daemons
    return daemons


def _alive(pids: list[int]) -> list[int]:
    """The PIDs among `pids` still running a second from now (a zombie is not running)."""
    time.sleep(1.0)
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive
