"""The password verifier: one hashing thread, a bounded queue, busy answered at once."""

from __future__ import annotations

import threading
import time

import pytest

from relay_app.inbox.verifier import PasswordVerifier, VerifierBusy
from tests.relay_app.inbox.harness import PASSWORD, PASSWORD_HASH

# scrypt at the largest cost a hash may ask (64 MiB): slow enough to hold the thread.
SLOW_HASH = PASSWORD_HASH.replace("scrypt$16384$", "scrypt$65536$", 1)


def test_checks_run_on_the_verifier_thread_and_answer_right_and_wrong() -> None:
    verifier = PasswordVerifier(PASSWORD_HASH)
    try:
        assert verifier.verify(PASSWORD)
        assert not verifier.verify("wrong")
        assert any(t.name == "inbox-scrypt" for t in threading.enumerate())
    finally:
        verifier.close()
    assert not any(t.name == "inbox-scrypt" for t in threading.enumerate())


def test_a_full_queue_is_refused_at_once_instead_of_waiting() -> None:
    verifier = PasswordVerifier(SLOW_HASH, queue_size=1)
    answers: list[object] = []

    def check() -> None:
        try:
            answers.append(verifier.verify("wrong"))
        except VerifierBusy as exc:
            answers.append(exc)

    try:
        threads = [threading.Thread(target=check) for _ in range(4)]
        for thread in threads:
            thread.start()
            time.sleep(0.02)  # the first is hashing, the second queued, the rest refused
        started = time.monotonic()
        check()
        assert time.monotonic() - started < 0.05
        for thread in threads:
            thread.join(30)
    finally:
        verifier.close()
    busy = [a for a in answers if isinstance(a, VerifierBusy)]
    assert len(busy) >= 3
    assert [a for a in answers if not isinstance(a, VerifierBusy)] == [False] * (5 - len(busy))


def test_a_check_that_waits_too_long_is_busy_and_then_skipped() -> None:
    verifier = PasswordVerifier(SLOW_HASH, queue_size=4)
    try:
        blocker = threading.Thread(target=verifier.verify, args=("wrong",))
        blocker.start()
        time.sleep(0.02)
        with pytest.raises(VerifierBusy):
            verifier.verify("wrong", timeout=0.001)
        blocker.join(30)
    finally:
        verifier.close()
