"""The inbox over hot and archived messages: the Archived and All views, search, counts."""

from __future__ import annotations

import re

import pytest

from relay_app.inbox.search import parse_search
from relay_app.store_inbox import Cursor, InboxPage, InboxQuery, ReadBudget
from relay_app.store_search import SearchQuery
from tests.relay_app.archive.tiers import T_OLD, Tier, envelope, row
from tests.relay_app.helpers import batch
from tests.relay_app.inbox.harness import ODD_SEARCHES

BUDGET = ReadBudget(rows=50, count_cap=1000, rows_s=30.0, count_s=30.0)
TEXTS = ["zanzibar shipment", "acme invoice", "zanzibar logistics report", "weather"]


def seed(tier: Tier) -> dict[str, dict[str, str]]:
    """16 messages of two agents; 6 moved to the archive, 2 archived and still hot.
    Returns msg_id -> {"text", "agent", "where"} ("hot", "archived", "moved")."""
    rows = [row(T_OLD + i // 2, agent=f"agent-{1 + i % 2}", content={"text": TEXTS[i % 4]})
            for i in range(16)]  # fmt: skip
    tier.put(rows)
    moved = [r.msg_id for i, r in enumerate(rows) if i % 3 == 0][:6]
    tier.mark_archived(*moved)
    assert tier.archiver(segment_rows=4).run_once().moved == 6
    hot_archived = [rows[1].msg_id, rows[2].msg_id]
    tier.mark_archived(*hot_archived)
    tier.index_all()
    where = dict.fromkeys(moved, "moved") | dict.fromkeys(hot_archived, "archived")
    return {
        r.msg_id: {"text": TEXTS[i % 4], "agent": f"agent-{1 + i % 2}",
                   "where": where.get(r.msg_id, "hot")}
        for i, r in enumerate(rows)
    }  # fmt: skip


def listed(page: InboxPage) -> list[str]:
    """The msg_ids of a page, in its order."""
    return [r.msg_id for r in page.rows]


def archived(corpus: dict[str, dict[str, str]], **match: str) -> set[str]:
    """The corpus's archived msg_ids (moved or not) whose fields match."""
    return {m for m, f in corpus.items() if f["where"] != "hot"
            and all(f[k] == v for k, v in match.items())}  # fmt: skip


def search(text: str) -> SearchQuery:
    """The search box's query for `text` (something searchable)."""
    found = parse_search(text)
    assert found is not None
    return found


def test_the_archived_view_lists_moved_and_hot_archived_rows_newest_first(tier: Tier) -> None:
    corpus = seed(tier)
    page = tier.store.inbox.page(InboxQuery(status="archived"), BUDGET)
    assert set(listed(page)) == archived(corpus)
    assert len(listed(page)) == 8
    assert page.total == 8
    stamps = [(r.timestamp, r.id) for r in page.rows]
    assert stamps == sorted(stamps, reverse=True)
    assert {r.status for r in page.rows} == {"archived"}
    assert tier.store.inbox.status_counts()["archived"] == 8


def test_the_archived_view_filters_by_agent(tier: Tier) -> None:
    corpus = seed(tier)
    page = tier.store.inbox.page(InboxQuery(status="archived", agent_id="agent-2"), BUDGET)
    assert set(listed(page)) == archived(corpus, agent="agent-2")
    assert page.total == len(archived(corpus, agent="agent-2"))


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("zanzibar", lambda t: "zanzibar" in t),
        ("ZANZIBAR logistics", lambda t: "logistics" in t),
        ('"zanzibar shipment"', lambda t: t == "zanzibar shipment"),
        ('"shipment zanzibar"', lambda t: False),
        ("zanz*", lambda t: "zanzibar" in t),
        ("zanzibar -logistics", lambda t: t == "zanzibar shipment"),
        ("acme OR weather", lambda t: t in ("acme invoice", "weather")),
        ("-zanzibar", lambda t: "zanzibar" not in t),
        ("nothing-like-this", lambda t: False),
    ],
)
def test_the_archived_view_searches_moved_rows_as_the_hot_index_does(
    tier: Tier, text: str, wanted: object
) -> None:
    corpus = seed(tier)
    assert callable(wanted)
    expected = {m for m in archived(corpus) if wanted(corpus[m]["text"])}
    page = tier.store.inbox.page(InboxQuery(status="archived", search=search(text)), BUDGET)
    assert set(listed(page)) == expected
    assert page.total == len(expected)
    # The same search over hot rows answers by the index, with the same meaning.
    hot = tier.store.inbox.page(InboxQuery(status="inbox", search=search(text)), BUDGET)
    assert set(listed(hot)) == {m for m, f in corpus.items()
                                if f["where"] == "hot" and wanted(f["text"])}  # fmt: skip


