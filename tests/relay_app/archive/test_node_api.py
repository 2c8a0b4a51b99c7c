"""The node API over hot and archived messages: lookups, walks by `next`, and resends."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from relay_app.archive import segment
from runtime.core.relay_client import RelayTarget
from runtime.node.remote import RemoteReader
from tests.relay_app.archive.tiers import T_OLD, Tier, envelope
from tests.relay_app.helpers import NODE_A, NodeClient, batch
from tests.support import TOKENS


def seed(relay: Tier) -> tuple[list[dict[str, Any]], set[str]]:
    """40 messages of two agents, report times shared by threes; half moved to three
    segments, one archived but still hot. Returns every message as the API showed it
    before the move, and the archived msg_ids."""
    node = relay.node()
    envs = [envelope(T_OLD + i // 3, agent=f"agent-{1 + i % 2}", content={"n": i},
                     task_id=f"task-{i % 5}", recipient=f"agent-{i % 3}", role="coder",
                     priority=("low", "normal", "high")[i % 3])
            for i in range(40)]  # fmt: skip
    assert node.send_batch(batch(envs, "seed")).status_code == 200
    moved = [e.msg_id for i, e in enumerate(envs) if i % 4 in (0, 3)]
    relay.mark_archived(*moved)
    shown = [node.get(f"/query/messages/{e.msg_id}").json() for e in envs]
    assert relay.archiver(segment_rows=7).run_once().moved == len(moved)
    relay.mark_archived(envs[1].msg_id)  # archived, not moved yet: a hot row
    shown[1] = {**shown[1], "status": "archived"}
    return shown, {*moved, envs[1].msg_id}


def walk(client: NodeClient, /, **params: Any) -> tuple[list[str], int]:
    """Every msg_id a walk by `next` yields (4 a page), and the first page's total."""
    first = client.query(archived="include", limit=4, **params)
    page, ids = first, []
    while True:
        ids += [m["msg_id"] for m in page["messages"]]
        if page["next"] is None:
            return ids, first["total"]
        page = client.query(archived="include", limit=4, next=page["next"], **params)


def in_order(shown: list[dict[str, Any]], descending: bool = True) -> list[str]:
    """msg_ids by report time, then as sent (their row ids follow the send order)."""
    ranked = sorted(enumerate(shown), key=lambda p: (p[1]["timestamp"], p[0]), reverse=descending)
    return [m["msg_id"] for _, m in ranked]


def test_a_lookup_finds_an_archived_message_exactly_as_it_was_shown(archive_relay: Tier) -> None:
    shown, archived = seed(archive_relay)
    assert set(archive_relay.archived_ids()) | set(archive_relay.hot_ids()) == {
        m["msg_id"] for m in shown
    }
    node = archive_relay.node()
    for before in shown:
        after = node.get(f"/query/messages/{before['msg_id']}")
        assert after.status_code == 200, after.text
        assert after.json() == before
    assert archived - set(archive_relay.hot_ids()) == set(archive_relay.archived_ids())
    assert node.get("/query/messages/no-such-message").status_code == 404


def test_a_nodes_read_through_finds_an_archived_message(archive_relay: Tier) -> None:
    shown, archived = seed(archive_relay)
    moved = next(m for m in shown if m["msg_id"] in archived and m["msg_id"] not in
                 archive_relay.hot_ids())  # fmt: skip
    # The node's read-through on a cache miss (runtime.node.remote), one session a thread.
    reader = RemoteReader(RelayTarget(archive_relay.url, NODE_A, TOKENS[NODE_A]))
    found = reader.get(moved["msg_id"])
    assert found is not None
    assert (found.msg_id, found.agent_id, found.timestamp, found.content) == (
        moved["msg_id"], moved["agent_id"], moved["timestamp"], moved["content"],
    )  # fmt: skip
    assert reader.get("never-stored") is None


@pytest.mark.parametrize(("order", "frame_rows"), [("desc", 1000), ("asc", 1000), ("desc", 3)])
def test_a_walk_including_the_archive_yields_every_message_once_in_order(
    archive_relay: Tier, order: str, frame_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segment, "FRAME_ROWS", frame_rows)  # 3: frames merged by the heap
    shown, _ = seed(archive_relay)
    node = archive_relay.node()
    ids, total = walk(node, order=order) if order == "asc" else walk(node)
    assert ids == in_order(shown, descending=order == "desc")
    assert total == 40


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_a_walk_goes_on_past_rows_moved_to_the_archive_between_its_pages(
    archive_relay: Tier, order: str
) -> None:
    shown, _ = seed(archive_relay)
    node = archive_relay.node()
    first = node.query(archived="include", limit=8, order=order)
    expected = in_order(shown, descending=order == "desc")
    assert [m["msg_id"] for m in first["messages"]] == expected[:8]
    # The operator archives rows on both sides of the cursor, and they move.
    hot = set(archive_relay.hot_ids())
    archive_relay.mark_archived(*(m for m in expected[6:30:2] if m in hot))
    assert archive_relay.archiver().run_once().moved > 0
    ids = [m["msg_id"] for m in first["messages"]]
    page = first
    while page["next"] is not None:
        page = node.query(archived="include", limit=8, next=page["next"])
        ids += [m["msg_id"] for m in page["messages"]]
    assert ids == expected


