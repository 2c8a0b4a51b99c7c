"""Restore: a moved message back to the hot inbox, acknowledged, searchable, listed once."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from relay_app.archive import reader, segment
from relay_app.archive.restore import restore_op
from relay_app.inbox.search import parse_search
from relay_app.store_inbox import Audit, InboxQuery, ReadBudget
from tests.relay_app.archive.tiers import DAY_S, T_OLD, Tier, envelope, row
from tests.relay_app.helpers import batch

BUDGET = ReadBudget(rows=50, count_cap=1000, rows_s=30.0, count_s=30.0)


class Operator:
    """A logged-in operator of the relay, acting through POST /messages/actions."""

    def __init__(self, relay: Tier) -> None:
        self.relay = relay
        self.session, self.csrf = relay.operator()

    def act(self, action: str, *msg_ids: str) -> str:
        """Run the action; the notice the inbox shows after it."""
        response = self.session.post(
            f"{self.relay.url}/messages/actions",
            data={"csrf": self.csrf, "action": action, "msg_id": list(msg_ids)},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        found = re.search(r"(\d+ of \d+ message\(s\) \w+)", response.text)
        assert found is not None, response.text[:2000]
        return found.group(1)

    def listed(self, **params: Any) -> list[str]:
        """The msg_ids an inbox view lists."""
        html = self.session.get(f"{self.relay.url}/messages", params=params, timeout=10).text
        return re.findall(r'data-msg-id="([^"]+)"', html)


def moved(relay: Tier, count: int = 3) -> list[str]:
    """`count` messages sent, all archived by the operator and moved; their msg_ids."""
    envs = [envelope(T_OLD + i, content={"text": f"wombat report {i}"}) for i in range(count)]
    assert relay.node().send_batch(batch(envs, f"b-{time.time_ns()}")).status_code == 200
    ids = [e.msg_id for e in envs]
    relay.mark_archived(*ids)
    assert relay.archiver().run_once().moved == count
    return ids


def test_restore_brings_a_moved_message_back_acknowledged_and_searchable(
    archive_relay: Tier,
) -> None:
    ids = moved(archive_relay)
    operator = Operator(archive_relay)
    assert operator.listed(q="wombat") == []  # the inbox view holds no archived message
    assert operator.act("restore", ids[0]) == "1 of 1 message(s) restored"
    assert archive_relay.lookup(ids[0])["status"] == "acknowledged"
    assert archive_relay.hot_ids() == [ids[0]]
    assert sorted(archive_relay.archived_ids()) == sorted(ids[1:])
    assert set(archive_relay.places().values()) == {1}
    archive_relay.indexed()
    assert operator.listed(q="wombat") == [ids[0]]
    assert sorted(operator.listed(status="all")) == sorted(ids)
    assert sorted(operator.listed(status="archived")) == sorted(ids[1:])
    counts = archive_relay.store.inbox.status_counts()
    assert (counts["archived"], counts["acknowledged"]) == (2, 1)


def test_a_restored_message_archived_and_moved_again_is_listed_once(archive_relay: Tier) -> None:
    ids = moved(archive_relay)
    operator = Operator(archive_relay)
    operator.act("restore", ids[0])
    assert operator.act("archive", ids[0]) == "1 of 1 message(s) archived"
    for view in ("all", "archived"):
        assert sorted(operator.listed(status=view)) == sorted(ids), view
    assert archive_relay.archiver().run_once().moved == 1
    for view in ("all", "archived"):
        assert sorted(operator.listed(status=view)) == sorted(ids), view
    assert archive_relay.places() == dict.fromkeys(ids, 1)
    assert archive_relay.lookup(ids[0])["status"] == "archived"
    walked = archive_relay.node().query(archived="include", limit=100)
    assert sorted(m["msg_id"] for m in walked["messages"]) == sorted(ids)
    assert walked["total"] == 3
    # And back once more, from its second segment.
    assert operator.act("restore", ids[0]) == "1 of 1 message(s) restored"
    assert archive_relay.hot_ids() == [ids[0]]
    assert archive_relay.places() == dict.fromkeys(ids, 1)


def test_a_restored_message_is_not_moved_again_for_its_age(archive_relay: Tier) -> None:
    ids = moved(archive_relay)
    operator = Operator(archive_relay)
    operator.act("restore", ids[0])
    young = envelope(time.time())
    assert archive_relay.node().send(young).status_code == 200
    later = archive_relay.archiver(after_days=1, clock=lambda: time.time() + 10 * DAY_S)
    assert later.run_once().moved == 1  # the young one, now old; not the restored one
    assert archive_relay.hot_ids() == [ids[0]]


def test_restoring_what_is_not_archived_changes_nothing(archive_relay: Tier) -> None:
    ids = moved(archive_relay, count=1)
    hot = envelope(T_OLD + 50)
    assert archive_relay.node().send(hot).status_code == 200
    operator = Operator(archive_relay)
    assert operator.act("restore", "never-stored", hot.msg_id) == "0 of 2 message(s) restored"
    assert archive_relay.lookup(hot.msg_id)["status"] == "unread"
    assert operator.act("restore", ids[0]) == "1 of 1 message(s) restored"
    assert operator.act("restore", ids[0]) == "0 of 1 message(s) restored"
    assert archive_relay.places() == {ids[0]: 1, hot.msg_id: 1}


def test_restore_needs_the_operators_session_and_token(archive_relay: Tier) -> None:
    ids = moved(archive_relay, count=1)
    url = f"{archive_relay.url}/messages/actions"
    form = {"action": "restore", "msg_id": ids[0]}
    assert requests.post(url, data={**form, "csrf": "x"}, timeout=10).status_code == 403
    session, _ = archive_relay.operator()
    assert session.post(url, data={**form, "csrf": "x"}, timeout=10).status_code == 403
    assert archive_relay.hot_ids() == []


def test_restoring_several_at_once_brings_each_back_acknowledged(archive_relay: Tier) -> None:
    ids = moved(archive_relay, count=4)
    operator = Operator(archive_relay)
    assert operator.act("restore", *ids) == "4 of 4 message(s) restored"
    page = archive_relay.store.inbox.page(InboxQuery(status="acknowledged"), BUDGET)
    assert sorted(r.msg_id for r in page.rows) == sorted(ids)
    assert archive_relay.reader().total() == 0


def restore(tier: Tier, *msg_ids: str) -> None:
    """What the inbox's Restore writes, through the tier's writer."""
    op = restore_op(tier.store, msg_ids, Audit("restore", "operator", time.time()))
    assert op is not None
    tier.writer.write([op], time.time())


def searched(tier: Tier, text: str, status: str = "inbox") -> list[str]:
    """The msg_ids an inbox view's search lists."""
    found = parse_search(text)
    assert found is not None
    page = tier.store.inbox.page(InboxQuery(status=status, search=found), BUDGET)
    return [r.msg_id for r in page.rows]


