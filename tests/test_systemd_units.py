"""The systemd units: systemd's own checker accepts them, and each directive says why."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = {name: REPO / f"systemd/commander-{name}.service" for name in ("node", "relay")}

EXEC_START = {
    "node": "/opt/commander/.venv/bin/commander-node --config /etc/commander --node-id %H"
    " --data-dir /var/lib/commander-node --socket-dir /run/commander-node",
    "relay": "/opt/commander/.venv/bin/commander-relay serve --config /etc/commander/relay.yaml",
}

# What both units must say, with the exact value where one is prescribed.
COMMON = {
    "Type": "notify",
    "NotifyAccess": "main",
    "WatchdogSec": "30",
    "Restart": "on-failure",
    "RestartPreventExitStatus": "2",  # both CLIs exit 2 on a config error
    "RestartSec": None,
    "TimeoutStopSec": "30",
    "DynamicUser": "no",
    "User": "commander",
    "ConfigurationDirectory": "commander",
    "ProtectSystem": "strict",
    "ProtectHome": "true",
    "NoNewPrivileges": "true",
    "PrivateTmp": "true",
    "PrivateDevices": "true",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter": "@system-service",
    "SystemCallArchitectures": "native",
    "MemoryMax": None,
    "ProtectKernelTunables": "true",
    "ProtectControlGroups": "true",
    "RestrictNamespaces": "true",
    "LockPersonality": "true",
}
SPECIFIC = {
    "node": {"StateDirectory": "commander-node", "MemoryMax": "512M"},
    "relay": {
        "StateDirectory": "commander-relay",
        "MemoryMax": "512M",
        "ReadWritePaths": "/gillsystems_zfs_pool/AI_storage",
    },
}

# Lines systemd-analyze prints about the machine it runs on rather than the unit.
ENVIRONMENTAL = re.compile(r"Failed to resolve (user|group)|Failed to look up user", re.IGNORECASE)


@dataclass(frozen=True)
class Directive:
    """One `Key=value` line of a unit file."""

    section: str
    key: str
    value: str
    line: int
    above: str  # the line right above it, stripped


def parse_unit(text: str) -> list[Directive]:
    """Every directive in order; systemd's syntax, without line continuations."""
    directives: list[Directive] = []
    section = ""
    lines = text.splitlines()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        assert "=" in line, f"line {number} is neither a section, a comment nor Key=value"
        assert not line.endswith("\\"), f"line {number}: keep each directive on one line"
        key, _, value = line.partition("=")
        above = lines[number - 2].strip() if number > 1 else ""
        directives.append(Directive(section, key.strip(), value.strip(), number, above))
    return directives


def values(directives: list[Directive], section: str, key: str) -> list[str]:
    """Every value given to ``key`` in ``section``, in order."""
    return [d.value for d in directives if d.section == section and d.key == key]


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_every_directive_has_a_comment_right_above_it(unit: str) -> None:
    directives = parse_unit(UNITS[unit].read_text(encoding="utf-8"))
    assert directives
    uncommented = [f"{d.line}: {d.key}" for d in directives if not d.above.startswith("#")]
    assert not uncommented, f"{UNITS[unit].name}: no comment above {uncommented}"


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_the_required_directives_are_there_with_their_values(unit: str) -> None:
    directives = parse_unit(UNITS[unit].read_text(encoding="utf-8"))
    assert {d.section for d in directives} == {"Unit", "Service", "Install"}
    required = {**COMMON, **SPECIFIC[unit]}
    for key, expected in required.items():
        given = values(directives, "Service", key)
        assert given, f"{UNITS[unit].name}: [Service] {key}= is missing"
        if expected is not None:
            assert expected in given, f"{UNITS[unit].name}: {key}={given}, expected {expected}"
    assert values(directives, "Service", "ExecStart") == [EXEC_START[unit]]
    assert values(directives, "Install", "WantedBy") == ["multi-user.target"]


def test_the_node_writes_where_its_state_directory_is() -> None:
    directives = parse_unit(UNITS["node"].read_text(encoding="utf-8"))
    (state,) = values(directives, "Service", "StateDirectory")
    (exec_start,) = values(directives, "Service", "ExecStart")
    assert f"--data-dir /var/lib/{state}" in exec_start


def test_the_relay_waits_for_the_mount_that_holds_its_data() -> None:
    directives = parse_unit(UNITS["relay"].read_text(encoding="utf-8"))
    assert values(directives, "Unit", "RequiresMountsFor") == values(
        directives, "Service", "ReadWritePaths"
    )


def test_the_units_start_the_console_scripts_the_package_installs() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    for command in EXEC_START.values():
        assert Path(command.split()[0]).name in scripts