def test_a_walk_including_the_archive_keeps_to_its_filters(archive_relay: Tier) -> None:
    shown, archived = seed(archive_relay)
    node = archive_relay.node()
    agent2 = [m for m in shown if m["agent_id"] == "agent-2"]
    assert walk(node, agent="agent-2") == (in_order(agent2), len(agent2))
    ids, total = walk(node, status="archived")
    assert sorted(ids) == sorted(archived)
    assert (len(ids), total) == (len(set(ids)), len(archived))
    window = [m for m in shown if T_OLD + 3 <= m["timestamp"] < T_OLD + 9]
    assert walk(node, since=T_OLD + 3, until=T_OLD + 9) == (in_order(window), len(window))
    unread = [m for m in shown if m["msg_id"] not in archived]
    assert walk(node, status="unread") == (in_order(unread), len(unread))
    assert walk(node, agent=["agent-1", "agent-2"]) == (in_order(shown), 40)
    assert walk(node, agent="agent-3") == ([], 0)
    moved = [m for m in shown if m["msg_id"] in archived - set(archive_relay.hot_ids())]
    for field in ("msg_id", "task", "sender", "recipient", "node", "role", "priority"):
        key = {"task": "task_id", "node": "node_id"}.get(field, field)
        wanted = [m for m in shown if m[key] == moved[0][key]]
        assert walk(node, **{field: moved[0][key]}) == (in_order(wanted), len(wanted)), field


def test_without_archived_include_a_query_shows_only_hot_rows(archive_relay: Tier) -> None:
    shown, _ = seed(archive_relay)
    node = archive_relay.node()
    hot = set(archive_relay.hot_ids())
    for params in ({}, {"archived": "exclude"}):
        page = node.query(limit=100, **params)
        assert {m["msg_id"] for m in page["messages"]} == hot
        assert page["total"] == len(hot) < len(shown)


@pytest.mark.parametrize(
    "params",
    [
        {"archived": "include", "page": "2"},
        {"archived": "bogus"},
        {"archived": ""},
        {"archived": ["include", "include"]},
    ],
)
def test_a_query_the_archive_cannot_answer_is_refused_400(
    archive_relay: Tier, params: dict[str, Any]
) -> None:
    response = archive_relay.node().get("/query/messages", params=params)
    assert response.status_code == 400, response.text


def cursor(**fields: Any) -> str:
    """A `next` cursor as the relay encodes one, with `fields` changed."""
    raw = orjson.dumps({"i": 10, "t": T_OLD + 5, "d": True, "p": 2, **fields})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Hand-made cursors: fields a relay never wrote, each with the answer it must get.
ODD_CURSORS = [
    ({"t": 1e308}, 200),
    ({"t": -1e308}, 200),
    ({"t": 0}, 200),
    ({"i": -(2**63)}, 200),
    ({"i": 2**63 - 1, "t": T_OLD + 100}, 200),
    ({"d": False, "t": T_OLD - 1}, 200),
    ({"t": "1"}, 400),
    ({"t": True}, 400),
    ({"t": [1]}, 400),
    ({"i": 2**63}, 400),
    ({"i": 1.5}, 400),
]


def test_a_hand_made_cursor_answers_a_page_or_400_never_an_error(archive_relay: Tier) -> None:
    seed(archive_relay)
    node = archive_relay.node()
    for fields, status in ODD_CURSORS:
        params = {"archived": "include", "next": cursor(**fields)}
        response = node.get("/query/messages", params=params)
        assert response.status_code == status, (fields, response.text)
    late = node.query(archived="include", next=cursor(t=T_OLD + 100, i=2**63 - 1))
    assert len(late["messages"]) == 40  # past every row: the walk starts at the newest


def test_a_cursor_without_a_report_time_is_refused_rather_than_list_a_message_twice(
    archive_relay: Tier,
) -> None:
    seed(archive_relay)
    node = archive_relay.node()
    first = node.query(archived="include", limit=10)
    at = orjson.loads(base64.urlsafe_b64decode(first["next"] + "=" * (-len(first["next"]) % 4)))
    old = cursor(i=at["i"], t=None)  # as relays wrote cursors before the archive
    response = node.get("/query/messages", params={"archived": "include", "next": old})
    assert response.status_code == 400, response.text
    hot_only = node.get("/query/messages", params={"next": old})
    assert hot_only.status_code == 200, hot_only.text


def test_an_archived_msg_id_sent_again_is_acked_and_not_stored_twice(archive_relay: Tier) -> None:
    node = archive_relay.node()
    envs = [envelope(T_OLD + i) for i in range(3)]
    assert node.send_batch(batch(envs, "first")).status_code == 200
    archive_relay.mark_archived(envs[0].msg_id)
    assert archive_relay.archiver().run_once().moved == 1
    again = node.send(envs[0])
    assert again.status_code == 200, again.text
    assert again.json()["msg_id"] == envs[0].msg_id
    resent = node.send_batch(batch([envs[0], envelope(T_OLD + 9)], "second"))
    assert resent.status_code == 200, resent.text
    places = archive_relay.places()
    assert places[envs[0].msg_id] == 1
    assert envs[0].msg_id not in archive_relay.hot_ids()
    assert sum(places.values()) == 4


def test_an_archived_msg_id_sent_by_another_agent_is_refused_409(archive_relay: Tier) -> None:
    node = archive_relay.node()
    env = envelope(T_OLD)
    assert node.send(env).status_code == 200
    archive_relay.mark_archived(env.msg_id)
    assert archive_relay.archiver().run_once().moved == 1
    other = envelope(T_OLD, agent="agent-2", msg_id=env.msg_id, content={"text": "other"})
    for response in (node.send(other), node.send_batch(batch([other], "b"))):
        assert response.status_code == 409, response.text
    squat = envelope(T_OLD, node="node-b", agent="agent-b1", msg_id=env.msg_id)
    assert archive_relay.node("node-b").send(squat).status_code == 409
    assert archive_relay.places() == {env.msg_id: 1}
    found = node.get(f"/query/messages/{env.msg_id}").json()
    assert found["agent_id"] == "agent-1"
