"""The README's production steps run as written in a scratch root; both daemons as `commander`.

Every command of the README's Production section runs, in order, with the machine's
paths moved under a scratch root and the LAN addresses and ports moved to free ports on
127.0.0.1; the venv is built from the system's Python and a copy of this checkout, as
on a real host. Only `systemctl` is not run (this machine has no systemd): the test does
what the units ask of systemd instead (the user, the umask, the state and runtime
directories, ExecStart) and sees a message written on the node arrive at the relay over
TLS.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from runtime.node.client import NodeClient
from tests.support import free_port
from tests.test_systemd_units import parse_unit, values

REPO = Path(__file__).resolve().parents[1]
USER = "commander"
NODE_ID = "Gillsystems-Laptop"
AGENT_ID = "recruiter-001"
PASSWORD = "correct horse battery staple"
# What systemd would do; the test does it itself (see start_unit).
NOT_RUN = re.compile(r"systemctl\b")
# The system's own tools and Python first, as on a host: not a developer's pyenv shims.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LAN_ADDRESSES = ("10.0.0.42", "10.0.0.43", "10.0.0.44")


def production_commands(readme: str) -> list[str]:
    """The shell commands of the README's Production section, in order."""
    section = readme.split("\n## Production\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        for raw in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", raw).strip()
            if line and not line.startswith("#"):
                commands.append(re.sub(r"^sudo\s+", "", line))
    return commands


def _must_run_here() -> None:
    """Skip without root or the user tools; under CI=true fail instead: CI runs as root."""
    missing = [tool for tool in ("useradd", "userdel", "runuser") if shutil.which(tool) is None]
    reason = "needs root" if os.geteuid() != 0 else f"needs {', '.join(missing)}"
    if os.geteuid() == 0 and not missing:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true requires the production steps test to run: it {reason}")
    pytest.skip(f"the production steps test {reason}")


@dataclass
class Scratch:
    """A scratch root standing in for the machine's /etc, /opt, /var, /run and pool."""

    root: Path
    relay_port: int
    node_port: int

    def moves(self) -> list[tuple[str, str]]:
        """(machine path or address, scratch stand-in), longest first."""
        paths = ["/etc/commander", "/etc/systemd/system", "/gillsystems_zfs_pool/AI_storage",
                 "/var/lib/commander-node", "/var/lib/commander-relay", "/var/lib/commander",
                 "/run/commander-node", "/root", "/opt/commander"]  # fmt: skip
        moved = [(path, str(self.root) + path) for path in paths]
        moved.append(("/path/to/this/checkout", str(self.root / "checkout")))
        moved += [(address, "127.0.0.1") for address in LAN_ADDRESSES]
        return sorted(moved, key=lambda pair: -len(pair[0]))

    def rewrite(self, text: str) -> str:
        """Move every machine path, address and port of `text` into the scratch root."""
        for old, new in self.moves():
            text = re.sub(re.escape(old) + r"(?=[/\s\"':]|$)", new, text, flags=re.MULTILINE)
        text = re.sub(r"\b8001\b", str(self.relay_port), text)
        return re.sub(r"\b8002\b", str(self.node_port), text)

    def checkout(self) -> Path:
        """The files the commands copy from (config/, systemd/), rewritten like the commands."""
        src = self.root / "src"
        for folder in ("config", "systemd"):
            for path in (REPO / folder).rglob("*"):
                if path.is_file():
                    target = src / path.relative_to(REPO)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(self.rewrite(path.read_text(encoding="utf-8")))
        return src

    def copy_checkout(self) -> None:
        """This checkout's files (tracked and new, not ignored), for `pip install`."""
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO, capture_output=True, check=True,
        ).stdout.decode()  # fmt: skip
        for name in filter(None, listed.split("\0")):
            source, target = REPO / name, self.root / "checkout" / name
            if source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)

    def path(self, machine_path: str) -> Path:
        """Where `machine_path` lives in the scratch root."""
        return Path(self.rewrite(machine_path))


@pytest.fixture
def scratch() -> Iterator[Scratch]:
    """A scratch root the service user can traverse, and the user, removed afterwards."""
    _must_run_here()
    existed = _user_exists()
    root = Path(tempfile.mkdtemp(prefix="commander-prod-", dir="/tmp"))
    root.chmod(0o755)
    for existing in ("etc/systemd/system", "var/lib", "run", "opt"):  # as on any host
        (root / existing).mkdir(parents=True)
    (root / "root").mkdir(mode=0o700)
    try:
        yield Scratch(root, free_port(), free_port())
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if not existed and _user_exists():
            subprocess.run(["userdel", USER], check=False, capture_output=True)


def _user_exists() -> bool:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return False
    return True


