"""The browser tests' own rules: skip with a reason locally, fail under CI=true."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.relay_app.inbox import browser


def test_a_missing_browser_skips_with_a_reason_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="chromium-driver"):
        browser.require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true requires"):
        browser.require_browser()
