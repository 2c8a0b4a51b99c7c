"""Config loading: relay.yaml and agents/*.yaml keys, defaults, sizing and every error class."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.core.check_config import main as check_config_main
from runtime.core.config import ClusterConfig, load_config
from runtime.core.config_files import unreadable_files
from runtime.core.errors import ConfigError
from runtime.core.sizing import MIB, cache_bytes

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"

AGENT_OK = """\
agent_id: "{agent_id}"
role: "{role}"
node_id: "node-a"
"""

TOPOLOGY_OK = """\
nodes:
  - id: "htpc"
    host: "127.0.0.1"
    port: 8001
    role: "storage"
  - id: "node-a"
    host: "127.0.0.1"
    port: 8002
"""


def write_dir(tmp_path: Path, agents: dict[str, str], topology: str = TOPOLOGY_OK) -> Path:
    (tmp_path / "agents").mkdir()
    (tmp_path / "relay.yaml").write_text(topology)
    for name, text in agents.items():
        (tmp_path / "agents" / f"{name}.yaml").write_text(text)
    return tmp_path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


def test_the_example_config_in_the_repository_loads() -> None:
    config = load_config(REPO_CONFIG)
    recruiter = next(a for a in config.agents if a.agent_id == "recruiter-001")
    assert recruiter.cache_max_bytes == 2147483648
    assert recruiter.sync.batch_size == 500
    assert recruiter.sync.retry_backoff_base == 2
    storage = config.storage_node()
    assert storage is not None
    assert storage.port == 8001


@pytest.mark.parametrize(
    ("role", "tokens", "total_mib"),
    [
        ("commander", None, 116),
        ("recruiter", None, 2112),  # ~2.06 GiB
        ("reasoner", None, 628),
        ("coder", None, 1120),  # ~1.09 GiB
        ("synthesizer", None, 324),
        ("reasoner", 64_000, 564),
    ],
)
def test_each_role_gets_its_cache_size(role: str, tokens: int | None, total_mib: int) -> None:
    assert cache_bytes(role, tokens) == total_mib * MIB


def test_defaults_fill_missing_sections_and_max_bytes_overrides_the_formula(tmp_path: Path) -> None:
    text = AGENT_OK.format(agent_id="c1", role="commander")
    write_dir(
        tmp_path,
        {
            "c1": text,
            "c2": AGENT_OK.format(agent_id="c2", role="coder") + "cache:\n  max_bytes: 1234\n",
        },
    )
    config = load_config(tmp_path)
    c1, c2 = config.agents
    assert c1.cache_max_bytes == 116 * MIB
    assert c1.sync.interval_seconds == 5.0
    assert c1.cache.retention_days == 30.0
    assert c2.cache_max_bytes == 1234


@pytest.mark.parametrize("user", ["recruiter", "svc-agent.2", "_ci", "host$", "u" * 32])
def test_an_agent_file_may_name_its_unix_user(tmp_path: Path, user: str) -> None:
    named = AGENT_OK.format(agent_id="c1", role="coder") + f'unix_user: "{user}"\n'
    write_dir(tmp_path, {"c1": named, "c2": AGENT_OK.format(agent_id="c2", role="coder")})
    c1, c2 = load_config(tmp_path).agents
    assert c1.unix_user == user
    assert c2.unix_user is None  # absent: the socket's mode alone decides


@pytest.mark.parametrize(
    "user", ["1000", "u" * 33, "", "-rf", "a b", "a:b", "a/b", ".hidden", "né", "x\\n"]
)
def test_a_unix_user_that_is_no_user_name_is_a_problem_naming_the_key(
    tmp_path: Path, user: str
) -> None:
    named = AGENT_OK.format(agent_id="c1", role="coder") + f'unix_user: "{user}"\n'
    write_dir(tmp_path, {"c1": named})
    assert [p for p in problems_of(tmp_path) if "c1.yaml: unix_user: expected a Unix" in p]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("agent_id: c1\nnode_id: n\n", "c1.yaml: role: expected a value (required)"),
        ("agent_id: c1\nrole: pilot\nnode_id: n\n", "c1.yaml: role: expected one of"),
        ('agent_id: "../x"\nrole: coder\nnode_id: n\n', "agent_id: expected an id"),
        ("agent_id: other\nrole: coder\nnode_id: n\n", "agent_id: expected 'c1' (the file name)"),
        (
            "agent_id: c1\nrole: coder\nnode_id: n\ncache:\n  max_bytes: -5\n",
            "cache.max_bytes: expected a positive integer, got -5",
        ),
        (
            "agent_id: c1\nrole: coder\nnode_id: n\ncache:\n  max_bytes: big\n",
            "cache.max_bytes: expected a positive integer, got 'big'",
        ),
        ("agent_id: c1\nrole: coder\nnode_id: n\nsync: 5\n", "sync: expected a mapping"),
        (
            "agent_id: c1\nrole: coder\nnode_id: n\nsync:\n  retry_backoff_base: 0.5\n",
            "sync.retry_backoff_base: expected a number >= 1",
        ),
        (
            "agent_id: c1\nrole: coder\nnode_id: n\nenabled: maybe\n",
            "enabled: expected true or false",
        ),
        ("agent_id: c1\nrole: coder\nnode_id: n\nunix_user: 1000\n", "unix_user: expected a Unix"),
        ("agent_id: c1\nrole: [coder\n", "c1.yaml: line 2: expected valid YAML"),
        ("- just\n- a list\n", "c1.yaml: (top level): expected a mapping"),
    ],
)
def test_each_bad_agent_file_gets_an_error_naming_file_key_and_expectation(
    tmp_path: Path, text: str, expected: str
) -> None:
    write_dir(tmp_path, {"c1": text})
    assert any(expected in p for p in problems_of(tmp_path)), problems_of(tmp_path)


@pytest.mark.parametrize(
    ("topology", "expected"),
    [
        ("nodes: []\n", "relay.yaml: nodes: expected a non-empty list"),
        ("nodes:\n  - id: h\n    host: x\n    port: 99999\n", "nodes[0].port: expected a port"),
        ("nodes:\n  - host: x\n    port: 1\n", "nodes[0].id: expected a value (required)"),
        (
            "nodes:\n  - id: h\n    host: x\n    port: 1\n    token_sha256: secret\n",
            "nodes[0].token_sha256: expected 64 lowercase hex digits",
        ),
        (
            "nodes:\n  - id: h\n    host: x\n    port: 1\n  - id: h\n    host: y\n    port: 2\n",
            "nodes[].id: expected unique values, got h",
        ),
        (TOPOLOGY_OK + "relay:\n  colour: blue\n", "relay.colour: expected one of"),
        (TOPOLOGY_OK + "relay:\n  synchronous: SOMETIMES\n", "relay.synchronous: expected FULL"),
        (TOPOLOGY_OK + "relay:\n  store: mysql://db/x\n", "relay.store: expected sqlite or a"),
        (TOPOLOGY_OK + "relay:\n  write_timeout_s: 0\n", "relay.write_timeout_s: expected a"),
    ],
)
def test_each_bad_topology_gets_an_error_naming_the_key(
    tmp_path: Path, topology: str, expected: str
) -> None:
    write_dir(tmp_path, {}, topology)
    assert any(expected in p for p in problems_of(tmp_path)), problems_of(tmp_path)


STRICT_AGENT = AGENT_OK.format(agent_id="c1", role="coder")
KNOWN = "expected a known key"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sync:\n  retry_maxx: 3\n", f"sync.retry_maxx: {KNOWN} (did you mean 'retry_max'?"),
        ("cache:\n  compresion: no\n", f"cache.compresion: {KNOWN} (did you mean 'compression'?"),
        ("enable: false\n", f"c1.yaml: enable: {KNOWN} (did you mean 'enabled'?"),
        ("colour: blue\n", f"colour: {KNOWN} (one of agent_id, cache,"),
    ],
)
def test_an_unknown_key_in_an_agent_file_is_a_problem_naming_the_likely_one(
    tmp_path: Path, text: str, expected: str
) -> None:
    write_dir(tmp_path, {"c1": STRICT_AGENT + text})
    assert any(expected in p for p in problems_of(tmp_path)), problems_of(tmp_path)


@pytest.mark.parametrize(
    ("topology", "expected"),
    [
        ("    sync_enable: no\n", f"nodes[1].sync_enable: {KNOWN} (did you mean 'sync_enabled'?"),
        ("relays:\n  port: 1\n", f"relay.yaml: relays: {KNOWN} (did you mean 'relay'?"),
    ],
)
def test_an_unknown_key_in_relay_yaml_is_a_problem_at_every_level(
    tmp_path: Path, topology: str, expected: str
) -> None:
    write_dir(tmp_path, {"c1": STRICT_AGENT}, TOPOLOGY_OK + topology)
    assert any(expected in p for p in problems_of(tmp_path)), problems_of(tmp_path)


def test_an_agent_naming_no_node_of_relay_yaml_is_refused_by_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lost = STRICT_AGENT.replace('"node-a"', '"node-z"').replace("c1", "c2")
    write_dir(tmp_path, {"c1": STRICT_AGENT, "c2": lost})
    assert check_config_main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert (
        f"{tmp_path / 'agents' / 'c2.yaml'}: node_id: expected the id of a node in relay.yaml"
        " (htpc, node-a), got 'node-z'"
    ) in err
    assert "1 problem in" in err


def test_a_missing_relay_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    assert any("relay.yaml: (file): expected a readable file" in p for p in problems_of(tmp_path))


def test_check_config_reports_every_problem_at_once_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dir(
        tmp_path,
        {
            "c1": "agent_id: c1\nrole: pilot\nnode_id: n\n",
            "c2": "agent_id: c2\nrole: coder\nnode_id: n\ncache:\n  max_bytes: x\n",
        },
        "nodes: 3\n",
    )
    assert check_config_main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "c1.yaml: role" in err
    assert "c2.yaml: cache.max_bytes" in err
    assert "relay.yaml: nodes" in err
    assert "3 problems" in err


def test_check_config_accepts_the_example_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config_main([str(REPO_CONFIG)]) == 0
    assert "recruiter-001" in capsys.readouterr().out


def test_config_copied_elsewhere_still_loads(tmp_path: Path) -> None:
    shutil.copytree(REPO_CONFIG, tmp_path / "cfg")
    assert len(load_config(tmp_path / "cfg").agents) == 3


def test_check_config_names_a_secret_file_the_checking_user_cannot_read(
    open_tmp_path: Path,
) -> None:
    if os.geteuid() != 0:  # CI runs as root, so there it must run
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true requires this test to run: it needs root")
        pytest.skip("needs root to run the check as another user")
    tmp_path = open_tmp_path
    topology = TOPOLOGY_OK + "relay:\n  operator_password_file: secret.hash\n"
    write_dir(tmp_path, {"c1": AGENT_OK.format(agent_id="c1", role="commander")}, topology)
    secret = tmp_path / "secret.hash"
    secret.write_text("scrypt$...")
    secret.chmod(0o600)  # what `sudo` leaves: root's alone
    config = load_config(tmp_path)
    assert [str(p) for p in problems_as("nobody", config)] == [
        f"{tmp_path / 'relay.yaml'}: relay.operator_password_file: expected a file nobody can"
        f" read, got {secret}: Permission denied"
    ]
    secret.chmod(0o644)
    assert problems_as("nobody", config) == []


@pytest.fixture
def open_tmp_path() -> Iterator[Path]:
    """A temporary directory other users may traverse (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def problems_as(user: str, config: ClusterConfig) -> list[str]:
    """`unreadable_files` run in a child process as `user`."""
    account = pwd.getpwnam(user)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the user, check, report, leave at once
        try:
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
            os.write(write, "\n".join(str(p) for p in unreadable_files(config)[0]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        text = answer.read().decode()
    os.waitpid(pid, 0)
    return text.splitlines()


def test_check_config_lists_named_files_absent_from_this_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Both keys: one without the other is a problem of its own (the relay could not serve).
    topology = TOPOLOGY_OK + "relay:\n  tls_cert_file: relay.pem\n  tls_key_file: relay.key\n"
    write_dir(tmp_path, {"c1": AGENT_OK.format(agent_id="c1", role="commander")}, topology)
    assert check_config_main([str(tmp_path)]) == 0
    absent = f"not on this machine: relay.tls_key_file: {tmp_path / 'relay.key'}"
    assert absent in capsys.readouterr().out


def test_check_config_for_the_relay_needs_its_data_dir_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    topology = TOPOLOGY_OK + f"relay:\n  data_dir: {data}\n  operator_password_file: pw.hash\n"
    write_dir(tmp_path, {"c1": AGENT_OK.format(agent_id="c1", role="commander")}, topology)
    assert check_config_main([str(tmp_path)]) == 0  # what the machine runs was not said
    assert check_config_main([str(tmp_path), "--relay"]) == 1
    err = capsys.readouterr().err
    assert "relay.data_dir: expected a directory" in err
    missing = f"relay.operator_password_file: expected an existing file, got {tmp_path}/pw.hash"
    assert missing in err
    data.mkdir()
    assert check_config_main([str(tmp_path), "--relay"]) == 1
    assert "relay.data_dir" not in capsys.readouterr().err


def test_check_config_for_a_node_needs_its_entry_agents_and_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dir(tmp_path, {"c1": AGENT_OK.format(agent_id="c1", role="commander")})
    assert check_config_main([str(tmp_path), "--node", "node-a"]) == 1
    assert "node-a.token: (file): expected the node's token" in capsys.readouterr().err
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "node-a.token").write_text("t")
    assert check_config_main([str(tmp_path), "--node", "node-a"]) == 0
    assert check_config_main([str(tmp_path), "--node", "node-z"]) == 1
    err = capsys.readouterr().err
    assert "nodes[].id: expected an entry for 'node-z'" in err
    assert "an enabled agent on 'node-z'" in err