@pytest.mark.parametrize("text", [None, "zanzibar"])
def test_the_all_view_pages_through_every_message_once(tier: Tier, text: str | None) -> None:
    corpus = seed(tier)
    query = InboxQuery(status="all", search=None if text is None else search(text))
    small = ReadBudget(rows=3, count_cap=1000, rows_s=30.0, count_s=30.0)
    seen: list[str] = []
    while True:
        page = tier.store.inbox.page(query, small)
        seen += listed(page)
        if not page.more:
            break
        last = page.rows[-1]
        query = InboxQuery(status="all", search=query.search,
                           before=Cursor(last.timestamp, last.id))  # fmt: skip
    expected = {m for m, f in corpus.items() if text is None or text in f["text"]}
    assert sorted(seen) == sorted(expected)


def test_a_moved_message_opens_in_the_inbox(tier: Tier) -> None:
    corpus = seed(tier)
    moved = next(m for m, f in corpus.items() if f["where"] == "moved")
    found = tier.store.inbox.message(moved)
    assert found is not None
    assert (found.msg_id, found.status, found.content) == (
        moved, "archived", {"text": corpus[moved]["text"]},
    )  # fmt: skip


def test_the_archived_and_all_views_over_http_show_moved_rows(archive_relay: Tier) -> None:
    envs = [envelope(T_OLD + i, content={"text": f"quokka {i}"}) for i in range(4)]
    assert archive_relay.node().send_batch(batch(envs, "seed")).status_code == 200
    archive_relay.mark_archived(envs[0].msg_id, envs[1].msg_id)
    assert archive_relay.archiver().run_once().moved == 2
    archive_relay.indexed()
    operator, _ = archive_relay.operator()
    url = f"{archive_relay.url}/messages"
    html = operator.get(url, params={"status": "archived"}, timeout=10).text
    assert set(shown(html)) == {envs[0].msg_id, envs[1].msg_id}
    html = operator.get(url, params={"status": "all", "q": "quokka"}, timeout=10).text
    assert sorted(shown(html)) == sorted(e.msg_id for e in envs)
    html = operator.get(url, timeout=10).text
    assert set(shown(html)) == {envs[2].msg_id, envs[3].msg_id}
    detail = operator.get(f"{url}/m/{envs[0].msg_id}", timeout=10)
    assert detail.status_code == 200
    assert "quokka 0" in detail.text
    updates = operator.get(
        f"{archive_relay.url}/messages/api/updates",
        params={"status": "archived", "after_id": 0},
        timeout=10,
    )
    assert updates.status_code == 200, updates.text


def shown(html: str) -> list[str]:
    """The msg_ids an inbox page lists."""
    return re.findall(r'data-msg-id="([^"]+)"', html)


@pytest.mark.parametrize("status", ["all", "archived"])
def test_a_view_walked_older_then_newer_shows_each_row_once_when_reports_arrive_late(
    tier: Tier, status: str
) -> None:
    # Report times out of arrival order: the (timestamp, id) keyset must merge both tiers.
    rows = [row(T_OLD + (i * 7) % 20, content={"n": i}) for i in range(20)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows[::2]))
    assert tier.archiver(segment_rows=3).run_once().moved == 10
    tier.mark_archived(rows[1].msg_id)
    small = ReadBudget(rows=3, count_cap=1000, rows_s=30.0, count_s=30.0)
    pages = [tier.store.inbox.page(InboxQuery(status=status), small)]
    while pages[-1].more:
        last = pages[-1].rows[-1]
        older = InboxQuery(status=status, before=Cursor(last.timestamp, last.id))
        pages.append(tier.store.inbox.page(older, small))
    down = [r for p in pages for r in p.rows]
    keys = [(r.timestamp, r.id) for r in down]
    assert keys == sorted(keys, reverse=True)
    wanted = {r.msg_id for i, r in enumerate(rows) if status == "all" or i % 2 == 0 or i == 1}
    assert sorted(r.msg_id for r in down) == sorted(wanted)
    # And back up from the oldest, a page newer at a time, each page listed newest first.
    up: list[str] = []
    first = down[-1]
    cursor = Cursor(first.timestamp, first.id)
    while True:
        page = tier.store.inbox.page(InboxQuery(status=status, after=cursor), small)
        if not page.rows:
            break
        up = [r.msg_id for r in page.rows] + up
        cursor = Cursor(page.rows[0].timestamp, page.rows[0].id)
        if not page.more:
            break
    assert up == [r.msg_id for r in down[:-1]]