def run_steps(scratch: Scratch) -> list[str]:
    """Run every runnable command in order; return those not run here."""
    src = scratch.checkout()
    scratch.copy_checkout()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    skipped = []
    env = {**os.environ, "PATH": SYSTEM_PATH}
    env.pop("VIRTUAL_ENV", None)
    for command in production_commands(readme):
        if NOT_RUN.match(command):
            skipped.append(command)
            continue
        moved = scratch.rewrite(command)
        bash = ["bash", "-eo", "pipefail", "-c", moved]
        done = subprocess.run(bash, check=False, cwd=src, env=env, input=PASSWORD + "\n",
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, f"README step failed: {command}\n{done.stdout}{done.stderr}"
    return skipped


@dataclass
class Service:
    """One unit started the way systemd would start it, as a plain process."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        """What the service printed so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM as systemd does, then wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def start_unit(scratch: Scratch, unit: str, host_name: str) -> Service:
    """Do what the unit asks of systemd (user, umask, directories), then run ExecStart."""
    path = scratch.path(f"/etc/systemd/system/{unit}.service")
    directives = parse_unit(path.read_text(encoding="utf-8"))
    service = {d.key: d.value for d in directives if d.section == "Service"}
    user = pwd.getpwnam(service["User"])
    for kind, base in (("StateDirectory", "/var/lib"), ("RuntimeDirectory", "/run")):
        if kind in service:
            directory = scratch.path(f"{base}/{service[kind]}")
            directory.mkdir(parents=True, exist_ok=True)
            os.chown(directory, user.pw_uid, user.pw_gid)
            directory.chmod(int(service.get(f"{kind}Mode", "0755"), 8))
    for writable in values(directives, "Service", "ReadWritePaths"):
        assert Path(writable).is_dir(), f"{unit}: ReadWritePaths {writable} was never made"
    command = [v for v in values(directives, "Service", "ExecStart") if v][-1]
    log = scratch.root / f"{unit}.log"
    with log.open("wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            shlex.split(command.replace("%H", host_name)),
            user=user.pw_uid, group=user.pw_gid, extra_groups=[],
            umask=int(service.get("UMask", "0022"), 8), cwd="/",
            stdout=out, stderr=subprocess.STDOUT,
            env={"PATH": SYSTEM_PATH, "PYTHONUNBUFFERED": "1", "HOME": "/"},
        )  # fmt: skip
    return Service(unit, proc, log)


def wait_for(what: str, check: object, services: list[Service], seconds: float = 30.0) -> object:
    """Poll `check()` until it returns something; fail early if a service died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for service in services:
            code = service.proc.poll()
            assert code is None, f"{service.name} exited {code} before {what}:\n{service.text()}"
        result = check()  # type: ignore[operator]
        if result:
            return result
        time.sleep(0.2)
    logs = "\n".join(f"--- {s.name}\n{s.text()}" for s in services)
    raise AssertionError(f"no {what} within {seconds}s\n{logs}")


def _healthy(url: str, ca: Path) -> bool:
    try:
        return requests.get(url, verify=str(ca), timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _stored(url: str, ca: Path, token: str) -> dict[str, object] | None:
    headers = {"X-Commander-Node": NODE_ID, "Authorization": f"Bearer {token}"}
    try:
        response = requests.get(url, headers=headers, verify=str(ca), timeout=2)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]


def _uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE).group(1))  # type: ignore[union-attr]


def test_the_readme_production_steps_work_as_written(scratch: Scratch) -> None:
    skipped = run_steps(scratch)
    assert len(skipped) >= 2  # daemon-reload and the enables

    secrets = scratch.path("/etc/commander/secrets")
    for secret in secrets.iterdir():
        mode = secret.stat().st_mode & 0o777
        assert mode & 0o007 == 0, f"{secret.name} is readable by anyone: {oct(mode)}"

    commander = pwd.getpwnam(USER)
    services = [start_unit(scratch, "commander-relay", "Gillsystems-HTPC")]
    try:
        ca = scratch.path("/etc/commander/tls/ca.pem")
        base = f"https://127.0.0.1:{scratch.relay_port}"
        wait_for("relay over TLS", lambda: _healthy(base + "/healthz", ca), services)
        services.append(start_unit(scratch, "commander-node", NODE_ID))
        sock = scratch.path(f"/run/commander-node/{AGENT_ID}.sock")
        wait_for("the agent's socket", sock.exists, services)

        client = NodeClient(f"unix:{sock}", AGENT_ID)
        try:
            msg_id = client.write({"title": "over TLS"}, task_id="prod-1")
        finally:
            client.close()
        token = scratch.path(f"/etc/commander/secrets/{NODE_ID}.token").read_text().strip()
        found = wait_for("the message at the relay",
                         lambda: _stored(f"{base}/query/messages/{msg_id}", ca, token),
                         services)  # fmt: skip
        assert isinstance(found, dict)
        assert found["content"] == {"title": "over TLS"}

        assert {_uid_of(s.proc.pid) for s in services} == {commander.pw_uid}
        database = scratch.path("/gillsystems_zfs_pool/AI_storage/messages/cluster_messages.db")
        assert database.stat().st_uid == commander.pw_uid
        assert not _healthy(f"http://127.0.0.1:{scratch.relay_port}/healthz", ca)  # TLS only
    finally:
        codes = {s.name: s.stop() for s in reversed(services)}
    assert codes == {s.name: 0 for s in services}, "\n".join(s.text() for s in services)