# --- systemd's own checks --------------------------------------------------------------


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    """The systemd-analyze binary; CI must have it, a developer may lack it."""
    found = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    if not os.access(found, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing in CI: install Debian's 'systemd' package")
        pytest.skip("systemd-analyze is not installed (Debian package 'systemd')")
    return found


def checkable_copy(unit: str, directory: Path) -> Path:
    """The unit under its own name, its ExecStart pointing at an executable that exists.

    `systemd-analyze verify` rejects an ExecStart whose binary is missing, and the
    venv under /opt exists only on an installed machine. Everything else is unchanged.
    """
    source = UNITS[unit]
    binary = EXEC_START[unit].split()[0]
    text = source.read_text(encoding="utf-8")
    assert f"ExecStart={binary} " in text
    copy = directory / source.name
    copy.write_text(text.replace(f"ExecStart={binary} ", f"ExecStart={sys.executable} "))
    return copy


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a systemd tool without colours or a pager, capturing everything it says."""
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def verify(analyze: str, path: Path) -> tuple[int, list[str]]:
    """The exit code and the output lines of `systemd-analyze verify` that matter."""
    result = run([analyze, "verify", "--man=no", "--recursive-errors=no", str(path)], path.parent)
    lines = (result.stdout + result.stderr).splitlines()
    return result.returncode, [ln for ln in lines if ln.strip() and not ENVIRONMENTAL.search(ln)]


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_systemd_analyze_verify_accepts_the_unit(
    unit: str, systemd_analyze: str, tmp_path: Path
) -> None:
    code, complaints = verify(systemd_analyze, checkable_copy(unit, tmp_path))
    assert complaints == []
    assert code == 0


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_systemd_analyze_verify_would_catch_a_bad_directive(
    unit: str, systemd_analyze: str, tmp_path: Path
) -> None:
    """The check above is only worth something if verify really reads our directives."""
    path = checkable_copy(unit, tmp_path)
    text = path.read_text(encoding="utf-8")
    text = text.replace("ProtectSystem=strict", "ProtectSystem=stricter")
    text = text.replace("NoNewPrivileges=true", "NoNewPrivilege=true")
    path.write_text(text, encoding="utf-8")
    _, complaints = verify(systemd_analyze, path)
    said = "\n".join(complaints)
    assert "stricter" in said
    assert "NoNewPrivilege" in said


def systemd_version(analyze: str) -> int:
    """The major version, from the first line `systemd 252 (252.38-1~deb12u1)`."""
    first = run([analyze, "--version"], REPO).stdout.split()
    return int(first[1]) if len(first) > 1 and first[1].isdigit() else 0


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_the_hardening_keeps_the_exposure_level_ok(
    unit: str, systemd_analyze: str, tmp_path: Path
) -> None:
    """`systemd-analyze security` scores 0 (locked down) to 10; below 2.0 is "OK"."""
    if systemd_version(systemd_analyze) < 250:
        pytest.skip("systemd-analyze security --offline needs systemd 250 or newer")
    path = checkable_copy(unit, tmp_path)
    command = [systemd_analyze, "security", "--offline=true", "--threshold=20", str(path)]
    result = run(command, tmp_path)
    assert "Overall exposure level" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout.splitlines()[-1]


# --- the archiver's service and timer ---------------------------------------------------

ARCHIVE_UNITS = {
    name: REPO / f"systemd/commander-relay-archive.{name}" for name in ("service", "timer")
}
ARCHIVE_EXEC = (
    "/opt/commander/.venv/bin/commander-relay archive --config /etc/commander/relay.yaml --verify"
)


@pytest.mark.parametrize("kind", sorted(ARCHIVE_UNITS))
def test_every_archiver_directive_has_a_comment_right_above_it(kind: str) -> None:
    directives = parse_unit(ARCHIVE_UNITS[kind].read_text(encoding="utf-8"))
    assert directives
    assert [d.key for d in directives if not d.above.startswith("#")] == []


def test_the_timer_runs_the_archiver_which_verifies_what_it_wrote() -> None:
    service = parse_unit(ARCHIVE_UNITS["service"].read_text(encoding="utf-8"))
    timer = parse_unit(ARCHIVE_UNITS["timer"].read_text(encoding="utf-8"))
    assert values(service, "Service", "ExecStart") == [ARCHIVE_EXEC]
    assert values(service, "Service", "Type") == ["oneshot"]
    relay = parse_unit(UNITS["relay"].read_text(encoding="utf-8"))
    assert values(service, "Service", "ReadWritePaths") == values(
        relay, "Service", "ReadWritePaths"
    )
    assert values(service, "Service", "User") == values(relay, "Service", "User")
    assert values(timer, "Timer", "Unit") == ["commander-relay-archive.service"]
    assert values(timer, "Timer", "Persistent") == ["true"]


def test_systemd_analyze_verify_accepts_the_archiver_and_its_timer(
    systemd_analyze: str, tmp_path: Path
) -> None:
    binary = ARCHIVE_EXEC.split(maxsplit=1)[0]
    for kind, source in ARCHIVE_UNITS.items():
        text = source.read_text(encoding="utf-8")
        if kind == "service":
            text = text.replace(f"ExecStart={binary} ", f"ExecStart={sys.executable} ")
        (tmp_path / source.name).write_text(text)
    for source in ARCHIVE_UNITS.values():
        code, complaints = verify(systemd_analyze, tmp_path / source.name)
        assert complaints == []
        assert code == 0
