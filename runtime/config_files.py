"""Files relay.yaml names (secrets, certificates): readable by whoever runs the check.

`commander-check-config`, run as the service user, then shows a file the daemon could
not open (root-only after `sudo`, a wrong group) before systemd does. A file absent is
not a problem here: relay-only files are absent on nodes, and the relay refuses to
start without the ones it needs.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from runtime.config import ClusterConfig
from runtime.errors import ConfigProblem

NAMED_FILES = (
    "token_hashes_file",
    "operator_password_file",
    "tls_cert_file",
    "tls_key_file",
    "ca_file",
)


def config_path(config: ClusterConfig, name: str) -> Path:
    """A path from relay.yaml: `~` expanded, a relative one taken from relay.yaml's directory."""
    path = Path(name).expanduser()
    return path if path.is_absolute() else Path(config.config_dir or ".") / path


def named_files(config: ClusterConfig) -> dict[str, Path]:
    """Each `relay.<key>` that names a file, with the path it resolves to."""
    named = {key: getattr(config.relay, key) for key in NAMED_FILES}
    return {key: config_path(config, value) for key, value in named.items() if value}


def unreadable_files(config: ClusterConfig) -> tuple[list[ConfigProblem], list[str]]:
    """(files this user cannot read, files absent from this machine), both by relay.<key>."""
    relay_yaml = str(Path(config.config_dir or ".") / "relay.yaml")
    user = _user_name()
    problems: list[ConfigProblem] = []
    absent: list[str] = []
    for key, path in named_files(config).items():
        try:
            with path.open("rb"):
                pass
        except FileNotFoundError:
            absent.append(f"relay.{key}: {path}")
        except OSError as exc:
            expected = f"a file {user} can read"
            problems.append(ConfigProblem(relay_yaml, f"relay.{key}", expected,
                                          f"{path}: {exc.strerror}"))  # fmt: skip
    return problems, absent


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"
