"""The /messages page in a real headless Chromium, against a real relay on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.relay_app.inbox.browser import Browser, login, wait_for
from tests.relay_app.inbox.harness import OPERATOR, PASSWORD, Relay, start_relay
from tests.relay_app.inbox.webhook import Webhook

pytestmark = pytest.mark.browser


def by_css(browser: Browser, css: str) -> list[object]:
    from selenium.webdriver.common.by import By

    return list(browser.driver.find_elements(By.CSS_SELECTOR, css))


def rows(browser: Browser) -> list[str]:
    """The msg_ids of the rows shown, top to bottom."""
    return [r.get_attribute("data-msg-id") for r in by_css(browser, "#rows tr.msg")]  # type: ignore[attr-defined]


def open_inbox(browser: Browser, relay: Relay, path: str = "/messages") -> None:
    login(browser, relay.url + path, OPERATOR, PASSWORD)


def choose(browser: Browser, name: str, value: str) -> None:
    """Pick a filter value; the form submits itself."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    before = browser.driver.current_url
    Select(browser.driver.find_element(By.NAME, name)).select_by_value(value)
    wait_for(lambda: browser.driver.current_url != before, what=f"{name}={value} to load")


@pytest.fixture
def relay_with_webhook(tmp_path: Path) -> Iterator[tuple[Relay, Webhook]]:
    hook = Webhook()
    relay = start_relay(tmp_path / "relay", webhook=hook.url)
    yield relay, hook
    relay.stop()
    hook.stop()


def test_the_page_loads_with_the_newest_report_first(inbox_relay: Relay, browser: Browser) -> None:
    first = inbox_relay.send(content={"text": "older report"}, timestamp=time.time() - 60)
    second = inbox_relay.send(content={"text": "newer report"})
    open_inbox(browser, inbox_relay)
    assert rows(browser) == [second.msg_id, first.msg_id]
    assert "Inbox" in browser.driver.title
    # The script is a file allowed by the CSP: it ran and the live switch is on.
    wait_for(
        lambda: by_css(browser, "#live-status")[0].get_attribute("data-state") == "live",
        what="live status",
    )  # type: ignore[attr-defined]


def test_each_filter_narrows_the_list_and_lives_in_the_url(
    inbox_relay: Relay, browser: Browser
) -> None:
    now = time.time()
    a = inbox_relay.send("node-a", "scout-1", role="recruiter", priority="high", content={"t": "a"})
    b = inbox_relay.send("node-a", "coder-1", role="coder", priority="normal", content={"t": "b"})
    c = inbox_relay.send("node-b", "coder-2", role="coder", priority="critical", content={"t": "c"})
    old = inbox_relay.send("node-b", "coder-2", role="coder", timestamp=now - 3 * 86400)
    open_inbox(browser, inbox_relay)
    assert set(rows(browser)) == {a.msg_id, b.msg_id, c.msg_id, old.msg_id}
    choose(browser, "role", "coder")
    assert set(rows(browser)) == {b.msg_id, c.msg_id, old.msg_id}
    assert "role=coder" in browser.driver.current_url
    choose(browser, "range", "24h")
    assert set(rows(browser)) == {b.msg_id, c.msg_id}
    choose(browser, "node", "node-b")
    assert rows(browser) == [c.msg_id]
    browser.driver.back()  # the previous view comes back from the URL
    wait_for(lambda: set(rows(browser)) == {b.msg_id, c.msg_id}, what="back to role+range")
    browser.driver.get(inbox_relay.url + "/messages")
    choose(browser, "agent", "scout-1")
    assert rows(browser) == [a.msg_id]
    browser.driver.get(inbox_relay.url + "/messages")
    choose(browser, "priority", "critical")
    assert rows(browser) == [c.msg_id]


def test_status_filter_and_absolute_time_range(inbox_relay: Relay, browser: Browser) -> None:
    base = 1_700_000_000.0
    inside = inbox_relay.send(timestamp=base + 30, content={"t": "inside"})
    inbox_relay.send(timestamp=base - 3600, content={"t": "before"})
    inbox_relay.inbox.actions.run("acknowledge", [inside.msg_id], "test")
    open_inbox(browser, inbox_relay, "/messages?from=2023-11-14T22:13:00Z&to=2023-11-14T22:15:00Z")
    assert rows(browser) == [inside.msg_id]
    choose(browser, "status", "unread")
    assert rows(browser) == []
    assert "from=2023-11-14T22%3A13%3A00Z" in browser.driver.current_url