# Contents whose words a Python matcher could cut differently from the index.
PARITY_CONTENTS = [
    {"text": "Zanzibar Logistics shipped 42 crates"},
    {"company": "ACME", "email": "ops@acme.example", "n": 42, "ok": True},
    {"nested": {"deep": ["snake_case_name", "camelCaseName", "e-mail"]}},
    {"text": "Café Ökonomie naïve façade 東京 über"},
    {"text": "version 1.2.3-rc1 at 12:30 (UTC)"},
    {"key_only": None, "zanzibar": 1.5},
    {"text": "zanzibarlogistics prefixes zan zanz"},
    {"text": "x" * 70_000 + " beyondthelimit"},  # past what the index holds
]
PARITY_SEARCHES = [
    "zanzibar", "zanz*", "logistics zanzibar", '"zanzibar logistics"', "42", "true",
    "acme", "ops", "example", "snake", "snake_case_name", "camelcasename", "e-mail",
    "cafe", "café", "OKONOMIE", "東京", "1.2.3", "rc1", "12:30", "utc", "1.5", "key_only",
    "-zanzibar", "acme OR café", "zanzibar -crates", "beyondthelimit", "über*", "x*",
    *ODD_SEARCHES,
]  # fmt: skip


def test_a_search_finds_the_same_contents_archived_as_hot(tier: Tier) -> None:
    moved = [row(T_OLD + i, agent="agent-1", content=c) for i, c in enumerate(PARITY_CONTENTS)]
    hot = [row(T_OLD + i, agent="agent-2", content=c) for i, c in enumerate(PARITY_CONTENTS)]
    tier.put(moved + hot)
    tier.mark_archived(*(r.msg_id for r in moved))
    assert tier.archiver().run_once().moved == len(moved)
    tier.index_all()
    index = {r.msg_id: i for rows in (moved, hot) for i, r in enumerate(rows)}
    differ, hits = {}, {}
    for text in PARITY_SEARCHES:
        found = parse_search(text)
        if found is None:
            continue
        in_hot = tier.store.inbox.page(InboxQuery(status="inbox", search=found), BUDGET)
        in_archive = tier.store.inbox.page(InboxQuery(status="archived", search=found), BUDGET)
        hot_set = sorted(index[m] for m in listed(in_hot))
        archived_set = sorted(index[m] for m in listed(in_archive))
        hits[text] = archived_set
        if hot_set != archived_set:
            differ[text] = (hot_set, archived_set)
    assert differ == {}
    assert (hits["zanzibar"], hits["e-mail"], hits["東京"], hits["42"]) == ([0], [2], [3], [0, 1])


@pytest.mark.parametrize("status", ["archived", "all"])
def test_live_updates_keep_rows_that_moved_to_the_archive_while_shown(
    tier: Tier, status: str
) -> None:
    rows = [row(T_OLD + i) for i in range(6)]
    tier.put(rows)
    tier.mark_archived(*(r.msg_id for r in rows[:4]))
    query = InboxQuery(status=status)
    page = tier.store.inbox.page(query, BUDGET)
    shown = listed(page)
    assert tier.archiver().run_once().moved == 4  # the archiver runs while they are shown
    update = tier.store.inbox.arrivals(query, page.watermark, shown, BUDGET)
    assert update.rows == []
    assert {m: update.statuses.get(m) for m in shown} == {
        r.msg_id: "archived" if i < 4 else "unread" for i, r in enumerate(rows) if r.msg_id in shown
    }
    assert update.total == len(shown)


def test_a_search_for_emoji_or_compatibility_characters_agrees_archived_and_hot(
    tier: Tier,
) -> None:
    # FTS5's unicode61 keeps a newer emoji inside a word, and folds neither ligatures
    # nor superscripts: Python's \w runs and NFKD would cut and fold all three.
    contents = [{"text": "kangaroo🦘hop"}, {"text": "ﬁle x²"}]
    moved = [row(T_OLD + i, agent="agent-1", content=c) for i, c in enumerate(contents)]
    hot = [row(T_OLD + i, agent="agent-2", content=c) for i, c in enumerate(contents)]
    tier.put(moved + hot)
    tier.mark_archived(*(r.msg_id for r in moved))
    assert tier.archiver().run_once().moved == 2
    tier.index_all()
    index = {r.msg_id: i for rows in (moved, hot) for i, r in enumerate(rows)}
    found = {}
    for text in ("kangaroo", "kangaroo🦘hop", "file", "ﬁle", "x2", "x²", "x"):
        in_hot = tier.store.inbox.page(InboxQuery(status="inbox", search=search(text)), BUDGET)
        in_archive = tier.store.inbox.page(
            InboxQuery(status="archived", search=search(text)), BUDGET
        )
        found[text] = sorted(index[m] for m in listed(in_archive))
        assert sorted(index[m] for m in listed(in_hot)) == found[text], text
    assert found == {"kangaroo": [], "kangaroo🦘hop": [], "file": [], "ﬁle": [1], "x2": [],
                     "x²": [1], "x": []}  # fmt: skip
