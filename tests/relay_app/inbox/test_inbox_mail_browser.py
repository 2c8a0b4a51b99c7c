"""The inbox as a mail client in a real headless Chromium: keys, phone width, read on open,
counts during live updates, relative times, the badge's iframe."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.relay_app.inbox.browser import Browser, wait_for
from tests.relay_app.inbox.harness import Relay
from tests.relay_app.inbox.test_inbox_browser import by_css, open_inbox, rows

pytestmark = pytest.mark.browser
PHONE = {"width": 375, "height": 812, "deviceScaleFactor": 1, "mobile": True}


def press(browser: Browser, keys: str) -> None:
    """Type keys at whatever has focus (the page, unless a field does)."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser.driver).send_keys(keys).perform()


def status_of(browser: Browser, msg_id: str) -> str | None:
    found = by_css(browser, f'#rows tr[data-msg-id="{msg_id}"]')
    return found[0].get_attribute("data-status") if found else None  # type: ignore[attr-defined]


def cursor_row(browser: Browser) -> str | None:
    found = by_css(browser, "#rows tr.msg.cursor")
    return found[0].get_attribute("data-msg-id") if found else None  # type: ignore[attr-defined]


@pytest.fixture
def phone(browser: Browser) -> Iterator[Browser]:
    """The browser at 375 CSS pixels wide, as a phone; back to the desktop size after."""
    browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    yield browser
    browser.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_keys_move_the_cursor_and_act_on_its_row(inbox_relay: Relay, browser: Browser) -> None:
    now = time.time()
    third, second, first = (
        inbox_relay.send(content={"text": f"report {i}"}, timestamp=now - i) for i in (3, 2, 1)
    )
    open_inbox(browser, inbox_relay)
    assert rows(browser) == [first.msg_id, second.msg_id, third.msg_id]
    press(browser, "jj")
    assert cursor_row(browser) == second.msg_id
    press(browser, "a")
    wait_for(lambda: status_of(browser, second.msg_id) == "acknowledged", what="a acknowledges")
    wait_for(lambda: cursor_row(browser) == second.msg_id, what="the cursor kept after reload")
    assert status_of(browser, first.msg_id) == "unread"
    press(browser, "e")
    wait_for(lambda: second.msg_id not in rows(browser), what="e archives")
    press(browser, "k")
    assert cursor_row(browser) == first.msg_id
    press(browser, "x")
    executed = f'#rows tr[data-msg-id="{first.msg_id}"][data-executed="1"]'
    wait_for(lambda: by_css(browser, executed), what="x executes")
    assert status_of(browser, third.msg_id) == "unread"
    # Typing in the search field types; "/" reaches it and "?" opens the help.
    press(browser, "/")
    press(browser, "jax")
    assert browser.driver.execute_script("return document.activeElement.id") == "q"
    assert by_css(browser, "#q")[0].get_attribute("value") == "jax"  # type: ignore[attr-defined]
    assert cursor_row(browser) == first.msg_id  # the follow-up went above it, the cursor stayed
    browser.driver.execute_script("document.activeElement.blur()")
    press(browser, "?")
    assert browser.driver.execute_script("return document.getElementById('help').open")


def test_the_page_fits_a_375_pixel_phone(inbox_relay: Relay, phone: Browser) -> None:
    long_word = "supercalifragilistic" * 8
    report = inbox_relay.send(
        "node-a", "recruiter-with-a-long-agent-name-001", role="recruiter", task_id="t" * 60,
        content={"title": "Lead " + long_word, "text": "call " + long_word},
    )  # fmt: skip
    inbox_relay.report("node-a", [{"agent_id": "recruiter-with-a-long-agent-name-001",
                                   "cache_bytes_used": 10, "cache_max_bytes": 100}])  # fmt: skip
    for path in ("/messages", f"/messages/m/{report.msg_id}", "/messages/nodes"):
        if path == "/messages":
            open_inbox(phone, inbox_relay)
        else:
            phone.driver.get(inbox_relay.url + path)
        fits = "return [document.documentElement.scrollWidth, window.innerWidth]"
        scroll, inner = phone.driver.execute_script(fits)
        assert inner == 375, path  # a mobile viewport widens to fit what overflows
        assert scroll <= inner, (path, scroll)
        name = path.strip("/").replace("/", "-").split("-m-")[0] or "messages"
        assert phone.screenshot(f"phone-{name}").stat().st_size > 0
    # The sparklines, volume strip, cards and keys need no inline script or style.
    refused = [e for e in phone.driver.get_log("browser") if "Content Security" in e["message"]]
    assert refused == []
    # Each message is a card: its row is a grid, not a table row.
    phone.driver.get(inbox_relay.url + "/messages")
    display = "return getComputedStyle(document.querySelector('#rows tr.msg')).display"
    assert phone.driver.execute_script(display) == "grid"