def test_a_search_finds_a_message_by_a_word_inside_its_content(
    inbox_relay: Relay, browser: Browser
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    hit = inbox_relay.send(content={"lead": {"company": "Zanzibar Logistics", "score": 0.9}})
    inbox_relay.send(content={"lead": {"company": "Acme", "score": 0.2}})
    inbox_relay.indexed()
    open_inbox(browser, inbox_relay)
    box = browser.driver.find_element(By.ID, "q")
    box.send_keys("zanzibar")
    box.send_keys(Keys.ENTER)
    wait_for(lambda: "q=zanzibar" in browser.driver.current_url, what="the search")
    assert rows(browser) == [hit.msg_id]
    marks = [m.text for m in browser.driver.find_elements(By.CSS_SELECTOR, "#rows mark")]
    assert marks == ["Zanzibar"]


def test_acknowledge_lowers_the_badge_count(inbox_relay: Relay, browser: Browser) -> None:
    from selenium.webdriver.common.by import By

    env = inbox_relay.send()
    inbox_relay.send()
    open_inbox(browser, inbox_relay)
    assert browser.driver.find_element(By.ID, "unread-count").text == "2"
    button = f'button[value="acknowledge:{env.msg_id}"]'
    browser.driver.find_element(By.CSS_SELECTOR, button).click()
    wait_for(lambda: browser.driver.find_element(By.ID, "unread-count").text == "1", what="badge 1")
    row = browser.driver.find_element(By.CSS_SELECTOR, f'tr[data-msg-id="{env.msg_id}"]')
    assert row.get_attribute("data-status") == "acknowledged"
    assert "1 of 1 message(s) acknowledged" in browser.driver.find_element(By.ID, "flash").text


def test_archive_moves_the_message_to_the_archive_view(
    inbox_relay: Relay, browser: Browser
) -> None:
    from selenium.webdriver.common.by import By

    gone = inbox_relay.send(content={"t": "archive me"})
    stays = inbox_relay.send(content={"t": "keep me"})
    open_inbox(browser, inbox_relay)
    browser.driver.find_element(By.CSS_SELECTOR, f'input[value="{gone.msg_id}"]').click()
    browser.driver.find_element(By.CSS_SELECTOR, '#actions button[value="archive"]').click()
    wait_for(lambda: rows(browser) == [stays.msg_id], what="the archived row to leave")
    browser.driver.find_element(By.LINK_TEXT, "Archive 1").click()
    wait_for(lambda: rows(browser) == [gone.msg_id], what="the archive view")


def test_execute_creates_the_follow_up_visible_through_the_api(
    relay_with_webhook: tuple[Relay, Webhook], browser: Browser
) -> None:
    from selenium.webdriver.common.by import By

    relay, hook = relay_with_webhook
    report = relay.send("node-a", "scout-7", role="recruiter", task_id="task-42")
    open_inbox(browser, relay)
    browser.driver.find_element(By.CSS_SELECTOR, f'button[value="execute:{report.msg_id}"]').click()
    wait_for(
        lambda: "follow-up task(s) created" in browser.driver.find_element(By.ID, "flash").text
    )
    found = (
        relay.node("node-a")
        .get(f"{relay.url}/query/messages", params={"recipient": "scout-7"}, timeout=10)
        .json()["messages"]
    )
    assert len(found) == 1
    assert found[0]["content"]["in_reply_to"] == report.msg_id
    assert found[0]["task_id"] == "task-42"
    wait_for(lambda: len(hook.bodies) == 1, what="the webhook")
    assert hook.bodies[0]["msg_id"] == found[0]["msg_id"]
    # The report's page says who executed it, and links the follow-up.
    browser.driver.get(f"{relay.url}/messages/m/{report.msg_id}")
    history = browser.driver.find_element(By.ID, "audit")
    assert history.text.startswith(f"Executed by {OPERATOR}, ")
    link = history.find_element(By.LINK_TEXT, "open the follow-up")
    assert link.get_attribute("href").endswith(f"/messages/m/{found[0]['msg_id']}")


def test_markup_in_content_shows_as_text(inbox_relay: Relay, browser: Browser) -> None:
    from selenium.webdriver.common.by import By

    evil = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    env = inbox_relay.send(content={"text": evil, "html": "</script><b>bold</b>"})
    inbox_relay.indexed()
    open_inbox(browser, inbox_relay, "/messages?q=script")
    preview = browser.driver.find_element(By.CSS_SELECTOR, "#rows td.preview")
    assert "<script>" in preview.text
    assert by_css(browser, "#rows img") == []
    assert by_css(browser, "#rows b") == []
    browser.driver.get(f"{inbox_relay.url}/messages/m/{env.msg_id}")
    content = browser.driver.find_element(By.ID, "content")
    assert "<img src=x onerror" in content.text
    assert by_css(browser, "#content img") == []
    assert browser.driver.execute_script("return window.pwned === undefined")


def test_a_message_stored_after_the_page_opened_appears_without_reload(
    inbox_relay: Relay, browser: Browser
) -> None:
    inbox_relay.send(content={"t": "before"})
    open_inbox(browser, inbox_relay)
    browser.driver.execute_script("window.sameDocument = true")
    started = time.monotonic()
    fresh = inbox_relay.send(content={"t": "arrived later"})
    wait_for(lambda: rows(browser)[0] == fresh.msg_id, timeout=3, what="the new row")
    assert time.monotonic() - started < 2.5
    assert browser.driver.execute_script("return window.sameDocument === true")


def test_the_pause_switch_holds_new_messages_back(inbox_relay: Relay, browser: Browser) -> None:
    from selenium.webdriver.common.by import By

    inbox_relay.send()
    open_inbox(browser, inbox_relay)
    browser.driver.find_element(By.ID, "live-toggle").click()
    wait_for(lambda: browser.driver.find_element(By.ID, "live-status").text == "paused")
    held = inbox_relay.send(content={"t": "while paused"})
    time.sleep(1.5)
    assert held.msg_id not in rows(browser)
    browser.driver.find_element(By.ID, "live-toggle").click()
    wait_for(lambda: rows(browser)[0] == held.msg_id, timeout=3, what="the held row")


def test_node_status_turns_red_when_reports_stop(inbox_relay: Relay, browser: Browser) -> None:
    from selenium.webdriver.common.by import By

    agent = {"agent_id": "agent-1", "cache_bytes_used": 100, "cache_max_bytes": 1000,
             "outbox_depth": 0, "failed_batches": 0, "oldest_unsynced_age_s": 0,
             "last_sync_at": time.time()}  # fmt: skip
    inbox_relay.report("node-a", [agent])
    open_inbox(browser, inbox_relay, "/messages/nodes")
    card = 'article.node[data-node="node-a"]'
    assert browser.driver.find_element(By.CSS_SELECTOR, card).get_attribute("data-color") == "green"
    inbox_relay.clock.offset = 600  # ten minutes without a report
    wait_for(
        lambda: (
            browser.driver.find_element(By.CSS_SELECTOR, card).get_attribute("data-color") == "red"
        ),
        timeout=4,
        what="node-a to turn red",
    )
    alert = browser.driver.find_element(By.CSS_SELECTOR, '[data-alert="Sync lag"]')
    assert "no report for 10 min" in alert.text


def test_a_refilling_node_shows_it_on_its_card(inbox_relay: Relay, browser: Browser) -> None:
    """A node sending again what a restored relay lacks is yellow and its agent says so."""
    from selenium.webdriver.common.by import By

    agent = {"agent_id": "agent-1", "cache_bytes_used": 100, "cache_max_bytes": 1000,
             "outbox_depth": 300, "failed_batches": 0, "oldest_unsynced_age_s": 0,
             "last_sync_at": time.time(), "refill_state": "refilling", "refilled": 40,
             "unrefillable": 0}  # fmt: skip
    inbox_relay.report("node-a", [agent])
    open_inbox(browser, inbox_relay, "/messages/nodes")
    card = browser.driver.find_element(By.CSS_SELECTOR, 'article.node[data-node="node-a"]')
    assert card.get_attribute("data-color") == "yellow"
    assert "refilling what the relay lacks" in card.text
    cell = card.find_element(By.CSS_SELECTOR, "td.refill")
    assert cell.get_attribute("data-refill") == "refilling"
    assert cell.text == "refilling · 40 sent"


def test_the_embeddable_badge_shows_the_unread_count(inbox_relay: Relay, browser: Browser) -> None:
    from selenium.webdriver.common.by import By

    inbox_relay.send()
    inbox_relay.send()
    browser.driver.get(inbox_relay.url + "/messages/badge")  # no login: the count is public
    badge = "a.commander-unread-badge"
    wait_for(lambda: browser.driver.find_element(By.CSS_SELECTOR, badge).text == "2", what="2")
    assert (
        browser.driver.find_element(By.CSS_SELECTOR, badge)
        .get_attribute("href")
        .endswith("/messages")
    )
