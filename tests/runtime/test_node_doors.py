"""The door rules on their own: Host names, JSON bodies, scopes and tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.core.loopback import HostRule
from runtime.core.peer_cred import PEER_UID
from runtime.core.token_files import token_sha256, write_sha256_table
from runtime.node.doors import UNAUTHORIZED, WRONG_PEER, AgentTokens, Door, refusal
from runtime.node.serve import DoorError, plan_doors

LOOPBACK = ["localhost", "LocalHost:8002", "localhost.", "localhost:", "127.0.0.1",
            "127.0.0.1.", "127.255.0.9:80", "[::1]", "[::1]:8002", "[0:0:0:0:0:0:0:1]",
            "[::ffff:127.0.0.1]"]  # fmt: skip
NOT_LOOPBACK = ["evil.example", "localhost.evil.example", "foo.localhost", "localhost..",
                "127.0.0.1.nip.io", "127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433", "::1",
                "[::1", "[::2]", "0.0.0.0", "10.0.0.1", "localhost:80:80", "localhost:abc",
                "user@localhost", "", " localhost", "localhost, evil.example"]  # fmt: skip


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts_pass(host: str) -> None:
    assert HostRule().allows(host)


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_other_hosts_do_not(host: str) -> None:
    assert not HostRule().allows(host)


def test_a_missing_host_does_not_pass() -> None:
    assert not HostRule().allows(None)


def test_the_listen_address_passes_when_remote_agents_are_allowed() -> None:
    named = HostRule("192.168.1.5")
    assert named.allows("192.168.1.5:8002")
    assert not named.allows("192.168.1.6")
    anywhere = HostRule("0.0.0.0")
    assert anywhere.allows("10.1.2.3:8002")
    assert anywhere.allows("[fe80::1]")
    assert not anywhere.allows("node1.lan")  # a name could be rebound: literals only


def environ(**headers: str) -> dict[str, Any]:
    return {"CONTENT_LENGTH": "0", **headers}


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [("application/json", True), ("APPLICATION/JSON", True),
     ("application/json; charset=utf-8", True), ('application/json;charset="UTF-8"', True),
     ("application/json; charset=latin-1", False),
     ("text/plain", False), ("application/x-www-form-urlencoded", False), ("", False),
     ("application/json-patch+json", False), ("application/jsonx", False)],
)  # fmt: skip
def test_a_body_must_be_json(content_type: str, accepted: bool) -> None:
    door = Door("agent", "a1")
    request = environ(CONTENT_LENGTH="2", CONTENT_TYPE=content_type)
    found = refusal(door, "agent", "a1", request)
    assert (found is None) == accepted
    assert refusal(door, "agent", "a1", environ(CONTENT_TYPE="text/plain")) is None  # no body


@pytest.mark.parametrize(
    "headers",
    [{"HTTP_ORIGIN": "null"}, {"HTTP_ORIGIN": ""}, {"HTTP_ORIGIN": "http://127.0.0.1:8002"},
     {"HTTP_SEC_FETCH_SITE": "cross-site"}, {"HTTP_SEC_FETCH_SITE": "same-origin"}],
)  # fmt: skip
def test_requests_from_web_pages_are_refused_on_every_door(headers: dict[str, str]) -> None:
    for door in (Door("admin"), Door("agent", "a1")):
        assert refusal(door, "open", None, environ(**headers)) == (403, refusal_text(headers))


def refusal_text(headers: dict[str, str]) -> str:
    found = refusal(Door("admin"), "open", None, environ(**headers))
    assert found is not None
    return found[1]


def test_scopes_by_door(tmp_path: Path) -> None:
    hashes = tmp_path / "hashes.yaml"
    write_sha256_table(hashes, {"a1": token_sha256("t1")})
    tcp = Door("tcp", tokens=AgentTokens(hashes))
    local = environ(HTTP_HOST="127.0.0.1:8002")
    assert refusal(tcp, "open", None, local) is None
    assert refusal(tcp, "agent", "a1", {**local, "HTTP_AUTHORIZATION": "Bearer t1"}) is None
    assert refusal(tcp, "agent", "a1", {**local, "HTTP_AUTHORIZATION": "bearer  t1 "}) is None
    for auth in ("", "Bearer", "Bearer t2", "Basic t1", "t1"):
        assert refusal(tcp, "agent", "a1", {**local, "HTTP_AUTHORIZATION": auth}) == (
            401,
            UNAUTHORIZED,
        )
    assert refusal(tcp, "agent", "ghost", {**local, "HTTP_AUTHORIZATION": "Bearer t1"}) == (
        401,
        UNAUTHORIZED,
    )
    node_wide = refusal(tcp, "node", None, {**local, "HTTP_AUTHORIZATION": "Bearer t1"})
    assert node_wide is not None
    assert node_wide[0] == 403
    socket = Door("agent", "a1")
    assert refusal(socket, "agent", "a1", environ()) is None
    assert refusal(socket, "agent", "a2", environ()) == (403, "this socket serves agent 'a1' only")
    assert refusal(socket, "node", None, environ()) is not None
    assert refusal(Door("admin"), "node", None, environ()) is None
    assert refusal(None, "open", None, environ()) is not None  # no door: nothing is open


def test_an_agent_socket_with_a_unix_user_serves_only_its_uids_on_every_route() -> None:
    named = Door("agent", "a1", peers=frozenset({1000, 0}))
    for uid in (1000, 0):
        assert refusal(named, "agent", "a1", {**environ(), PEER_UID: uid}) is None
    for scope in ("agent", "open"):
        assert refusal(named, scope, "a1", {**environ(), PEER_UID: 1001}) == (403, WRONG_PEER)
    assert refusal(named, "agent", "a1", environ()) == (403, WRONG_PEER)  # no uid known
    assert refusal(Door("agent", "a1"), "agent", "a1", {**environ(), PEER_UID: 1001}) is None


def test_plan_doors_resolves_each_unix_user_and_names_an_unknown_one(tmp_path: Path) -> None:
    tokens = AgentTokens(None)
    plan = plan_doors(tmp_path, ["a1", "a2"], "off", tokens, allow_remote=False,
                      unix_users={"a1": "root"})  # fmt: skip
    assert 0 in plan.peers["a1"]
    assert "a2" not in plan.peers
    with pytest.raises(DoorError, match=r"a2: unix_user 'no-such-user-x' is no user") as unknown:
        plan_doors(tmp_path, ["a2"], "off", tokens, allow_remote=False,
                   unix_users={"a2": "no-such-user-x"})  # fmt: skip
    assert "agents/a2.yaml" in str(unknown.value)


def test_a_token_added_while_the_node_runs_is_taken(tmp_path: Path) -> None:
    hashes = tmp_path / "hashes.yaml"
    tokens = AgentTokens(hashes)  # missing file: no agent has a token yet
    assert not tokens.check("a1", "Bearer t1")
    write_sha256_table(hashes, {"a1": token_sha256("t1")})
    assert tokens.check("a1", "Bearer t1")
    hashes.write_text("a1: not-a-hash\n")  # broken while being edited: the old table stays
    assert tokens.check("a1", "Bearer t1")