def test_a_message_moved_before_it_was_indexed_is_found_once_after_restore(tier: Tier) -> None:
    rows = [row(T_OLD + i, content={"text": f"numbat {i}"}) for i in range(4)]
    tier.put(rows)
    tier.mark_archived(rows[0].msg_id, rows[1].msg_id)
    assert tier.archiver().run_once().moved == 2  # the indexer has not run yet
    restore(tier, rows[0].msg_id)
    tier.index_all()
    assert sorted(searched(tier, "numbat")) == sorted(r.msg_id for r in (rows[0], *rows[2:]))
    assert searched(tier, "numbat", "archived") == [rows[1].msg_id]
    assert sorted(searched(tier, "numbat", "all")) == sorted(r.msg_id for r in rows)


def test_a_message_moved_and_restored_twice_is_found_once(tier: Tier) -> None:
    rows = [row(T_OLD + i, content={"text": f"bilby {i}"}) for i in range(3)]
    tier.put(rows)
    tier.index_all()
    for _ in range(2):
        tier.mark_archived(rows[0].msg_id)
        assert tier.archiver().run_once().moved == 1
        assert searched(tier, "bilby 0") == []
        assert searched(tier, "bilby 0", "all") == [rows[0].msg_id]
        restore(tier, rows[0].msg_id)
        tier.index_all()
        assert searched(tier, "bilby 0") == [rows[0].msg_id]
        assert searched(tier, "bilby 0", "all") == [rows[0].msg_id]
    assert sorted(searched(tier, "bilby", "all")) == sorted(r.msg_id for r in rows)


def test_restoring_a_selection_reads_each_frame_once(
    tier: Tier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segment, "FRAME_ROWS", 4)
    rows = [row(T_OLD + i, content={"n": i}) for i in range(30)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows))
    assert tier.archiver().run_once().moved == 30
    reads: list[object] = []

    def counted(path: Path, frame: segment.Frame) -> list[dict[str, Any]]:
        reads.append(frame)
        return segment.read_frame(path, frame)

    monkeypatch.setattr(reader, "read_frame", counted)
    restore(tier, *(r.msg_id for r in rows), "never-stored")
    assert len(reads) == 8  # 30 messages in frames of 4
    assert tier.hot_ids() == [r.msg_id for r in rows]
    for i, r in enumerate(rows):
        found = tier.store.get_message(r.msg_id)
        assert found is not None
        assert (orjson.loads(orjson.dumps(found["content"])), found["status"]) == (
            {"n": i}, "acknowledged",
        )  # fmt: skip
    assert tier.archived_ids() == []