def test_opening_a_message_marks_it_read(inbox_relay: Relay, browser: Browser) -> None:
    from selenium.webdriver.common.by import By

    env = inbox_relay.send(content={"title": "Open me"})
    open_inbox(browser, inbox_relay)
    assert browser.driver.find_element(By.ID, "unread-count").text == "1"
    press(browser, "j")
    press(browser, "o")
    wait_for(lambda: by_css(browser, "article.detail"), what="the message to open")
    assert browser.driver.find_element(By.ID, "status").text == "acknowledged"
    assert browser.driver.find_element(By.ID, "unread-count").text == "0"
    browser.driver.back()
    browser.driver.refresh()
    wait_for(lambda: status_of(browser, env.msg_id) == "acknowledged", what="the row read")


def test_counts_agree_with_the_rows_while_messages_arrive(
    inbox_relay: Relay, browser: Browser
) -> None:
    inbox_relay.send()
    open_inbox(browser, inbox_relay)
    done = threading.Event()

    def write() -> None:
        for _ in range(12):
            inbox_relay.send()
            time.sleep(0.1)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    read = (
        "return [document.getElementById('summary').textContent.trim(),"
        " document.querySelectorAll('#rows tr.msg').length,"
        " document.getElementById('unread-count').textContent]"
    )
    samples: list[Any] = []
    try:
        while not done.is_set() or not samples or samples[-1][1] < 13:
            samples.append(browser.driver.execute_script(read))  # one task: one state
            assert len(samples) < 400, samples[-3:]
            time.sleep(0.05)
    finally:
        writer.join()
    for summary, count, unread in samples:
        assert summary == f"{count} matching", (summary, count)
        assert unread == str(count), (unread, count)
    assert samples[-1][1] == 13


def test_a_row_read_elsewhere_leaves_the_unread_view_with_its_count(
    inbox_relay: Relay, browser: Browser
) -> None:
    kept, read = inbox_relay.send(), inbox_relay.send()
    open_inbox(browser, inbox_relay, "/messages?status=unread")
    assert set(rows(browser)) == {kept.msg_id, read.msg_id}
    other_tab = inbox_relay.operator()
    other_tab.get(f"{inbox_relay.url}/messages/m/{read.msg_id}", timeout=10)  # opened: read
    wait_for(lambda: rows(browser) == [kept.msg_id], what="the read row to leave")
    assert by_css(browser, "#summary")[0].text == "1 matching"  # type: ignore[attr-defined]
    assert by_css(browser, "#unread-count")[0].text == "1"  # type: ignore[attr-defined]


def test_times_are_relative_with_the_absolute_time_on_hover(
    inbox_relay: Relay, browser: Browser
) -> None:
    inbox_relay.send(timestamp=time.time() - 185)
    open_inbox(browser, inbox_relay)
    shown = by_css(browser, "#rows td.when time")[0]
    assert shown.text == "3 min ago"  # type: ignore[attr-defined]
    local = "return new Date(arguments[0].getAttribute('datetime')).toLocaleString()"
    assert shown.get_attribute("title") == browser.driver.execute_script(local, shown)  # type: ignore[attr-defined]


@contextmanager
def dashboard(html: str) -> Iterator[str]:
    """A page on its own 127.0.0.1 port that serves `html` (the GUI embedding the badge)."""
    body = html.encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_badge_in_an_iframe_has_no_scrollbars(inbox_relay: Relay, browser: Browser) -> None:
    inbox_relay.send()
    page = (
        "<!doctype html><p>Dashboard <iframe id=badge width=48 height=24 frameborder=0"
        f" src='{inbox_relay.url}/messages/badge'></iframe></p>"
    )
    with dashboard(page) as url:  # another origin, as the main GUI is
        browser.driver.get(url)
        badge_without_scrollbars(browser)


def badge_without_scrollbars(browser: Browser) -> None:
    from selenium.webdriver.common.by import By

    browser.driver.switch_to.frame(browser.driver.find_element(By.ID, "badge"))
    try:
        badge = "a.commander-unread-badge"
        wait_for(lambda: browser.driver.find_element(By.CSS_SELECTOR, badge).text == "1")
        sizes = browser.driver.execute_script(
            "const e = document.scrollingElement;"
            " return [e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight,"
            " getComputedStyle(e).overflow]"
        )
        width, seen_w, height, seen_h, overflow = sizes
        assert width <= seen_w, sizes
        assert height <= seen_h, sizes
        assert overflow == "hidden", sizes
    finally:
        browser.driver.switch_to.default_content()
