"""Files relay.yaml names (secrets, certificates): readable by whoever runs the check.

`commander-check-config`, run as the service user, then shows a file the daemon could
not open (root-only after `sudo`, a wrong group) before systemd does. Which files must
exist depends on the machine: told `--relay`, the relay's files and its data directory;
told `--node ID`, that node's entry, agents, token and the CA. Told neither, a file
absent is only listed.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from runtime.core.config import ClusterConfig
from runtime.core.errors import ConfigProblem

# What the relay itself opens at start; the CA file is the nodes'.
RELAY_FILES = ("token_hashes_file", "operator_password_file", "tls_cert_file", "tls_key_file")
EXISTING = "an existing file"
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


def relay_host_problems(config: ClusterConfig) -> list[ConfigProblem]:
    """On the storage host: the data directory is writable and every relay file named exists."""
    relay_yaml = str(Path(config.config_dir or ".") / "relay.yaml")
    problems = []
    data_dir = Path(config.relay.data_dir)
    if not data_dir.is_dir() or not os.access(data_dir, os.W_OK | os.X_OK):
        expected = f"a directory {_user_name()} can write (the relay runs as that user)"
        problems.append(ConfigProblem(relay_yaml, "relay.data_dir", expected, str(data_dir)))
    for key, path in named_files(config).items():
        if key in RELAY_FILES and not path.exists():
            problems.append(
                ConfigProblem(relay_yaml, f"relay.{key}", "an existing file", str(path))
            )
    return problems


def node_host_problems(config: ClusterConfig, node_id: str) -> list[ConfigProblem]:
    """On an agent node: it is in the topology, runs an agent, and has its token and the CA."""
    relay_yaml = str(Path(config.config_dir or ".") / "relay.yaml")
    problems = []
    if node_id not in {n.id for n in config.nodes}:
        problems.append(ConfigProblem(relay_yaml, "nodes[].id", f"an entry for {node_id!r}"))
    if not config.agents_on(node_id):
        agents_dir = str(Path(config.config_dir or ".") / "agents")
        problems.append(ConfigProblem(agents_dir, "node_id", f"an enabled agent on {node_id!r}"))
    token = Path(config.config_dir or ".") / "secrets" / f"{node_id}.token"
    try:
        with token.open("rb"):
            pass
    except OSError as exc:
        expected = f"the node's token, readable by {_user_name()} (commander-relay add-node)"
        problems.append(ConfigProblem(str(token), "(file)", expected, exc.strerror or ""))
    ca_file = named_files(config).get("ca_file")
    if ca_file is not None and not ca_file.exists():
        problems.append(
            ConfigProblem(relay_yaml, "relay.ca_file", "an existing file", str(ca_file))
        )
    return problems
