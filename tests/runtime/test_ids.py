"""One id rule: every door that takes an id (config, envelope, relay, token files, CLIs) agrees.

Hypothesis draws strings near the rule's edges (its alphabet, the characters just outside
it, lengths around the limit); each door accepts exactly what `is_id` accepts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_app import cli as relay_cli
from relay_app.errors import BadRequest
from relay_app.validate import check_id
from runtime.core.config import parse_node
from runtime.core.envelope import MessageEnvelope
from runtime.core.errors import ConfigError, ConfigProblem, InvalidMessage
from runtime.core.ids import ID_RULE, ID_SCHEMA_PATTERN, MAX_ID, is_id
from runtime.core.token_files import read_sha256_table, token_sha256
from runtime.node import cli as node_cli

REPO = Path(__file__).resolve().parents[2]
ALPHABET = "aZ09._:-" + "/\\ \n\t\x00é$@+"
IDS = st.text(ALPHABET, max_size=6) | st.builds(
    lambda head, n, tail: head + "a" * n + tail,
    st.sampled_from(["", "a", "-", "."]),
    st.integers(MAX_ID - 3, MAX_ID + 1),
    st.sampled_from(["", "a", "\n", "/"]),
)


def config_accepts(value: str) -> bool:
    problems: list[ConfigProblem] = []
    parse_node({"id": value, "host": "h", "port": 1}, 0, "relay.yaml", problems)
    return not problems


def envelope_refusal(value: str) -> str | None:
    env = MessageEnvelope.new(agent_id="a", node_id="n", content=1)
    try:
        MessageEnvelope(value, env.timestamp, value, value, 1).checked()
    except InvalidMessage as exc:
        return exc.reason
    return None


def relay_accepts(value: str) -> bool:
    try:
        check_id("agent_id", value)
    except BadRequest:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(value=IDS)
def test_every_door_takes_exactly_the_ids_is_id_takes(value: str) -> None:
    expected = is_id(value)
    assert config_accepts(value) is expected
    assert envelope_refusal(value) == (None if expected else ID_RULE)
    assert relay_accepts(value) is expected
    # JSON Schema's `$` has no trailing-newline case; Python's `re` has.
    if not value.endswith("\n"):
        assert (re.search(ID_SCHEMA_PATTERN, value) is not None) is expected


@settings(max_examples=100, deadline=None)
@given(value=IDS)
def test_a_token_hashes_file_takes_exactly_the_ids_is_id_takes(
    tmp_path_factory: pytest.TempPathFactory, value: str
) -> None:
    path = tmp_path_factory.mktemp("hashes") / "hashes.yaml"
    path.write_text(yaml.safe_dump({value: token_sha256("t")}), encoding="utf-8")
    try:
        read_sha256_table(path)
    except ConfigError:
        assert not is_id(value)
    else:
        assert is_id(value)


@pytest.mark.parametrize(
    "command",
    [
        ["add-node", "--token-hashes-file", "{dir}/h.yaml", "--token-file", "{dir}/t"],
        ["tls", "issue", "--dir", "{dir}", "--host", "127.0.0.1"],
    ],
    ids=["add-node", "tls-issue"],
)
@pytest.mark.parametrize("bad", ["-x", "../evil", "a" * (MAX_ID + 1), "a b"])
def test_the_relay_commands_refuse_a_bad_name_with_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], bad: str
) -> None:
    argv = [part.format(dir=tmp_path) for part in command]
    assert relay_cli.main([*argv, "--", bad]) == 2  # `--`: "-x" is a name, not an option
    assert ID_RULE in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("bad", ["-x", "../evil", "a" * (MAX_ID + 1)])
def test_agent_token_refuses_a_bad_agent_id_with_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    argv = ["agent-token", "--token-file", str(tmp_path / "t"), "--config", str(tmp_path)]
    assert node_cli.main([*argv, "--", bad]) == 2
    assert ID_RULE in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_longest_id_is_taken_by_the_commands(tmp_path: Path) -> None:
    longest = "a" * MAX_ID
    argv = ["add-node", longest, "--token-hashes-file", str(tmp_path / "h.yaml")]
    assert relay_cli.main([*argv, "--token-file", str(tmp_path / "t")]) == 0
    assert longest in yaml.safe_load((tmp_path / "h.yaml").read_text())


def test_no_module_but_the_kernels_ids_spells_out_the_id_pattern() -> None:
    spelled = re.compile(r"A-Za-z0-9\]\[A-Za-z0-9\._:-\]|\._:-\]")
    holders = [
        str(path.relative_to(REPO))
        for package in ("runtime", "actors", "relay_app")
        for path in (REPO / package).rglob("*.py")
        if spelled.search(path.read_text(encoding="utf-8"))
    ]
    assert holders == ["runtime/core/ids.py"]
