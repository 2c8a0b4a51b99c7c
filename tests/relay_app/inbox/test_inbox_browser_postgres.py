"""The /messages page in a real headless Chromium against a relay on PostgreSQL: the
everyday paths (list, search, acknowledge, archive, live arrival), as on SQLite."""

from __future__ import annotations

import pytest

from tests.relay_app.inbox.test_inbox_browser import (
    test_a_message_stored_after_the_page_opened_appears_without_reload,
    test_a_search_finds_a_message_by_a_word_inside_its_content,
    test_acknowledge_lowers_the_badge_count,
    test_archive_moves_the_message_to_the_archive_view,
    test_the_page_loads_with_the_newest_report_first,
)

STORE_ENGINES = ("postgres",)  # tests/relay_app/conftest.py runs the relay on PostgreSQL
pytestmark = pytest.mark.browser

__all__ = [
    "test_a_message_stored_after_the_page_opened_appears_without_reload",
    "test_a_search_finds_a_message_by_a_word_inside_its_content",
    "test_acknowledge_lowers_the_badge_count",
    "test_archive_moves_the_message_to_the_archive_view",
    "test_the_page_loads_with_the_newest_report_first",
]
